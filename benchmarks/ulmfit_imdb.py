"""ULMFiT on IMDB reviews: the language model on every review (labels unread), then the classifier on its
encoder, against the same classifier from a random encoder, under two schedules (both gradual unfreezing):
ULMFiT's (the rate halved per stage, each layer group /2.6 of the next) and one flat peak rate for every group
and stage (what a random encoder needs to learn at all in a few epochs).

Cross-validated (--folds label-stratified folds, each review held out once; the language model is trained once
on all texts, as ULMFiT's stage 2 may be), for each --labelled regime: 0 = every training label, N = only N
labelled training texts per fold (ULMFiT's semi-supervised setting; the rest are unlabelled texts). Prints the
held-out accuracy (mean and spread over folds), epochs and wall time per stage. Uses ../shared/data/imdb_reviews
when present, else imdb_sample (the only IMDB set available offline here).

    python benchmarks/ulmfit_imdb.py                    # small AWD-LSTM, the engine test's recipe
    python benchmarks/ulmfit_imdb.py --size published   # 400/1152/3, for a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fineserve_common.configs import BaseWeights, Stage, TextConfig
from worker.engine import fine_tune
from worker.engine.errors import EngineError
from worker.engine.text.data import write_folds

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIZES = {"small": {"emb_size": 32, "hidden_size": 64, "n_layers": 2, "max_vocab": 2000},
         "medium": {"emb_size": 200, "hidden_size": 400, "n_layers": 3, "max_vocab": 20000},
         "published": {"emb_size": 400, "hidden_size": 1152, "n_layers": 3, "max_vocab": 60000}}


def recipes(size: str, lm_epochs: int, clas_epochs: int) -> tuple[dict, dict, dict]:
    """(language model, classifier with ULMFiT's schedule, classifier with one flat rate) settings; the small
    size's are the engine test's."""
    n_groups = SIZES[size]["n_layers"] + 2
    small = size == "small"
    lm = {"bptt": 30 if small else 70, "lr": 3e-2 if small else 1e-2, "drop_mult": 0.1 if small else 0.3,
          "batch_size": 64, "freeze_epochs": 0, "epochs": lm_epochs, "group_lr_ratio": 1.0}
    clas = {"max_len": 150 if small else 400, "lr": 2e-2, "drop_mult": 0.3 if small else 0.5, "batch_size": 32,
            "stages": (*(Stage(1, f) for f in range(n_groups - 1, 0, -1)), Stage(clas_epochs, 0))}
    flat = {**clas, "group_lr_ratio": 1.0, "stages": tuple(Stage(s.epochs, s.freeze_to, lr=2e-2)
                                                           for s in clas["stages"])}
    return lm, clas, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a TEXT_CSV folder (default: imdb_reviews, else "
                        "imdb_sample)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--lm-epochs", type=int, default=3)
    parser.add_argument("--clas-epochs", type=int, default=5, help="unfrozen epochs after gradual unfreezing")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--labelled", type=int, nargs="+", default=[0, 200],
                        help="labelled training texts per fold, 0 = all (one row group each)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = args.data or next(p for p in (DATA / "imdb_reviews", DATA / "imdb_sample") if p.exists())
    common = {**SIZES[args.size], "min_freq": 2, "device": args.device}
    lm_recipe, clas_recipe, flat_recipe = recipes(args.size, args.lm_epochs, args.clas_epochs)
    epochs = sum(s.epochs for s in clas_recipe["stages"])

    print(f"| {'stage':40} | labels | epochs | seconds (per fold) | result |")
    print(f"| {'-' * 40} | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        lm = fine_tune(TextConfig(task="language_model", **common, **lm_recipe), data,
                                      Path(tmp) / "lm")
        _row("language model (stages 1-2), all texts", "", lm.epochs_trained, time.perf_counter() - start,
             f"perplexity {lm.metrics['perplexity']:.1f}, next-token acc {lm.metrics['accuracy']:.3f}")
        lm_base = BaseWeights("store", path=str(Path(tmp) / "lm"))
        for labelled in args.labelled:
            folds = write_folds(data, args.folds, 0, Path(tmp) / f"folds-{labelled}", labelled)
            for name, base, recipe in (("ULMFiT schedule: LM encoder (stage 3)", lm_base, clas_recipe),
                                       ("ULMFiT schedule: random encoder", BaseWeights("none"), clas_recipe),
                                       ("flat rate: LM encoder", lm_base, flat_recipe),
                                       ("flat rate: random encoder", BaseWeights("none"), flat_recipe)):
                start, accuracies, diverged = time.perf_counter(), [], 0
                for i, fold in enumerate(folds):
                    cfg = TextConfig(task="text_classification", base=base, **common, **recipe)
                    try:
                        result = fine_tune(cfg, fold, Path(tmp) / f"c-{i}")
                    except EngineError as e:  # a diverged run is a result of the recipe, not a crash
                        print(f"  {name}, fold {i}: {e}", flush=True)
                        diverged += 1
                        continue
                    accuracies.append(result.metrics["accuracy"])
                summary = (f"accuracy {statistics.mean(accuracies):.3f} (sd {_sd(accuracies):.3f} over "
                           f"{len(accuracies)} folds: {' '.join(f'{a:.3f}' for a in accuracies)})" if accuracies
                           else "no fold finished")
                _row(name, labelled or "all", epochs, (time.perf_counter() - start) / len(folds),
                     summary + (f"; diverged in {diverged} of {len(folds)} folds" if diverged else ""))
    print(f"data {data}, size {args.size} ({lm.card['size']}), precision {lm.card['precision']}")


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _row(name: str, labels: object, epochs: int, seconds: float, result: str) -> None:
    """Printed as each stage ends, so a long run shows its finished rows."""
    print(f"| {name:40} | {labels} | {epochs} | {seconds:.1f} | {result} |", flush=True)

if __name__ == "__main__":
    main()
