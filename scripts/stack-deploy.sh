#!/usr/bin/env bash
# Deploy compose.yaml as a Swarm stack: `docker stack deploy` with the blocks marked
# `# swarm-strip-begin` ... `# swarm-strip-end` taken out:
#   - the agent's `depends_on: {executor: {condition: service_healthy}}`: compose needs it to start
#     the agent after a healthy executor; the Swarm schema only accepts a list there (and Swarm
#     ignores start order anyway: it restarts the agent until it is healthy);
#   - the executor's published port: replicas are reached through the agent, and a published
#     port cannot go with `endpoint_mode: dnsrr`.
# Executor replicas: FIREBOX_EXECUTOR_REPLICAS, default 2 here.
# Usage: scripts/stack-deploy.sh [STACK] [extra docker stack deploy args]   (default STACK firebox)
set -euo pipefail

cd "$(dirname "$0")/.."
stack=${1:-firebox}
[ $# -gt 0 ] && shift
if ! docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
  echo "stack-deploy: this engine is not in a swarm; run: docker swarm init --advertise-addr 127.0.0.1" >&2
  exit 1
fi
export FIREBOX_EXECUTOR_REPLICAS=${FIREBOX_EXECUTOR_REPLICAS:-2}
sed '/# swarm-strip-begin/,/# swarm-strip-end/d' compose.yaml |
  docker stack deploy --compose-file - "$@" "$stack"
