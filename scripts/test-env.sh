#!/usr/bin/env bash
# Everything the test suite needs beyond the virtual environment: a Docker engine that answers,
# bubblewrap, and the locally built workspace image. Installs and starts what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# The docker backend's size-limited /workspace (executor_service/backends/disks.py): mkfs.ext4, losetup/mount.
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || need+=(mount)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-env: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/start-docker.sh
bash scripts/build-images.sh
