"""Benchmarks, `twinserve bench serving|drift|drift-broker`: twinserve against the peers a user would
pick instead, and what drift costs."""

from pathlib import Path


def cores() -> int:
    return Path("/proc/cpuinfo").read_text().count("processor")


def write_report(lines: list[str], path: Path) -> None:
    """Print a benchmark's report and keep it in var/bench/: docs/benchmarks.md quotes these files."""
    text = "\n".join(lines)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
