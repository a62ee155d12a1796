#!/usr/bin/env bash
# Usage: scripts/which_is_production.sh [model | --all]   (default: the stack's default model)
# Prints `production is BLUE` or `production is GREEN`; --all one line per model, `digits: production is BLUE`.
# A doorway only: the logic is twinserve/release/promote.py, tested in tests/; twinserve/doorway.py runs it
# on the native stack, or with TWINSERVE_MODE=compose on the compose stack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 -I "$root/twinserve/doorway.py" which "$@"
