#!/usr/bin/env bash
# Regenerate the Python stubs (with .pyi) from protos/ into the firebox package. The .proto path
# mirrors the package path, so generated imports work unchanged. Usage: gen-protos.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
py=${PYTHON:-.venv/bin/python}
mapfile -t protos < <(find protos -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -Iprotos --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
for dir in $(find "$out/firebox" -path '*/v1' -type d); do
  for d in "$dir" "$(dirname "$dir")"; do
    [ -f "$d/__init__.py" ] || : >"$d/__init__.py"
  done
done
