#!/bin/sh
# Entrypoint of the Firebox image: the first argument names what to run.
set -e
command=${1:-help}
[ $# -gt 0 ] && shift
case "$command" in
  executor)
    # On Swarm, compose.yaml sets FIREBOX_TASK_SLOT to the task's slot number: each replica then
    # keeps its own state (instance id = owner of its workspace containers) in DIR/slot-N, which
    # a restarted task of the same slot adopts again. Anything but a number (compose leaves the
    # template text as it is) means a single executor: DIR as given.
    case "${FIREBOX_TASK_SLOT:-}" in
      '' | *[!0-9]*) ;;
      *) export FIREBOX_CONFIG_DIR="${FIREBOX_CONFIG_DIR:-/var/lib/firebox/executor}/slot-$FIREBOX_TASK_SLOT" ;;
    esac
    exec firebox-executor "$@"
    ;;
  agent)
    # Several agent replicas share a PostgreSQL database (FIREBOX_DATABASE_URL) and, on one Swarm
    # node, the config volume: each then keeps its logs and training log in DIR/slot-N. With
    # SQLite a single agent owns DIR (its database is there), as before.
    if [ -n "${FIREBOX_DATABASE_URL:-}" ]; then
      case "${FIREBOX_TASK_SLOT:-}" in
        '' | *[!0-9]*) ;;
        *) export FIREBOX_CONFIG_DIR="${FIREBOX_CONFIG_DIR:-/var/lib/firebox/agent}/slot-$FIREBOX_TASK_SLOT" ;;
      esac
    fi
    exec firebox-agent "$@"
    ;;
  firebox | cli) exec firebox "$@" ;;
  healthcheck) exec python -m firebox.common.healthprobe "$@" ;;
  docker-proxy) exec python -m firebox.deploy.docker_proxy "$@" ;;
  help | --help | -h)
    cat <<'USAGE'
usage: docker run IMAGE COMMAND [ARGS...]
  executor ARGS      run firebox-executor (firebox-executor --help for ARGS)
  agent ARGS         run firebox-agent
  firebox ARGS       run the firebox CLI
  healthcheck TARGET exit 0 when TARGET's gRPC health service reports SERVING
  docker-proxy ARGS  the Docker API proxy limited to the executor's calls (compose.socket-proxy.yaml)
  anything else      run it as a command (e.g. sh)
USAGE
    ;;
  *) exec "$command" "$@" ;;
esac
