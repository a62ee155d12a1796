#!/usr/bin/env bash
# Promotes staging to production: preflight (ping, ready workers, golden-set smoke), switch without reload, verify.
# A doorway only: the logic is twinserve/promote.py, tested in tests/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/.venv/bin/python" -m twinserve swap "$@"
