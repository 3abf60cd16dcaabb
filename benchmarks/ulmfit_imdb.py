"""ULMFiT on IMDB reviews: language model on every review (labels unread), then the classifier on its encoder,
against classifiers from a random encoder measured in the same run: one with the same gradual-unfreezing
schedule, one with all groups unfrozen for the same number of epochs.

Prints accuracy on the held-out reviews, epochs and wall time per stage. Uses ../shared/data/imdb_reviews when
present, else imdb_sample (the only IMDB set available offline here).

    python benchmarks/ulmfit_imdb.py                    # small AWD-LSTM (CPU-friendly)
    python benchmarks/ulmfit_imdb.py --size published   # 400/1152/3, for a GPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from worker.engine.config import BaseWeights, Stage
from worker.engine.text_config import TextConfig
from worker.engine.text_training import fine_tune_language_model, fine_tune_text_classifier

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIZES = {"small": {"emb_size": 32, "hidden_size": 64, "n_layers": 2, "max_vocab": 2000},
         "medium": {"emb_size": 200, "hidden_size": 400, "n_layers": 3, "max_vocab": 20000},
         "published": {"emb_size": 400, "hidden_size": 1152, "n_layers": 3, "max_vocab": 60000}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a TEXT_CSV folder (default: imdb_reviews, else "
                        "imdb_sample)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--lm-epochs", type=int, default=3)
    parser.add_argument("--clas-epochs", type=int, default=5, help="unfrozen epochs after gradual unfreezing")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = args.data or next(p for p in (DATA / "imdb_reviews", DATA / "imdb_sample") if p.exists())
    common = {**SIZES[args.size], "min_freq": 2, "device": args.device}
    lm_cfg = TextConfig(task="language_model", bptt=70 if args.size != "small" else 30, batch_size=64,
                        freeze_epochs=0, epochs=args.lm_epochs, lr=3e-2 if args.size == "small" else 1e-2,
                        group_lr_ratio=1.0, drop_mult=0.1 if args.size == "small" else 0.3, **common)

    n_groups = common["n_layers"] + 2
    gradual = (*(Stage(1, f) for f in range(n_groups - 1, 0, -1)), Stage(args.clas_epochs, 0))
    epochs = sum(s.epochs for s in gradual)

    def clas_cfg(base: BaseWeights, stages: tuple[Stage, ...] = gradual) -> TextConfig:
        return TextConfig(task="text_classification", base=base, batch_size=32, max_len=400, stages=stages, lr=2e-2,
                          drop_mult=0.3 if args.size == "small" else 0.5, **common)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        lm = fine_tune_language_model(lm_cfg, data, Path(tmp) / "lm")
        rows.append(("language model (stages 1-2)", lm["epochs_trained"], time.perf_counter() - start,
                     f"perplexity {lm['metrics']['perplexity']:.1f}, next-token acc {lm['metrics']['accuracy']:.3f}"))
        lm_base = BaseWeights("store", path=str(Path(tmp) / "lm"))
        for i, (name, cfg) in enumerate((("classifier on the LM encoder (stage 3)", clas_cfg(lm_base)),
                                         ("baseline: same, random encoder", clas_cfg(BaseWeights("none"))),
                                         ("baseline: random encoder, all unfrozen",
                                          clas_cfg(BaseWeights("none"), (Stage(epochs, 0),))))):
            start = time.perf_counter()
            result = fine_tune_text_classifier(cfg, data, Path(tmp) / f"classifier-{i}")
            rows.append((name, result["epochs_trained"], time.perf_counter() - start,
                         f"accuracy {result['metrics']['accuracy']:.3f}"))
    print(f"data {data}, size {args.size} ({lm['card']['size']}), precision {lm['card']['precision']}")
    print(f"| {'stage':40} | epochs | seconds | result |")
    print(f"| {'-' * 40} | ---: | ---: | --- |")
    for name, epochs, seconds, result in rows:
        print(f"| {name:40} | {epochs} | {seconds:.1f} | {result} |")


if __name__ == "__main__":
    main()
