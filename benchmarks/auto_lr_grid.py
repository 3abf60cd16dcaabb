"""auto_lr against a grid of fixed rates, through gRPC: on mnist_tiny, coco_tiny and camvid_tiny (../shared/data),
one job with auto_lr and one per rate in {1e-3, 3e-3, 1e-2}, the same job otherwise, each run by the embedded
service (harness/) and driven with the SDK. Prints, per data set, the metric the job optimises and the job's
time, with auto_lr's chosen rate and the LR range test's share of the job's time (from the job's own event
times: the range test's first log line to its suggestions) and its batches beside the job's training batches
(a measure of its cost that the machine's load does not move).

The body is a ResNet-18 from random weights (no ImageNet weights reach this machine), at the small sizes the
quality tests use; fp32 on CPU. The bar issue 25 sets: auto_lr reaches 0.98 of the best fixed rate's metric,
and its range test takes at most 20 % of the job's time.

    nice -n 10 python benchmarks/auto_lr_grid.py                  # all three, seed 0
    nice -n 10 python benchmarks/auto_lr_grid.py --sets mnist_tiny --seed 1
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fineserve_client import Client
from harness.launcher import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RATES = (1e-3, 3e-3, 1e-2)


@dataclass(frozen=True)
class DataSet:
    layout: str
    task: str
    metric: str
    """The job's validation metric the table shows (the one keep "best" selects by)."""
    job: dict[str, Any]


SETS = {
    "mnist_tiny": DataSet("image_folders", "image_classification", "accuracy",
                          {"image_size": 32, "batch_size": 64, "epochs": 3}),
    "coco_tiny": DataSet("image_labels_csv", "multi_label_classification", "fbeta",
                         {"image_size": 64, "batch_size": 16, "epochs": 8}),
    "camvid_tiny": DataSet("image_masks", "segmentation", "accuracy",
                           {"image_size": 64, "batch_size": 8, "epochs": 8}),
}


@dataclass
class Outcome:
    metric: float
    seconds: float
    chosen_lr: float = 0.0
    range_seconds: float = 0.0
    range_batches: int = 0
    train_batches: int = 0


def run_job(client: Client, dataset_id: str, name: str, spec: DataSet, seed: int, lr: float | None) -> Outcome:
    """One job to its end; its time from the worker's start to the end (Job.started/finished)."""
    rate = {"auto_lr": True} if lr is None else {"lr": lr}
    job = client.create_fine_tune_job(dataset_id, name, task=spec.task, base="none", precision="fp32", seed=seed,
                                      resources={"cpu_only": True}, **spec.job, **rate)
    range_start = range_end = None
    range_batches, epoch_batches = 0, dict[int, int]()
    for event in client.watch_job(job.id, timeout=7200):
        if event.WhichOneof("event") == "batch":  # not every batch is sent: read the numbers they carry
            if event.batch.phase == "lr_find":
                range_batches = max(range_batches, event.batch.batch)
            else:
                epoch_batches[event.batch.epoch] = event.batch.batches
        elif event.WhichOneof("event") == "log":
            message = event.log.message
            if message.startswith("LR range test:"):
                range_start = event.time.ToDatetime()
            elif message.startswith("LR range test suggestions"):
                range_end = event.time.ToDatetime()
    done = client.get_job(job.id)
    if done.error or done.started is None or done.finished is None:
        raise SystemExit(f"{name} ended {done.state}: {done.error}")
    outcome = Outcome(done.metrics[spec.metric], (done.finished - done.started).total_seconds())
    if lr is None:
        assert range_start and range_end, "an auto_lr job logs its range test"
        outcome.chosen_lr = done.raw.result.chosen_lr
        outcome.range_seconds = (range_end - range_start).total_seconds()
        outcome.range_batches, outcome.train_batches = range_batches, sum(epoch_batches.values())
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=list(SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="auto-lr-") as tmp:
        server = ServerProcess(Path(tmp) / "data", "--allowed-root", str(args.data)).start(timeout=600)
        try:
            client = Client(server.target, timeout=120)
            for name in args.sets:
                spec = SETS[name]
                dataset = client.register_dataset(args.data / name, name, layout=spec.layout)
                auto = run_job(client, dataset.id, f"{name}-auto", spec, args.seed, None)
                print(f"{name} auto_lr: {auto}", flush=True)
                fixed = {}
                for lr in RATES:
                    fixed[lr] = run_job(client, dataset.id, f"{name}-{lr:g}", spec, args.seed, lr)
                    print(f"{name} lr {lr:g}: {fixed[lr]}", flush=True)
                rows.append((name, spec, auto, fixed))
        finally:
            server.stop()
    print(f"\nResNet-18 from random weights, fp32, CPU, seed {args.seed}; time = the job's, start to end")
    header = ("| data set | metric | auto_lr: chosen lr | metric | time s | range test s (share) | range test "
              "batches / training batches | "
              + " | ".join(f"lr {lr:g}: metric, s" for lr in RATES) + " | auto / best |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, spec, auto, fixed in rows:
        best = max(o.metric for o in fixed.values())
        cells = " | ".join(f"{o.metric:.4f}, {o.seconds:.0f}" for o in fixed.values())
        print(f"| {name} | {spec.metric} | {auto.chosen_lr:.2g} | {auto.metric:.4f} | {auto.seconds:.0f} | "
              f"{auto.range_seconds:.1f} ({auto.range_seconds / auto.seconds:.0%}) | "
              f"{auto.range_batches} / {auto.train_batches} | {cells} | "
              f"{auto.metric / best:.3f} |")


if __name__ == "__main__":
    main()
