"""Pipeline run records: one JSON file per run in <state_dir>/pipeline/, rewritten atomically after each stage.

The record is also what carries a run from one stage to the next when each
stage is its own process (Jenkins): the staging change to finish or undo,
the colour production had before promotion, whether it was promoted.
"""

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from twinserve.errors import ConfigError
from twinserve.settings import Stack
from twinserve.store.state import write_atomic

RUN_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def runs_dir(stack: Stack) -> Path:
    return stack.state_dir / "pipeline"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")  # also orders the runs: no ties


def new(stack: Stack, model_dir: Path, model: str, version: str, run_id: str | None = None) -> dict:
    if run_id is None:
        run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{model}-{version}-{uuid.uuid4().hex[:4]}"
    if not RUN_ID_RE.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r}: expected letters, digits, '.', '_' or '-'")
    if (runs_dir(stack) / f"{run_id}.json").exists():
        raise ConfigError(f"run {run_id} exists already; a run id names one run")
    record = {
        "run_id": run_id, "model": model, "version": version, "model_dir": str(model_dir),
        "started": now(), "stages": [], "promoted": False, "rolled_back": None,
    }  # fmt: skip
    save(stack, record)
    return record


def save(stack: Stack, record: dict) -> None:
    write_atomic(runs_dir(stack) / f"{record['run_id']}.json", json.dumps(record, indent=2) + "\n")


def load(stack: Stack, run_id: str) -> dict:
    if not RUN_ID_RE.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r}: expected letters, digits, '.', '_' or '-'")
    path = runs_dir(stack) / f"{run_id}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no pipeline run {run_id} in {runs_dir(stack)}") from None


def history(stack: Stack) -> list[dict]:
    """Every recorded run, oldest first."""
    records = []
    for path in runs_dir(stack).glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("started", ""))
