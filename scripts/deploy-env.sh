#!/usr/bin/env bash
# Everything the deployment end-to-end tests need, made locally with no registry: docker-compose
# (Debian's 1.29), the workspace image, the debootstrapped base image, the service image and the
# PostgreSQL image of compose.postgres.yaml. Each step is skipped when its result exists, except
# the service image, which is rebuilt from the current sources (about 20 s; its base and wheels
# come from caches); the PostgreSQL image is tagged by the hash of its recipe and its base, and
# built only when that tag is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deploy-env: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/start-docker.sh
bash scripts/build-images.sh
bash scripts/build-service-image.sh
bash scripts/build-postgres-image.sh >/dev/null
