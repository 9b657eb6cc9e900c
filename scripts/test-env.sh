#!/usr/bin/env bash
# Everything the test suite needs beyond the virtual environment: a Docker engine that answers,
# bubblewrap, tmux (the interactive CLI tests), and the locally built workspace image. Installs and starts what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
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
# The stock-like images of the workspace tests (a debootstrap Debian root and busybox variants),
# tagged with a hash of their recipe: rebuilt only when scripts/build-stock-images.sh changes.
bash scripts/build-stock-images.sh >/dev/null
