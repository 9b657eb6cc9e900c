#!/usr/bin/env bash
# Fail when the committed stubs differ from a fresh generation (someone edited a .proto and
# forgot `make protos`, or edited generated code by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash scripts/gen-protos.sh "$tmp"
if ! diff -r -x '__pycache__' -x '*.py[co]' "$tmp/firebox" firebox 2>/dev/null \
    | grep -E '^(Only in '"$tmp"'|diff|<|>)' >"$tmp.diff"; then
  echo "check-protos: generated stubs are up to date"
  exit 0
fi
echo "check-protos: committed stubs differ from protos/ — run 'make protos' and commit:" >&2
head -n 40 "$tmp.diff" >&2
exit 1
