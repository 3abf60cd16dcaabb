"""Pins the images the manifests run: writes deploy/k8s/components/images/kustomization.yaml and the image block
of the Helm chart's values.yaml, the two places that name them (tests/deploy/test_helm.py keeps them equal).
The release step (deploy/tools/release.sh) calls it with the digests the registry returned on push.

    python deploy/tools/pin_images.py --repository registry.example.com/fineserve --version 0.2.0 \\
        [--cpu-digest sha256:... --cuda-digest sha256:...]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1]
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.]+)?$")
HEADER = """\
# Written by deploy/tools/pin_images.py (the release step, deploy/README.md: Release): the image every container
# runs, pinned by digest, or by an immutable release tag until a release writes digests. Never a moving tag
# like :cpu, which IfNotPresent would keep serving from a node's cache after a re-push.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
images:
"""
VALUES_BLOCK = re.compile(r"^image:\n(?:  .*\n)+", re.MULTILINE)


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as f:
        f.write(text)
    os.replace(f.name, path)


def pin(deploy: Path, repository: str, version: str, digests: dict[str, str]) -> None:
    """Both files name `repository:<version>-<variant>`, with `@digest` where one is given."""
    if not VERSION.match(version):
        raise SystemExit(f"--version {version!r}: a release version like 0.2.0 (a tag no later push moves)")
    for variant, digest in digests.items():
        if digest and not DIGEST.match(digest):
            raise SystemExit(f"--{variant}-digest {digest!r}: expected sha256:<64 hex digits>")
    component = HEADER
    values = "image:\n" + f"  repository: {repository}\n"
    for variant, digest in digests.items():
        component += f"  - name: fineserve-{variant}\n    newName: {repository}\n    newTag: {version}-{variant}\n"
        component += f"    digest: {digest}\n" if digest else ""
        values += f"  {variant}:\n    tag: {version}-{variant}\n    digest: \"{digest}\"\n"
    write_atomically(deploy / "k8s" / "components" / "images" / "kustomization.yaml", component)
    values_file = deploy / "helm" / "fineserve" / "values.yaml"
    text, count = VALUES_BLOCK.subn(values, values_file.read_text(), count=1)
    if count != 1:
        raise SystemExit(f"{values_file}: no top-level image: block to replace")
    write_atomically(values_file, text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", required=True, help="where the registry holds the image, without a tag")
    p.add_argument("--version", required=True, help="the release version; tags are <version>-cpu, <version>-cuda")
    p.add_argument("--cpu-digest", default="", help="sha256:... of the pushed CPU image")
    p.add_argument("--cuda-digest", default="", help="sha256:... of the pushed CUDA image")
    p.add_argument("--deploy", type=Path, default=DEPLOY, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if ":" in a.repository.rsplit("/", 1)[-1] or "@" in a.repository:
        p.error("--repository takes no tag or digest")
    pin(a.deploy, a.repository, a.version, {"cpu": a.cpu_digest, "cuda": a.cuda_digest})


if __name__ == "__main__":
    main()
