#!/usr/bin/env bash
# Regenerate the TypeScript client's protobuf code (clients/typescript/src/gen) from protos/ with
# protoc from grpcio-tools (the one `make protos` uses) and @bufbuild/protoc-gen-es, pinned in
# clients/typescript/package-lock.json. Usage: gen-ts-client.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-clients/typescript/src/gen}
py=${PYTHON:-.venv/bin/python}
plugin=clients/typescript/node_modules/.bin/protoc-gen-es
bash scripts/npm-ci.sh clients/typescript
mapfile -t protos < <(find protos -name '*.proto' | sort)
rm -rf "$out"
mkdir -p "$out"
"$py" -m grpc_tools.protoc -Iprotos --plugin=protoc-gen-es="$plugin" \
  --es_out="$out" --es_opt=target=ts,import_extension=js "${protos[@]}"
