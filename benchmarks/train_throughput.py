"""Training throughput (images/s) of the engine's loop against a plain hand-written PyTorch loop.

Both train copies of the same ResNet classifier (fast.ai head) on the same in-memory random batches at the same
precision, in the same process, alternating round by round; each side's median round counts, so a busy machine
slows both alike and its worst moments drop out. The engine
side is worker.engine.train_loop.train_epoch itself with the optimizer and 1cycle schedule fine_tune builds
(stage_optimizer, one_cycle, grad_scaler, LoopSettings): per-batch events, loss reads and LR bookkeeping
included. The plain side is the loop one writes for speed: model(x), cross-entropy, backward, fused AdamW step,
OneCycleLR step, under autocast, channels-last on CUDA, and no host synchronisation per step (the losses are
never read); on CUDA at batch 128 (ResNet-50 at 224 px also at 256). The engine is reported as a ratio of it.

    python benchmarks/train_throughput.py            # CPU cases, plus CUDA cases when a GPU is present
    python benchmarks/train_throughput.py --quick    # a few batches per case: checks that it runs
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torch.optim.lr_scheduler import OneCycleLR

from worker.engine import BaseWeights, FineTuneConfig
from worker.engine.precision import grad_scaler
from worker.engine.schedule import one_cycle, stage_optimizer
from worker.engine.train_loop import Batch, LoopSettings, train_epoch
from worker.engine.vision.resnet import ResNetClassifier

N_CLASSES = 10
CFG = FineTuneConfig(base=BaseWeights("none"), lr=2e-3)


@dataclass(frozen=True)
class Case:
    device: str
    arch: str
    image_size: int
    precision: str
    batch_size: int
    channels_last: bool = False

    def __str__(self) -> str:
        layout = " channels_last" if self.channels_last else ""
        return f"{self.device} {self.arch} {self.image_size}px {self.precision} bs{self.batch_size}{layout}"


def cases(devices: list[str], quick: bool) -> list[Case]:
    found = []
    if "cpu" in devices:
        bs = 2 if quick else 32  # quick: bf16 on a CPU without AMX runs about 20x slower than fp32
        found += [Case("cpu", "resnet18", size, p, bs) for size in (64, 128) for p in ("fp32", "bf16")]
    if "cuda" in devices:
        bs = 16 if quick else 128
        found += [Case("cuda", "resnet18", size, p, bs, True) for size in (64, 128) for p in ("fp32", "bf16")]
        found += [Case("cuda", "resnet50", 224, "bf16", b, True) for b in ((bs,) if quick else (bs, 2 * bs))]
    return found


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_loop(model: ResNetClassifier, case: Case, total_steps: int) -> Callable[[list[Batch]], None]:
    """fine_tune's unfrozen-stage machinery around train_epoch."""
    device = torch.device(case.device)
    model.freeze_to(0)
    opt, max_lrs = stage_optimizer(model.layer_groups(), CFG, CFG.resolved_stages()[-1])
    sched = one_cycle(opt, CFG, max_lrs, total_steps)
    scaler = grad_scaler(device, case.precision)
    settings = LoopSettings(device, case.precision, channels_last=case.channels_last)
    return lambda batches: train_epoch(model, batches, opt, sched, scaler, settings)


def plain_loop(model: ResNetClassifier, case: Case, total_steps: int) -> Callable[[list[Batch]], None]:
    """What one would write by hand."""
    device = torch.device(case.device)
    opt = torch.optim.AdamW(model.parameters(), lr=CFG.lr, betas=(0.95, 0.99), weight_decay=CFG.weight_decay,
                            fused=True)
    sched = OneCycleLR(opt, max_lr=CFG.lr, total_steps=total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=case.precision == "fp16")
    dtype = torch.float16 if case.precision == "fp16" else torch.bfloat16

    def run(batches: list[Batch]) -> None:
        model.train()
        for x, y in batches:
            with torch.autocast(device.type, dtype=dtype, enabled=case.precision != "fp32"):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()

    return run


def _model_and_data(case: Case, batches: int) -> tuple[ResNetClassifier, list[Batch]]:
    device = torch.device(case.device)
    torch.manual_seed(0)
    model = ResNetClassifier(case.arch, N_CLASSES).to(device)
    memory_format = torch.channels_last if case.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    data = [(torch.randn(case.batch_size, 3, case.image_size, case.image_size, device=device)
             .contiguous(memory_format=memory_format),
             torch.randint(0, N_CLASSES, (case.batch_size,), device=device)) for _ in range(batches)]
    return model, data


def _rates(case: Case, loops: dict[str, Callable[[list[Batch]], None]], data: list[Batch],
           rounds: int) -> dict[str, float]:
    """images/s of each loop from the median time of `rounds` passes over data, after one warm-up pass (kernel
    primitives, optimizer state). The loops alternate pass by pass, taking turns to go first, and the median
    ignores passes that another process on the machine slowed down."""
    device = torch.device(case.device)
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(rounds + 1):
        for name in sorted(loops, reverse=round_ % 2 == 1):
            _sync(device)
            start = time.perf_counter()
            loops[name](data)
            _sync(device)
            if round_:
                seconds[name].append(time.perf_counter() - start)
    images = len(data) * case.batch_size
    return {name: images / statistics.median(times) for name, times in seconds.items()}


def measure(case: Case, batches: int, rounds: int) -> tuple[float, float]:
    """(engine, plain) images/s on the same model and in-memory batches."""
    model, data = _model_and_data(case, batches)
    steps = (rounds + 1) * batches
    rates = _rates(case, {"engine": engine_loop(copy.deepcopy(model), case, steps),
                          "plain": plain_loop(copy.deepcopy(model), case, steps)}, data, rounds)
    return rates["engine"], rates["plain"]


def plain_rate(case: Case, batches: int, rounds: int) -> float:
    """The strong plain loop's images/s alone (benchmarks/train_job_e2e.py's reference)."""
    model, data = _model_and_data(case, batches)
    return _rates(case, {"plain": plain_loop(model, case, (rounds + 1) * batches)}, data, rounds)["plain"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 small batch per case")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                        help="all = cpu, plus cuda when available")
    parser.add_argument("--batches", type=int, help="batches per round (default 4; quick 1)")
    parser.add_argument("--rounds", type=int, help="timed rounds per loop (default 9; quick 1)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this, e.g. '128px bf16'")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("no CUDA device")
        devices.remove("cuda")
    if "cuda" in devices:
        torch.backends.cudnn.benchmark = True  # for both loops alike
    batches = args.batches or (1 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 9)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else "")
          + f"; median of {rounds} round(s) of {batches} batches per loop")
    header = f"{'config':<44} {'engine img/s':>12} {'plain img/s':>12} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for case in (c for c in cases(devices, args.quick) if args.only in str(c)):
        engine, plain = measure(case, batches, rounds)
        print(f"{case!s:<44} {engine:>12.1f} {plain:>12.1f} {engine / plain:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
