"""Evaluate the drift detectors on streams with known changes: false alarms and detection delay.

Streams of the regressor's, digits' and sentiment's drift features with known changes go
through the drift consumer's own processing (no broker, no stack needed), and through
Evidently's data-drift preset in a venv of its own (var/evidently-venv, installed on first
use); prints the table and writes the plot under var/drift-eval/. Only with --write-docs
(`make drift-eval WRITE_DOCS=1`) does it write docs/drift-eval.png and the table in
docs/drift.md: a plain run leaves every tracked file as it was (issue 23, item 7).
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("--null-rows", type=int, default=1_000_000, help="rows of the undrifted stream")
    parser.add_argument("--warmup", type=int, default=3000, help="undrifted rows before each change")
    parser.add_argument("--after", type=int, default=5000, help="rows after the change")
    parser.add_argument("--repeats", type=int, default=5, help="seeded streams per change")
    parser.add_argument("--models", nargs="+", default=["regressor", "digits", "sentiment"], help="models to evaluate")
    parser.add_argument(
        "--evidently-rows", type=int, default=50_000, help="rows of the undrifted stream Evidently judges too"
    )
    parser.add_argument("--no-evidently", action="store_true", help="leave Evidently's preset out")
    parser.add_argument("--evidently-venv", type=Path, help="default: var/evidently-venv in the project")
    parser.add_argument("--plot", type=Path, help="default: var/drift-eval/drift-eval.png (docs/ with --write-docs)")
    parser.add_argument(
        "--write-docs", action="store_true", help="write the table into docs/drift.md and the plot into docs/"
    )
    parser.add_argument("--json", type=Path, help="also write the raw result here")


def run(args) -> int:
    from twinserve.settings import project_dir
    from twinserve.tools import drift_eval

    root = project_dir()
    args.plot = args.plot or (root / "docs" if args.write_docs else root / "var" / "drift-eval") / "drift-eval.png"
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    return drift_eval.report(args)
