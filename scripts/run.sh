#!/usr/bin/env bash
# `make run`: start the executor and the agent in the foreground with logs under CONFIG/logs.
# Usage: run.sh CONFIG_DIR EXECUTOR_ADDR AGENT_ADDR
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1 executor=$2 agent=$3
mkdir -p "$config"
if [ "$(id -u)" = 0 ] || docker version >/dev/null 2>&1; then
  # A Docker engine gives the strongest isolation; without one the executor falls back to bubblewrap.
  bash scripts/start-docker.sh && bash scripts/build-images.sh || echo "run: no Docker engine; the executor will use bubblewrap" >&2
fi
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait || true; }
trap cleanup EXIT INT TERM
.venv/bin/firebox-executor --listen "$executor" --config-dir "$config/executor" &
pids+=($!)
.venv/bin/firebox-agent --listen "$agent" --executor "$executor" --config-dir "$config/agent" &
pids+=($!)
echo "run: executor on $executor, agent on $agent (Ctrl-C stops both)" >&2
wait -n "${pids[@]}"
