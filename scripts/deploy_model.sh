#!/usr/bin/env bash
# Usage: scripts/deploy_model.sh [<model name, archive in model_store/ or model dir> [version]]
# (default: the stack's default model, its next minor version). Registers the version on the
# model's staging colour, makes it the default there, smoke-tests it through /test/predict/<model>
# and retires the older versions on staging. Production is untouched.
# A doorway only: the logic is twinserve/release/deploy.py, tested in tests/; twinserve/doorway.py runs it
# on the native stack, or with TWINSERVE_MODE=compose on the compose stack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 -I "$root/twinserve/doorway.py" deploy "$@"
