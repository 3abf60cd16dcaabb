#!/usr/bin/env bash
# Issue 21's whole check on one CUDA machine (about 6 minutes): the decode_jpeg path on the GPU agrees with
# PIL's on ../shared/data/hymenoptera, then benchmarks/serve_throughput.py at bf16 with four 0.25-GPU replicas
# and one front door (one-image calls at concurrency 1/32/64/256, 32-image calls at concurrency 8, the
# forward-only and decode_jpeg + forward ceilings), then two front doors on a Ray head.
# The machine has Python 3.12 with torch and torchvision but no Ray or gRPC and no network: they come from the
# archive `bash ../shared/tools/gpu-packages.sh .gpu` builds (.gpu/ is git-ignored).
#   bash benchmarks/gpu/serve.sh [ARCHIVE]     (default: $GPU_PACKAGES, else .gpu/gpu-site312.tar.xz)
set -euo pipefail
cd "$(dirname "$0")/../.."
archive=${1:-${GPU_PACKAGES:-.gpu/gpu-site312.tar.xz}}
[[ -f $archive ]] || { echo "no package archive at $archive: build it with bash ../shared/tools/gpu-packages.sh .gpu" >&2; exit 2; }
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
tar -xJf "$archive" -C "$site"
export PYTHONPATH=$site/site312:$PWD:$PWD/common:$PWD/stubs:$PWD/clients/python
export OMP_NUM_THREADS=1
photos=../shared/data/hymenoptera
[[ -d $photos ]] || photos=shared/data/hymenoptera
export PHOTOS=$photos
py=${PYTHON:-python3}
$py - <<'PY'
import importlib, torch
missing = [m for m in ("ray.serve", "grpc", "prometheus_client", "psutil", "safetensors", "PIL")
           if importlib.util.find_spec(m.split(".")[0]) is None]
assert not missing, f"missing packages: {missing} (EXTRA_PACKAGES for gpu-packages.sh)"
assert torch.cuda.is_available(), "no CUDA device"
print("torch", torch.__version__, torch.cuda.get_device_name())
PY

echo "== 1. decode_jpeg on the GPU against PIL on the real photos (top-1 >= 99 %, probabilities within 0.02)"
timeout 120 $py - <<'PY'
from pathlib import Path
import torch
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.forward import forward_logits
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD
cuda = torch.device("cuda")
torch.manual_seed(0)
net = ResNetClassifier("resnet18", 10).eval().to(cuda)
card = {"classes": [f"c{i}" for i in range(10)], "image_size": 224, "arch": "resnet18",
        "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
model = ImageClassifier(net, card, cuda)
import os
photos = sorted(Path(os.environ["PHOTOS"]).rglob("*.jpg"))
datas = [p.read_bytes() for p in photos]
batch = model.preprocess(datas)  # PIL on CPU threads
logits = forward_logits(net, batch, cuda)
fc = net.head[-1]
with torch.no_grad():  # centred and scaled so that the classes split the photos
    scale = 2 / logits.std()
    fc.weight *= scale
    fc.bias.copy_(scale * (fc.bias - logits.mean(0).to(cuda)))
pil = model.predict_tensor(batch)
model.decode_device = cuda
gpu = torch.cat([model.predict_tensor(model.preprocess(datas[i:i + 32])) for i in range(0, len(datas), 32)])
same = (pil.argmax(1) == gpu.argmax(1)).float().mean().item()
worst = (pil - gpu).abs().max().item()
print(f"{len(datas)} photos: top-1 identical on {same:.2%}, largest probability difference {worst:.4f}")
assert same >= 0.99 and worst <= 0.02, "the GPU decode path disagrees with PIL's"
PY

replicas=(--serve-replica-gpus 0.25 --serve-replica-cpus 2 --serve-min-replicas 4 --serve-max-replicas 4)
echo "== 2. one front door, four 0.25-GPU replicas (goals: 32x8 >= 5000 img/s; concurrency 256 >= 2000 img/s; one image within 3 ms of raw)"
timeout 240 $py benchmarks/serve_throughput.py --precision bf16 --requests 1024 --concurrency 1 32 64 256 \
  --many-concurrency 8 --blocks 4 -- "${replicas[@]}"
echo "== 3. two front doors on one Ray head (they must start; callers spread over both)"
timeout 180 $py benchmarks/serve_throughput.py --precision bf16 --requests 1024 --concurrency 64 256 \
  --many-concurrency 8 --blocks 1 --front-doors 2 -- "${replicas[@]}"
