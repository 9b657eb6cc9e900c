#!/usr/bin/env bash
# Deploy compose.yaml as a Swarm stack: `docker stack deploy` with the blocks marked
# `# swarm-strip-begin` ... `# swarm-strip-end` taken out:
#   - the agent's `depends_on: {executor: {condition: service_healthy}}`: compose needs it to start
#     the agent after a healthy executor; the Swarm schema only accepts a list there (and Swarm
#     ignores start order anyway: it restarts the agent until it is healthy);
#   - the executor's published port: replicas are reached through the agent, and a published
#     port cannot go with `endpoint_mode: dnsrr`.
# Further compose files given with `-c FILE` (e.g. compose.postgres.yaml) are layered on top,
# stripped the same way; other arguments go to `docker stack deploy` as they are.
# Executor replicas: FIREBOX_EXECUTOR_REPLICAS, default 2 here. Agent replicas:
# FIREBOX_AGENT_REPLICAS, default 1; more need a shared PostgreSQL (compose.postgres.yaml or
# FIREBOX_DATABASE_URL) and, with the port in host mode, a port each (FIREBOX_AGENT_PORT=0) when
# they outnumber the nodes.
# Usage: scripts/stack-deploy.sh [STACK] [-c FILE]... [extra docker stack deploy args]   (default STACK firebox)
set -euo pipefail

stack=${1:-firebox}
[ $# -gt 0 ] && shift
overlays=()
passed=()
while [ $# -gt 0 ]; do
  case $1 in
    -c | --compose-file)
      [ $# -ge 2 ] || { echo "stack-deploy: $1 needs a file" >&2; exit 1; }
      overlays+=("$(realpath "$2")")
      shift 2
      ;;
    --compose-file=*) overlays+=("$(realpath "${1#*=}")"); shift ;;
    *) passed+=("$1"); shift ;;
  esac
done
cd "$(dirname "$0")/.."
if ! docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
  echo "stack-deploy: this engine is not in a swarm; run: docker swarm init --advertise-addr 127.0.0.1" >&2
  exit 1
fi
export FIREBOX_EXECUTOR_REPLICAS=${FIREBOX_EXECUTOR_REPLICAS:-2}
agents=${FIREBOX_AGENT_REPLICAS:-1}
if [ "$agents" -gt 1 ]; then
  if [ -z "${FIREBOX_DATABASE_URL:-}" ] &&
    ! grep -qs 'FIREBOX_DATABASE_URL:' /dev/null "${overlays[@]}"; then
    echo "stack-deploy: $agents agent replicas need a shared PostgreSQL: add -c compose.postgres.yaml or set FIREBOX_DATABASE_URL" >&2
    exit 1
  fi
  nodes=$(docker node ls -q | wc -l)
  if [ "${FIREBOX_AGENT_PORT_MODE:-host}" = host ] && [ "${FIREBOX_AGENT_PORT:-50052}" != 0 ] && [ "$agents" -gt "$nodes" ]; then
    echo "stack-deploy: $agents agent replicas on $nodes node(s) cannot all open host port ${FIREBOX_AGENT_PORT:-50052}:" \
      "set FIREBOX_AGENT_PORT=0 (a free port each; docker service ps ${stack}_agent shows them)" \
      "or FIREBOX_AGENT_PORT_MODE=ingress (the routing mesh; needs the kernel's IPVS)" >&2
    exit 1
  fi
fi

# Stripped copies next to the originals, so that relative paths in them mean what they meant.
files=()
trap 'rm -f "${files[@]}"' EXIT
for source in "$PWD/compose.yaml" "${overlays[@]}"; do
  copy=$(mktemp "$(dirname "$source")/.stack-deploy.XXXXXX.yaml")
  files+=("$copy")
  sed '/# swarm-strip-begin/,/# swarm-strip-end/d' "$source" >"$copy"
done
args=()
for file in "${files[@]}"; do args+=(--compose-file "$file"); done
docker stack deploy "${args[@]}" "${passed[@]}" "$stack"
