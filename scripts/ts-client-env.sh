#!/usr/bin/env bash
# The TypeScript client's npm dependencies (clients/typescript/node_modules), installed exactly as
# package-lock.json pins them; does nothing when they are already installed from the same lock.
set -euo pipefail
cd "$(dirname "$0")/../clients/typescript"
command -v npm >/dev/null 2>&1 || { echo "ts-client-env: npm is missing (Node 20 and npm are needed)" >&2; exit 1; }
installed=node_modules/.package-lock.json
if [ -f "$installed" ] && [ "$installed" -nt package-lock.json ] && [ "$installed" -nt package.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
