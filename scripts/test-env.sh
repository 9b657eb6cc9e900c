#!/usr/bin/env bash
# Everything the test suite needs beyond the virtual environment: a Docker engine that answers,
# bubblewrap, tmux (the interactive CLI tests), PostgreSQL's server binaries (the store tests start
# their own throwaway cluster with initdb/pg_ctl; nothing is started here), the locally built
# workspace image, and the npm packages of the Node tests (the MCP SDK's client, the TypeScript
# client). Installs and starts what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# The MCP tests: Node runs the TypeScript SDK's client; a workspace (bubblewrap, host /usr) runs
# the Python SDK's server with the interpreter under /usr that matches the venv's version.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
venv_python=$(.venv/bin/python -c 'import sys; print("python%d.%d" % sys.version_info[:2])' 2>/dev/null || echo python3)
[ -x "/usr/bin/$venv_python" ] || need+=("$venv_python")
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-env: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/npm-ci.sh tests/mcp_node
bash scripts/npm-ci.sh clients/typescript
bash scripts/start-docker.sh
bash scripts/build-images.sh
# The stock-like images of the workspace tests (a debootstrap Debian root and busybox variants),
# tagged with a hash of their recipe: rebuilt only when scripts/build-stock-images.sh changes.
bash scripts/build-stock-images.sh >/dev/null
