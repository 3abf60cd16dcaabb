"""ULMFiT on the full IMDB reviews (../shared/data/imdb): does the language-model stage pay?

The language model reads --lm-unsup unlabelled reviews + the first --lm-train training reviews (labels unread; they
include every labelled set below). Then the classifier trains on --labels balanced training labels (a seeded
stratified draw, each smaller set inside the larger) from the LM's encoder and from a random encoder, each under
each --schedules entry:
- ulmfit: gradual unfreezing (head, then one more group per epoch, then all), rates halved per stage, each group
  /2.6 of the next (ULMFiT's);
- flat: every layer trains from the first epoch at one rate, the same for every group;
- discriminative: every layer trains from the first epoch, each group /2.6 of the next (ULMFiT's rates without
  the gradual unfreezing).
Accuracy is measured on the test reviews (--test of the 25,000, a fixed seeded draw; 0 = all), batched by length
with no gradients; the jobs' own per-epoch validation reads the first 200 of them (keep "last": no epoch is
selected on them).
--lm-rounds R trains the LM R times --lm-epochs more (each round one 1cycle from the last round's weights) and
reruns the smallest labelled set after each: the curve of LM text read against accuracy. Larger labelled sets run
each encoder under its best schedule on the smallest set (--all-schedules runs every one). --clas-lr sweeps rates
with every schedule and --seeds repeats each setting (the mean decides the best); --lm-dir keeps the language
models, so a later sweep with the same LM settings reuses them.

    python benchmarks/ulmfit_imdb.py                                   # the CPU protocol (README)
    python benchmarks/ulmfit_imdb.py --size published --lm-unsup 50000 --lm-train 25000 --labels 25000 --test 0
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from fineserve_common.configs import BaseWeights, Stage, TextConfig
from fineserve_common.events import Epoch, Log
from worker.engine import fine_tune
from worker.engine.errors import EngineError
from worker.engine.model_card import read_model_card
from worker.engine.text.classifier import TextClassifierModel
from worker.engine.text.corpus import tokenized
from worker.engine.text.data import pad_left
from worker.engine.text.family import windowed

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb"
SIZES = {"small": {"emb_size": 32, "hidden_size": 64, "n_layers": 2, "max_vocab": 2000},
         "mid": {"emb_size": 64, "hidden_size": 256, "n_layers": 2, "max_vocab": 8000},
         "medium": {"emb_size": 200, "hidden_size": 400, "n_layers": 3, "max_vocab": 20000},
         "published": {"emb_size": 400, "hidden_size": 1152, "n_layers": 3, "max_vocab": 60000}}
SCHEDULES = ["ulmfit", "flat", "discriminative"]
MONITOR = 200
"""Test reviews the jobs validate on after each epoch (reported only; the last epoch's weights are kept)."""


def read_imdb(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """(train (text, label) rows, test rows, unlabelled texts) in the files' order."""
    def rows(name: str) -> list[dict[str, str]]:
        with gzip.open(root / name, "rt", encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    labelled = rows("labelled.csv.gz")
    train = [(r["text"].strip(), r["label"]) for r in labelled if r["is_valid"] != "true"]
    test = [(r["text"].strip(), r["label"]) for r in labelled if r["is_valid"] == "true"]
    return train, test, [r["text"].strip() for r in rows("unsup.csv.gz")]


def balanced_order(rows: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """rows shuffled, alternating between the labels: every prefix of even length is balanced."""
    rng = random.Random(seed)
    by_label = {label: [r for r in rows if r[1] == label] for label in sorted({r[1] for r in rows})}
    for group in by_label.values():
        rng.shuffle(group)
    return [r for pair in zip(*by_label.values(), strict=False) for r in pair]


def write_csv(folder: Path, rows: list[tuple[str, str, bool]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "texts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "is_valid"])
        writer.writerows(rows)
    return folder


def schedules(size: str, epochs: int) -> dict[str, dict]:
    """Classifier settings of each schedule; both train `epochs` epochs in all."""
    n_groups = SIZES[size]["n_layers"] + 2
    small = size in ("small", "mid")
    common = {"max_len": 150 if small else 400, "drop_mult": 0.3 if small else 0.5, "batch_size": 32}
    return {"ulmfit": {**common, "lr": 2e-2, "stages": (*(Stage(1, f) for f in range(n_groups - 1, 0, -1)),
                                                       Stage(epochs - (n_groups - 1), 0))},
            "flat": {**common, "lr": 2e-2 if small else 5e-3, "group_lr_ratio": 1.0, "stages": (Stage(epochs, 0),)},
            "discriminative": {**common, "lr": 2e-2 if small else 5e-3, "stages": (Stage(epochs, 0),)}}


def accuracy(model_dir: Path, test: list[tuple[str, str]], batch: int = 256) -> float:
    """Accuracy of a stored classifier on test, texts batched by length (little padding), no gradients."""
    served = TextClassifierModel.load(model_dir, "cpu" if not torch.cuda.is_available() else "cuda")
    texts = [t for t, _ in test]
    ids = windowed(tokenized(texts, lambda e: None).numericalize(texts, served.vocab), served.card["max_len"],
                   served.card.get("text_window", "start"))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    index = {c: i for i, c in enumerate(served.classes)}
    right = 0
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = order[s:s + batch]
            predicted = served.model(pad_left([ids[i] for i in chunk], 1).to(served.device)).argmax(1).cpu()
            right += sum(int(p) == index[test[i][1]] for p, i in zip(predicted.tolist(), chunk, strict=True))
    return right / len(test)


def progress(event: object) -> None:
    """Epochs and tokenising as they end (the log of a long run)."""
    if isinstance(event, Epoch):
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(event.metrics.items()))
        print(f"    epoch {event.epoch}/{event.epochs}: {metrics} ({event.seconds:.0f} s)", flush=True)
    elif isinstance(event, Log) and "tokenised" in event.message:
        print(f"    {event.message}", flush=True)


def row(*cells: object) -> None:
    """A results-table row, printed as each run ends, so a long run shows its finished rows."""
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def lm_round_dir(lm_dir: Path, lm_round: int, key: dict) -> tuple[Path, bool]:
    """The folder of round lm_round's language model under lm_dir, and whether a finished one with the same
    settings is there to reuse (a rate sweep need not retrain a ten-minute LM)."""
    folder = lm_dir / f"lm-{lm_round}"
    stamp = folder / "benchmark-settings.json"
    if stamp.exists():
        if json.loads(stamp.read_text()) != key:
            raise SystemExit(f"{folder} holds a language model of other settings; use another --lm-dir")
        return folder, True
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished round
    return folder, False


def seeded_accuracies(cfg: TextConfig, seeds: int, data: Path, out: Path, test: list[tuple[str, str]]) -> list[float]:
    """Test accuracy of cfg's classifier trained with seeds 0..seeds-1 (NaN for a run that diverged)."""
    runs = []
    for seed in range(seeds):
        try:
            fine_tune(dataclasses.replace(cfg, seed=seed), data, out, progress)
            runs.append(accuracy(out, test))
        except EngineError as e:  # a diverged run is a result of the schedule, not a crash
            runs.append(float("nan"))
            print(f"    seed {seed} failed: {e}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the folder of labelled.csv.gz and unsup.csv.gz")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--lm-unsup", type=int, default=5000, help="unlabelled reviews the LM reads")
    parser.add_argument("--lm-train", type=int, default=5000, help="training reviews the LM reads (labels unread)")
    parser.add_argument("--lm-epochs", type=int, default=1, help="LM epochs per round")
    parser.add_argument("--lm-rounds", type=int, default=1)
    parser.add_argument("--lm-dir", type=Path, help="keep each round's language model here and reuse it when the "
                        "settings match (default: a temporary folder)")
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--clas-epochs", type=int, default=8, help="classifier epochs in all (either schedule) "
                        "on the smallest labelled set")
    parser.add_argument("--large-epochs", type=int, default=4, help="the same on the larger labelled sets")
    parser.add_argument("--schedules", nargs="+", choices=SCHEDULES, default=["ulmfit", "flat"],
                        help="the LM encoder's schedules on the smallest labelled set")
    parser.add_argument("--random-schedules", nargs="+", choices=SCHEDULES, default=None,
                        help="the random encoder's (default: --schedules)")
    parser.add_argument("--clas-batch", type=int, default=32)
    parser.add_argument("--clas-lr", type=float, nargs="+", default=[None],
                        help="the classifiers' top rates, each swept with each schedule (default: each schedule's)")
    parser.add_argument("--seeds", type=int, default=1, help="classifier seeds per setting; the mean is compared")
    parser.add_argument("--random-only", action="store_true",
                        help="no language model: the random encoder's classifiers alone (a rate sweep for its best)")
    parser.add_argument("--all-schedules", action="store_true", help="every schedule on every labelled set")
    parser.add_argument("--test", type=int, default=5000, help="test reviews measured (0 = all 25,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train, test, unsup = read_imdb(args.data)
    labelled = balanced_order(train, 0)
    test = random.Random(1).sample(test, args.test) if args.test else test
    print(f"read {len(train)} training, {len(test)} test (measured) and {len(unsup)} unlabelled reviews "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    # keep "last": no epoch is chosen on the monitored test reviews (they are among the measured ones).
    common = {**SIZES[args.size], "min_freq": 2, "device": args.device, "precision": args.precision, "keep": "last"}
    row("stage", "LM text (reviews) x epochs", "labels", "encoder", "schedule", "rate", "accuracy (mean of seeds)",
        "wall s")
    row(*["---"] * 8)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lm_dir = args.lm_dir or tmp
        lm_texts = [t for t, _ in labelled[:args.lm_train]] + unsup[:args.lm_unsup]
        # is_valid only splits the CSV (the job needs both parts); the LM reads every text and holds out its own.
        lm_data = write_csv(tmp / "lm", [(t, "", i % 50 == 0) for i, t in enumerate(lm_texts)])
        monitor = [(t, label, True) for t, label in test[:MONITOR]]
        sets = {n: write_csv(tmp / f"labels-{n}", [(t, label, False) for t, label in labelled[:n]] + monitor)
                for n in args.labels}
        best: dict[str, tuple[str, float | None]] = {}
        lm_base = None
        for lm_round in range(1, 2 if args.random_only else args.lm_rounds + 1):
            t0 = time.perf_counter()
            lm_cfg = TextConfig(task="language_model", **common, bptt=70, lr=1e-2 if args.size != "small" else 3e-2,
                                drop_mult=0.1 if args.size == "small" else 0.3, batch_size=64, freeze_epochs=0,
                                epochs=args.lm_epochs, group_lr_ratio=1.0, valid_pct=0.02,
                                base=lm_base or BaseWeights("none"))
            lm_text = f"{len(lm_texts)} x {lm_round * args.lm_epochs}"
            if not args.random_only:
                key = {"data": str(args.data), "size": args.size, "lm_unsup": args.lm_unsup, "lm_train": args.lm_train,
                       "lm_epochs": args.lm_epochs}
                folder, reused = lm_round_dir(lm_dir, lm_round, key)
                if not reused:
                    fine_tune(lm_cfg, lm_data, folder, progress)
                    (folder / "benchmark-settings.json").write_text(json.dumps(key))
                card = read_model_card(folder)
                lm_base = BaseWeights("store", path=str(folder))
                row("language model", lm_text, "", "", "", "", f"perplexity {card['metrics']['perplexity']:.1f}",
                    "reused" if reused else f"{time.perf_counter() - t0:.0f}")
            first = lm_round == 1
            for n in (args.labels if first else args.labels[:1]):
                arms = [*([] if args.random_only else [("LM", lm_base)]),
                        *([("random", BaseWeights("none"))] if first else [])]
                for encoder, base in arms:
                    epochs = args.clas_epochs if n == args.labels[0] else args.large_epochs
                    sweep = (first and n == args.labels[0]) or args.all_schedules
                    swept = args.schedules if encoder == "LM" else args.random_schedules or args.schedules
                    settings = [(name, lr) for name in swept for lr in args.clas_lr] if sweep else [best[encoder]]
                    scores = {}
                    for name, lr in settings:
                        t0 = time.perf_counter()
                        recipe = {**schedules(args.size, epochs)[name], "batch_size": args.clas_batch}
                        recipe["lr"] = lr or recipe["lr"]
                        cfg = TextConfig(task="text_classification", base=base, **common, **recipe)
                        runs = seeded_accuracies(cfg, args.seeds, sets[n], tmp / "classifier", test)
                        scores[(name, lr)] = sum(runs) / len(runs)
                        each = f" ({' / '.join(f'{r:.3f}' for r in runs)})" if len(runs) > 1 else ""
                        row("classifier", lm_text if encoder == "LM" else "none", n, encoder, name,
                            f"{recipe['lr']:g}", f"{scores[(name, lr)]:.4f}{each}", f"{time.perf_counter() - t0:.0f}")
                    if n == args.labels[0] and first:
                        finished = {k: v for k, v in scores.items() if v == v}  # NaN: a diverged seed
                        best[encoder] = max(finished or scores, key=(finished or scores).__getitem__)
    print(f"data {args.data}, size {args.size} ({SIZES[args.size]}), {len(test)} test reviews measured, "
          f"{args.clas_epochs} / {args.large_epochs} classifier epochs, {args.seeds} seed(s), "
          f"{torch.get_num_threads()} threads; {time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
