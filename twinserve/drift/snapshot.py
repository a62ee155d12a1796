"""The drift consumer's statistics on disk, so that a restart (`make down && make up`, a crash,
the supervisor's restart) resumes them instead of starting from 0 and waiting for new inputs.

Why a snapshot and not a replay of the topic: natively the broker keeps the topic in memory
(a restart of the broker, or its recycling by twinserve/runtime/broker_retention.py, empties
it), so the rows of the windows are often no longer on the topic; and the all-time counts,
means and variances could never be rebuilt from it. So the consumer writes its state (per
feature: the running count, mean and variance and the z-score window; per model version: the
verdict's window, its streaks and last verdict) every `snapshot_s` seconds and when it stops
(SIGTERM), as one JSON file replaced atomically (temp file + rename: a reader never sees half
of one), in the stack's var_dir (var/drift/, which survives `make down`; not state_dir: the
containers mount that read-only).

No double counting: the snapshot names the offsets its state includes (per partition, the
next offset to read) and the topic's id. A consumer that starts from a snapshot reads from
those offsets, not from the group's committed ones: messages after them (processed and
committed after the snapshot, before a `kill -9`) are read again and counted once, and none
before them is counted twice, whichever of snapshot and commit happened last. A snapshot of
another topic (the broker restarted empty since) keeps its statistics, not its offsets: the
new topic's messages are new rows.

A file that is not a snapshot of this consumer (unreadable, not JSON, wrong format, another
topic or group) is rejected: the consumer starts empty, logs one line, counts it
(twinserve_drift_snapshot_loads_total{result="corrupt"|"foreign"}) and moves the file aside
(<name>.rejected) for whoever wants to look at it.
"""

import json
import os
import tempfile
from pathlib import Path

FORMAT = "twinserve-drift-snapshot/1"
LOADED, MISSING, CORRUPT, FOREIGN = "restored", "none", "corrupt", "foreign"
LOAD_RESULTS = (LOADED, MISSING, CORRUPT, FOREIGN)


class SnapshotRejected(Exception):
    """The file is not a usable snapshot of this consumer; `reason` is CORRUPT or FOREIGN."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def write(path: Path, state: dict) -> None:
    """Replace the snapshot at `path` with `state` in one rename, the bytes on disk before it (a
    crash leaves the old snapshot or the new one, never half of one). Not store.state.write_atomic:
    drift sits beside store, not above it (pyproject's layers)."""
    data = json.dumps({"format": FORMAT, **state}, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(f.name, path)
        except BaseException:
            Path(f.name).unlink(missing_ok=True)
            raise


def read(path: Path, topic: str, group_id: str) -> dict | None:
    """The snapshot at `path` (None if there is none); SnapshotRejected if it is not one of this
    consumer's (its topic and group). Checks the envelope only: DriftConsumer.restore() checks
    the rest and raises SnapshotRejected(CORRUPT) on anything malformed in it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotRejected(CORRUPT, f"unreadable ({exc})") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise SnapshotRejected(CORRUPT, f"not JSON ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise SnapshotRejected(FOREIGN, f"format {found!r}, expected {FORMAT!r}")
    if (state.get("topic"), state.get("group_id")) != (topic, group_id):
        raise SnapshotRejected(
            FOREIGN, f"of topic {state.get('topic')!r} group {state.get('group_id')!r}, not {topic!r} {group_id!r}"
        )
    return state


def set_aside(path: Path) -> Path:
    """Move a rejected snapshot out of the way (replacing an earlier rejected one); its new path."""
    aside = path.with_name(path.name + ".rejected")
    path.replace(aside)
    return aside
