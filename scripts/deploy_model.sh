#!/usr/bin/env bash
# Usage: scripts/deploy_model.sh <archive in model_store/ or model dir> [version]
# Registers the version on the staging colour, makes it the default there, smoke-tests
# it through /test/predict and retires the older versions on staging. Production is untouched.
# A doorway only: the logic is twinserve/deploy.py, tested in tests/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/.venv/bin/python" -m twinserve deploy "$@"
