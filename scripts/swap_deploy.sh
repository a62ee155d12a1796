#!/usr/bin/env bash
# Usage: scripts/swap_deploy.sh [model]   (default: the stack's default model), e.g. scripts/swap_deploy.sh digits
# Promotes the model's staging colour to production: preflight (ping, ready workers, golden-set smoke),
# switch without reload, verify. No other model's colour changes.
# A doorway only: the logic is twinserve/release/promote.py, tested in tests/; twinserve/doorway.py runs it
# on the native stack, or with TWINSERVE_MODE=compose on the compose stack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 -I "$root/twinserve/doorway.py" swap "$@"
