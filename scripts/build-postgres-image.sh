#!/usr/bin/env bash
# Build firebox-postgres, the PostgreSQL of compose.postgres.yaml, with no registry: Debian's
# postgresql package on the locally made base image (deploy/postgres/Dockerfile). The image is
# tagged with a hash of its recipe (deploy/postgres/) and of the base image's id, as
# firebox-postgres:<hash>, and that tag is also given the name compose uses (default
# firebox-postgres:latest); when the hash tag exists nothing is built, so CI rebuilds it only
# when the recipe or the base changes.
#
#   FIREBOX_POSTGRES_IMAGE  name to tag             (default firebox-postgres:latest)
#   FIREBOX_BASE_IMAGE      base image to make/use  (default firebox-base:bookworm)
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE=${FIREBOX_POSTGRES_IMAGE:-firebox-postgres:latest}
BASE=${FIREBOX_BASE_IMAGE:-firebox-base:bookworm}

FIREBOX_BASE_IMAGE=$BASE bash scripts/build-base-image.sh
base_id=$(docker image inspect --format '{{.Id}}' "$BASE")
hash=$( { echo "$base_id"; cd deploy/postgres && find . -type f | LC_ALL=C sort | xargs sha256sum; } |
  sha256sum | cut -c1-12)
cached="firebox-postgres:$hash"

if ! docker image inspect "$cached" >/dev/null 2>&1; then
  started=$(date +%s)
  mkdir -p build
  echo "build-postgres-image: docker build $cached (BASE_IMAGE=$BASE)" >&2
  docker build --build-arg BASE_IMAGE="$BASE" -t "$cached" deploy/postgres >build/postgres-build.log 2>&1 || {
    tail -n 30 build/postgres-build.log >&2
    echo "build-postgres-image: docker build failed; full log in build/postgres-build.log" >&2
    exit 1
  }
  echo "build-postgres-image: built $cached in $(($(date +%s) - started)) s" >&2
fi
[ "$IMAGE" = "$cached" ] || docker tag "$cached" "$IMAGE"
echo "$cached"
