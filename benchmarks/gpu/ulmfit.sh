#!/usr/bin/env bash
# Issue 27's GPU protocol on one CUDA machine (one H200; meant to take 6-10 minutes, not yet run: figures
# pending). Two parts, each printing its table:
# 1. The language model's training speed: the engine's AWD-LSTM (400/1152/3, every dropout and the per-forward
#    weight drop on, bf16 autocast) against a plain stack of torch.nn.LSTM layers of the same sizes with the same
#    tied embedding/decoder, loss and AdamW step, in tokens/s (goal: ratio 0.9 or more).
# 2. ULMFiT at the published size on the full IMDB set (benchmarks/ulmfit_imdb.py): the LM on all 75,000
#    training + unlabelled reviews, the classifier on the 25,000 training labels from its encoder (ULMFiT's
#    schedule) and from a random encoder (a flat rate), accuracy on all 25,000 test reviews (goal: 0.92 or more,
#    and ahead of the random encoder).
#
# The machine has Python 3.12 with torch but no network, so build the package archive here first (as
# benchmarks/gpu/train.sh --prepare does; needs pip and network; writes the git-ignored .gpu/):
#   bash benchmarks/gpu/train.sh --prepare
# Then, on the CUDA machine, from the repository root, with .gpu carried and ../shared/data/imdb present:
#   bash benchmarks/gpu/ulmfit.sh [ARCHIVE]    # ARCHIVE, or $GPU_PACKAGES, default .gpu/gpu-site312.tar.xz
# Options through the environment: IMDB (default ../shared/data/imdb), LM_EPOCHS (2), CLAS_EPOCHS (5: with
# ULMFiT's schedule 4 of gradual unfreezing + 1 unfrozen), SPEED_STEPS (60).
set -euo pipefail
cd "$(dirname "$0")/../.."

archive=${1:-${GPU_PACKAGES:-.gpu/gpu-site312.tar.xz}}
[[ -f $archive ]] || { echo "no package archive at $archive: run bash benchmarks/gpu/train.sh --prepare" >&2; exit 2; }
imdb=${IMDB:-../shared/data/imdb}
[[ -f $imdb/labelled.csv.gz && -f $imdb/unsup.csv.gz ]] || { echo "no IMDB set at $imdb (set IMDB)" >&2; exit 2; }
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
tar -xJf "$archive" -C "$site"
export PYTHONPATH=$site/site312:$PWD:$PWD/common:$PWD/stubs:$PWD/clients/python:$PWD/benchmarks
export PYTHONUNBUFFERED=1 FINESERVE_TEXT_CACHE=$site/text-cache
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true

echo "== LM training speed: AWD-LSTM against plain nn.LSTM layers, 400/1152/3, batch 64 x bptt 70, bf16 =="
SPEED_STEPS=${SPEED_STEPS:-60} timeout 240 python3 - <<'PY'
import os, time
import torch
from torch import nn
from torch.nn import functional as F
from worker.engine.text.awd_lstm import AWDLSTMSize, LanguageModel

VOCAB, BATCH, BPTT, STEPS = 60000, 64, 70, int(os.environ["SPEED_STEPS"])
size = AWDLSTMSize(VOCAB, 400, 1152, 3)


class PlainLM(nn.Module):
    """The same sizes as plain cuDNN layers: no dropout of any kind."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 400)
        self.rnns = nn.ModuleList(nn.LSTM(i, o, batch_first=True) for i, o in ((400, 1152), (1152, 1152), (1152, 400)))
        self.decoder = nn.Linear(400, VOCAB)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        for rnn in self.rnns:
            x, _ = rnn(x)
        return self.decoder(x).reshape(-1, VOCAB)


def tokens_per_s(model: nn.Module) -> float:
    model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(2, VOCAB, (BATCH, BPTT), device="cuda")
    y = torch.randint(2, VOCAB, (BATCH * BPTT,), device="cuda")
    for step in range(STEPS + 10):
        if step == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        if hasattr(model, "reset"):
            model.reset()
    torch.cuda.synchronize()
    return STEPS * BATCH * BPTT / (time.perf_counter() - start)


torch.backends.cudnn.benchmark = True
plain, awd = tokens_per_s(PlainLM()), tokens_per_s(LanguageModel(size, drop_mult=0.3))
print("| model | tokens/s |\n| --- | --- |")
print(f"| plain nn.LSTM stack | {plain:,.0f} |\n| AWD-LSTM (engine) | {awd:,.0f} |")
print(f"ratio {awd / plain:.3f} (goal >= 0.9)")
PY

echo "== ULMFiT, published size: LM on 75,000 reviews, classifier on 25,000 labels, all 25,000 test reviews =="
timeout 560 python3 benchmarks/ulmfit_imdb.py --data "$imdb" --size published --device cuda --precision bf16 \
    --threads 16 --lm-unsup 50000 --lm-train 25000 --lm-epochs "${LM_EPOCHS:-2}" --labels 25000 \
    --clas-epochs "${CLAS_EPOCHS:-5}" --schedules ulmfit --random-schedules flat --clas-batch 64 --test 0
