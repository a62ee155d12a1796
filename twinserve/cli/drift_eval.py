"""Evaluate the drift detectors on streams with known changes: false alarms and detection delay.

Streams drawn like the regressor's training data go through the drift consumer's own
processing (no broker, no stack needed); prints the table, writes docs/drift-eval.png and
the table in docs/drift.md (twinserve/tools/drift_eval.py says how).
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("--null-rows", type=int, default=1_000_000, help="rows of the undrifted stream")
    parser.add_argument("--warmup", type=int, default=3000, help="undrifted rows before each change")
    parser.add_argument("--after", type=int, default=5000, help="rows after the change")
    parser.add_argument("--repeats", type=int, default=5, help="seeded streams per change")
    parser.add_argument("--plot", type=Path, help="default: docs/drift-eval.png in the project")
    parser.add_argument("--no-doc", action="store_true", help="print only; docs/drift.md untouched")
    parser.add_argument("--json", type=Path, help="also write the raw result here")


def run(args) -> int:
    from twinserve.settings import project_dir
    from twinserve.tools import drift_eval

    args.plot = args.plot or project_dir() / "docs" / "drift-eval.png"
    return drift_eval.report(args)
