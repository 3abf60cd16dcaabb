#!/bin/bash
# The release step: build both image variants, push them under immutable version tags, and pin the manifests
# (kustomize and Helm) to the digests the registry returned. Commit the two files it rewrites:
#   deploy/k8s/components/images/kustomization.yaml and deploy/helm/fineserve/values.yaml
#
#   deploy/tools/release.sh registry.example.com/fineserve 0.2.0
#
# Refuses a tag that already exists in the registry: a release tag is never moved (turn on tag immutability in
# the registry too, where it has it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $# -ne 2 ]]; then
    echo "usage: $0 REPOSITORY VERSION   (e.g. registry.example.com/fineserve 0.2.0)" >&2
    exit 2
fi
REPOSITORY="$1"
VERSION="$2"
declare -A DIGEST
for variant in cpu cuda; do
    tag="${REPOSITORY}:${VERSION}-${variant}"
    if docker manifest inspect "$tag" >/dev/null 2>&1; then
        echo "release: $tag already exists; release tags are never moved" >&2
        exit 1
    fi
    docker build -f deploy/docker/Dockerfile --build-arg VARIANT="$variant" -t "$tag" .
    docker push "$tag"
    # RepoDigests holds repository@sha256:... once pushed.
    ref="$(docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" | grep -m1 "^${REPOSITORY}@")"
    DIGEST[$variant]="${ref#*@}"
done
python3 deploy/tools/pin_images.py --repository "$REPOSITORY" --version "$VERSION" \
    --cpu-digest "${DIGEST[cpu]}" --cuda-digest "${DIGEST[cuda]}"
echo "release: pinned ${REPOSITORY} ${VERSION} (cpu ${DIGEST[cpu]}, cuda ${DIGEST[cuda]}); commit the two files"
