#!/usr/bin/env bash
# Issue 20's whole check on one CUDA machine (one H200: about 6 minutes): the training step against the strong
# plain loop (benchmarks/train_throughput.py --device cuda) and a fine-tune job end to end through gRPC on
# 20,000 generated JPEGs (benchmarks/train_job_e2e.py: ResNet-50, 224 px, batch 128, bf16), each printing its
# table; the job's second epoch against the plain loop is the issue's 0.8 goal, the step's ratio its 0.95.
#
# The machine has Python 3.12 with torch and torchvision but no network, Ray or gRPC, so prepare here first
# (needs pip and network; writes the git-ignored .gpu/, under 64 MiB to carry):
#   bash benchmarks/gpu/train.sh --prepare
# which builds .gpu/gpu-site312.tar.xz (../shared/tools/gpu-packages.sh) and .gpu/hymenoptera (the ants and
# bees photos shrunk to a 320 px short side, the e2e data set's sources). Then, on the CUDA machine, from the
# repository root, with .gpu carried:
#   bash benchmarks/gpu/train.sh [ARCHIVE]     # ARCHIVE, or $GPU_PACKAGES, default .gpu/gpu-site312.tar.xz
# Options through the environment: IMAGES (default 20000), PHOTOS (default .gpu/hymenoptera).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ${1:-} == --prepare ]]; then
    mkdir -p .gpu
    [[ -f .gpu/gpu-site312.tar.xz ]] || bash ../shared/tools/gpu-packages.sh .gpu
    .venv/bin/python - <<'PY'
from pathlib import Path
from PIL import Image, ImageOps
src, out = Path("../shared/data/hymenoptera"), Path(".gpu/hymenoptera")
for path in sorted(src.glob("*/*/*.jpg")):
    dest = out / path.relative_to(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(path) as image:
        image.draft("RGB", (640, 640))
        image = ImageOps.exif_transpose(image).convert("RGB")
    scale = 320 / min(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    image.save(dest, quality=85)
PY
    du -sh .gpu
    exit 0
fi

archive=${1:-${GPU_PACKAGES:-.gpu/gpu-site312.tar.xz}}
photos=${PHOTOS:-.gpu/hymenoptera}
[[ -f $archive ]] || { echo "no package archive at $archive: run bash benchmarks/gpu/train.sh --prepare" >&2; exit 2; }
[[ -d $photos ]] || photos=../shared/data/hymenoptera
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
tar -xJf "$archive" -C "$site"
export PYTHONPATH=$site/site312:$PWD:$PWD/common:$PWD/stubs:$PWD/clients/python:$PWD/benchmarks
export PYTHONUNBUFFERED=1
python3 -c 'import torch, torchvision, ray, grpc; print("torch", torch.__version__, "torchvision",
torchvision.__version__, "ray", ray.__version__, "grpc", grpc.__version__, torch.cuda.get_device_name())'
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true

echo "== training step: engine against the strong plain loop (goal: ratio >= 0.95) =="
timeout 200 python3 benchmarks/train_throughput.py --device cuda
echo "== fine-tune job end to end, second epoch against the plain loop (goal: ratio >= 0.8) =="
timeout 300 python3 benchmarks/train_job_e2e.py --device cuda --images "${IMAGES:-20000}" --photos "$photos" \
    --work "$site/images"
