#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io when dockerd is
# missing, start it in the background when it is not running, and wait until it answers.
set -euo pipefail

if docker version >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-docker: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
echo "start-docker: starting dockerd" >&2
mkdir -p /var/log
nohup dockerd >/var/log/firebox-dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  if docker version >/dev/null 2>&1; then
    echo "start-docker: engine answers" >&2
    exit 0
  fi
  sleep 0.5
done
echo "start-docker: dockerd did not answer within 60 s; see /var/log/firebox-dockerd.log" >&2
tail -n 30 /var/log/firebox-dockerd.log >&2 || true
exit 1
