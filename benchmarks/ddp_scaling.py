"""Data-parallel scaling: training samples/s of the engine's loop on 1 and N Ray Train workers (the path a job with
resources.workers=N takes), and on CUDA the single-GPU NCCL DDP path for ResNet-50 against the same GPU without DDP.

Every case runs under Ray Train's TorchTrainer on in-memory random batches of the same global batch (each of N
workers takes batch/N, as a job does): train_epoch with fine_tune's optimizer, 1cycle schedule and loop
settings, on the model as the engine trains it (DDP-wrapped by worker.engine.distributed.for_training when N > 1,
or explicitly for the "DDP on 1 GPU" row). Each round is timed between two barriers and counts at its slowest
rank; the median round gives the rate, after one warm-up round. Ratio: samples/s over the baseline row of its
group (1 worker; the same GPU without DDP).

    python benchmarks/ddp_scaling.py            # CPU: 1 and 2 workers; CUDA cases too when a GPU is present
    python benchmarks/ddp_scaling.py --quick    # a few small batches per case: checks that it runs

Workers get --threads CPU threads each (default 1), so N workers need N free cores to show a speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import ray
import torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from train_throughput import CFG, N_CLASSES  # the same model and recipe as the one-process benchmark

from worker.engine.distributed import for_training, per_rank_batch
from worker.engine.precision import grad_scaler
from worker.engine.schedule import one_cycle, stage_optimizer
from worker.engine.train_loop import LoopSettings, train_epoch
from worker.engine.vision.resnet import ResNetClassifier


@dataclass(frozen=True)
class Case:
    group: str
    """Rows of one group share a baseline: the group's first row."""
    label: str
    workers: int
    cuda: bool
    arch: str
    image_size: int
    precision: str
    batch_size: int
    """Global batch per step."""
    ddp_on_one: bool = False
    """Wrap in DDP even with one worker (the single-GPU NCCL path)."""


def cases(cuda: bool, quick: bool, workers: int) -> list[Case]:
    bs = 8 if quick else 32
    found = [Case("cpu", f"{n} worker(s)", n, False, "resnet18", 64, "fp32", bs) for n in (1, workers)]
    if cuda:
        bs = 16 if quick else 128
        found += [Case("cuda", "1 GPU, no DDP", 1, True, "resnet50", 224, "bf16", bs),
                  Case("cuda", "1 GPU, DDP (NCCL)", 1, True, "resnet50", 224, "bf16", bs, ddp_on_one=True)]
        if torch.cuda.device_count() >= 2:
            n = torch.cuda.device_count()
            found.append(Case("cuda", f"{n} GPUs, DDP (NCCL)", n, True, "resnet50", 224, "bf16", bs))
    return found


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def _worker(config: dict[str, Any]) -> float:
    """One Ray Train worker: time rounds of train_epoch (between barriers, so every rank times the slowest);
    returns samples/s over all workers (fit() hands back rank 0's)."""
    import ray.train.torch

    case = Case(**config["case"])
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device() if case.cuda else torch.device("cpu")
    torch.manual_seed(0)
    model = ResNetClassifier(case.arch, N_CLASSES).to(device)
    memory_format = torch.channels_last if case.cuda else torch.contiguous_format
    model.to(memory_format=memory_format)
    model.freeze_to(0)
    trained = (DistributedDataParallel(model, device_ids=[device.index or 0]) if case.ddp_on_one
               else for_training(model, device))
    share = per_rank_batch(case.batch_size)
    batches = [(torch.randn(share, 3, case.image_size, case.image_size, device=device)
                .contiguous(memory_format=memory_format),
                torch.randint(0, N_CLASSES, (share,), device=device)) for _ in range(config["batches"])]
    opt, max_lrs = stage_optimizer(model.layer_groups(), CFG, CFG.resolved_stages()[-1])
    sched = one_cycle(opt, CFG, max_lrs, (config["rounds"] + 1) * len(batches))
    scaler = grad_scaler(device, case.precision)
    settings = LoopSettings(device, case.precision, channels_last=case.cuda)
    seconds = []
    for round_ in range(config["rounds"] + 1):
        _sync(device)
        start = time.perf_counter()
        train_epoch(trained, batches, opt, sched, scaler, settings)
        _sync(device)
        if round_:
            seconds.append(time.perf_counter() - start)
    return len(batches) * share * case.workers / statistics.median(seconds)


def measure(case: Case, threads: int, batches: int, rounds: int) -> float:
    resources = {"CPU": threads} | ({"GPU": 1} if case.cuda else {})
    trainer = TorchTrainer(
        _worker, train_loop_config={"case": asdict(case), "threads": threads, "batches": batches, "rounds": rounds},
        scaling_config=ScalingConfig(num_workers=case.workers, use_gpu=case.cuda, resources_per_worker=resources),
        run_config=RunConfig(name=f"ddp-scaling-{case.group}-{case.workers}", storage_path=tempfile.mkdtemp()))
    return float(trainer.fit().return_value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 small batch per case")
    parser.add_argument("--workers", type=int, default=2, help="CPU workers to compare with 1 (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per worker (default 1)")
    parser.add_argument("--batches", type=int, help="batches per round (default 4; quick 1)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 5; quick 1)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA cases even where a GPU is present")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.no_cuda
    batches = args.batches or (1 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 5)
    gpus = torch.cuda.device_count() if cuda else 0
    ray.init(num_cpus=max(args.workers, gpus) * args.threads, include_dashboard=False, log_to_driver=False)
    print(f"torch {torch.__version__}, ray {ray.__version__}, {args.threads} CPU thread(s) per worker"
          + (f", {torch.cuda.get_device_name()}" if cuda else ", no CUDA device")
          + f"; median of {rounds} round(s) of {batches} global batches, after 1 warm-up round")
    header = f"{'case':<52} {'samples/s':>10} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    baseline: dict[str, float] = {}
    for case in cases(cuda, args.quick, args.workers):
        rate = measure(case, args.threads, batches, rounds)
        baseline.setdefault(case.group, rate)
        name = f"{case.arch} {case.image_size}px {case.precision} global bs{case.batch_size}, {case.label}"
        print(f"{name:<52} {rate:>10.1f} {rate / baseline[case.group]:>6.2f}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
