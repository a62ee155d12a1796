#!/usr/bin/env bash
# Usage: scripts/rollback.sh [model]   (default: the stack's default model)
# Returns the model's production to its previous colour, with the same preflight and verification
# as a swap. No other model's colour changes.
# A doorway only: the logic is twinserve/release/promote.py, tested in tests/; twinserve/doorway.py runs it
# on the native stack, or with TWINSERVE_MODE=compose on the compose stack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 -I "$root/twinserve/doorway.py" rollback "$@"
