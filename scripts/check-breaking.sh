#!/usr/bin/env bash
# Fail when protos/ breaks the wire or JSON form of the last released protos (buf breaking, the
# WIRE_JSON rules in buf.yaml). The training log is proto-JSON read by training pipelines, so
# renaming or renumbering a field, or changing its type, must fail the build. The snapshot is
# protos/released.binpb; cut a new one with `make release-protos` when releasing.
# Usage: check-breaking.sh [SNAPSHOT]
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${BUF:-.venv/bin/buf}
against=${1:-protos/released.binpb}
if [ ! -f "$against" ]; then
  echo "check-breaking: no released snapshot at $against; cut one with 'make release-protos'" >&2
  exit 1
fi
if ! "$buf" breaking --against "$against"; then
  echo "check-breaking: protos/ breaks the released protos ($against). Add fields instead of renaming," \
    "renumbering or retyping them; reserve removed ones." >&2
  exit 1
fi
echo "check-breaking: protos/ is compatible with $against (WIRE_JSON)"
