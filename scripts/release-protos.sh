#!/usr/bin/env bash
# Cut a release snapshot of the protos: protos/released.binpb, the buf image that
# scripts/check-breaking.sh compares against. Run it when releasing and commit the file; from then
# on every field name and number in it is a contract. Refuses a snapshot that itself breaks the
# previous one, so a release can never launder a rename. Usage: release-protos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${BUF:-.venv/bin/buf}
out=protos/released.binpb
"$buf" lint
[ ! -f "$out" ] || bash scripts/check-breaking.sh "$out"
"$buf" build --exclude-source-info -o "$out"
echo "release-protos: wrote $out; commit it"
