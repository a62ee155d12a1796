#!/usr/bin/env bash
# Prints `production is BLUE` or `production is GREEN`.
# A doorway only: the logic is twinserve/promote.py, tested in tests/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/.venv/bin/python" -m twinserve which "$@"
