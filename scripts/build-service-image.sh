#!/usr/bin/env bash
# Build the Firebox service image with no registry: make the base image locally
# (scripts/build-base-image.sh), build the project's wheels on the host (`pip wheel`, which uses
# the host's pip configuration and cache), then `docker build` with both passed in. The image
# build itself needs no network.
#
#   FIREBOX_SERVICE_IMAGE  image to build            (default firebox:latest)
#   FIREBOX_BASE_IMAGE     base image to make/use    (default firebox-base:bookworm)
#   PYTHON                 python with pip for wheels (default .venv/bin/python, else python3)
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE=${FIREBOX_SERVICE_IMAGE:-firebox:latest}
BASE=${FIREBOX_BASE_IMAGE:-firebox-base:bookworm}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

started=$(date +%s)
FIREBOX_BASE_IMAGE=$BASE bash scripts/build-base-image.sh

# The image's Python must take the same wheels as the host's: same minor version.
image_py=$(docker run --rm --entrypoint python3 "$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_py=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$image_py" != "$host_py" ]; then
  echo "build-service-image: $BASE has Python $image_py but $PYTHON is $host_py; wheels must match" >&2
  exit 1
fi

echo "build-service-image: building wheels into build/wheels" >&2
rm -rf build/wheels
mkdir -p build
"$PYTHON" -m pip wheel --disable-pip-version-check -w build/wheels . >build/pip-wheel.log 2>&1 || {
  tail -n 30 build/pip-wheel.log >&2
  echo "build-service-image: pip wheel failed; full log in build/pip-wheel.log" >&2
  exit 1
}

echo "build-service-image: docker build $IMAGE (BASE_IMAGE=$BASE)" >&2
docker build --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" . >build/docker-build.log 2>&1 || {
  tail -n 30 build/docker-build.log >&2
  echo "build-service-image: docker build failed; full log in build/docker-build.log" >&2
  exit 1
}
echo "build-service-image: built $IMAGE in $(($(date +%s) - started)) s" >&2
