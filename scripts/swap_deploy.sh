#!/usr/bin/env bash
# Promotes staging to production: preflight (ping, ready workers, golden-set smoke), switch without reload, verify.
# A doorway only: the logic is twinserve/release/promote.py, tested in tests/; twinserve/doorway.py runs it
# on the native stack, or with TWINSERVE_MODE=compose on the compose stack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 -I "$root/twinserve/doorway.py" swap "$@"
