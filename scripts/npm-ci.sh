#!/usr/bin/env bash
# `npm ci` in DIR (a folder with package.json and package-lock.json) only when its lock file changed
# since the last install there: npm ci deletes node_modules first, so it is never run for nothing.
# Usage: npm-ci.sh DIR
set -euo pipefail
cd "$(dirname "$0")/../$1"
command -v npm >/dev/null 2>&1 || { echo "npm-ci: npm is missing (Node 20 and npm are needed)" >&2; exit 1; }
if ! cmp -s package-lock.json node_modules/.firebox-installed-lock; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.firebox-installed-lock
fi
