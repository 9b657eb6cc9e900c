#!/usr/bin/env bash
# Fail when the TypeScript client's committed generated code differs from a fresh generation
# (a .proto changed without `make ts-client`, or generated code was edited by hand), or when the
# client does not type-check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/npm-ci.sh clients/typescript
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash scripts/gen-ts-client.sh "$tmp/gen"
if ! diff -r "$tmp/gen" clients/typescript/src/gen >"$tmp/diff"; then
  echo "check-ts-client: clients/typescript/src/gen differs from protos/ — run 'make ts-client' and commit:" >&2
  head -n 40 "$tmp/diff" >&2
  exit 1
fi
(cd clients/typescript && npm run --silent build)
echo "check-ts-client: generated code is up to date; the client and its examples build"
