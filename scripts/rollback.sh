#!/usr/bin/env bash
# Returns production to the previous colour, with the same preflight and verification as a swap.
# A doorway only: the logic is twinserve/promote.py, tested in tests/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/.venv/bin/python" -m twinserve rollback "$@"
