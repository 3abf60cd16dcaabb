#!/usr/bin/env bash
# Set up .venv with the generated stubs (stubs/), the shared package (common/), the SDK (clients/python), the
# server (repo root) and the dev tools.
# torch/torchvision are pinned (2.14.1 / 0.29.1); pip takes them from the local wheel cache where one exists.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ./stubs -e ./common -e './clients/python[progress]' -e '.[dev]'
# kubectl and helm for tests/deploy (into .venv/bin; missing, those tests fail under CI and skip elsewhere).
bash deploy/tools/install-k8s-tools.sh || echo "setup: kubectl/helm not installed; tests/deploy will need them" >&2
