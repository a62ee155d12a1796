"""The checkout these tests run in. It is also the project directory (twinserve/settings.py) that
the code under test finds, as pytest runs here."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STACK = REPO_ROOT / "config" / "stack.yaml"
