"""make drift-eval: each drift detector's false alarms and detection delay, on streams with known changes.

Three models' streams (twinserve/tools/drift_sources.py builds them): the
regressor's fresh draws with a change of x1 after `warmup` rows (mean + 0.25,
0.5, 1 std; std x1.5, x2 with the same mean; a bimodal mixture with the same
mean and std), the digits' and sentiment's drift features computed offline by
their train.py and handlers' codecs (inverted, rotated, letters, only one
class; German reviews, the standard library's docstrings, only negative
reviews). Each stream is sent in messages of ROWS_PER_MESSAGE rows through the
real consumer's DriftConsumer.process (no broker), with a clock of one second
per message.

Detectors: the verdict (detect.py's rule), each test alone as the rule
(ks, wasserstein, psi, zscore on the verdict's window, confirmed by the same
number of consecutive evaluations as the verdict), the old alert (|z| > 4 on
any feature with 200+ rows in the 500-row window, per message), and
Evidently's DataDriftPreset at its defaults on the same windows the consumer
judged (twinserve/tools/drift_evidently.py: its own venv, fewer windows).
A detector's alarms are the times its state turns on: a false alarm is one
before the change (or on the undrifted stream), counted per 100,000
undrifted rows; the delay is the rows after the change until the state is
on (MISSED if it is not within `after` rows). Delays are the median over
`repeats` seeded streams.
"""

import json
import logging
import re
import statistics
from pathlib import Path

from prometheus_client import CollectorRegistry

from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.drift.detect import TESTS, Verdict
from twinserve.drift.messages import encode
from twinserve.errors import UsageError
from twinserve.tools import drift_evidently
from twinserve.tools.drift_evidently import Windows

ROWS_PER_MESSAGE = 48  # a TorchServe batch's worth, as the publisher merges them
DETECTORS = ("verdict", *TESTS, "old zscore")
COLUMNS = (*DETECTORS, drift_evidently.DETECTOR)
MODELS = ("regressor", "digits", "sentiment")  # the table's order
SLOWEST_FIRST = ("sentiment", "digits", "regressor")  # evaluated in this order: Evidently's slowest job starts first
FALSE_ALARM_TARGET, DELAY_TARGET = 1.0, 2000
BEGIN, END = "<!-- drift-eval table: begin -->", "<!-- drift-eval table: end -->"


class Once(logging.Filter):
    """Each distinct log message once: every stream starts a new consumer, which would repeat its warnings."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        new = message not in self.seen
        self.seen.add(message)
        return new


def run_stream(source, scenario: str, warmup: int, after: int, seed: int, keep=None) -> dict[str, list[int]]:
    """{detector: row counts (since the stream's start) at which its state turned on}; the change at `warmup`.
    keep(rows seen) -> list or None: where to append (rows seen, the window's columns) at each verdict."""
    rows = source.rows(scenario, warmup, after, seed)
    settings = ConsumerSettings("unused:9092", "unused", model_store=Path("/nonexistent"))
    clock = [0.0]
    key = (source.name, "eval")
    consumer = DriftConsumer(settings, CollectorRegistry(), {key: source.reference}, lambda: clock[0])
    state = dict.fromkeys(DETECTORS, False)
    onsets = {d: [] for d in DETECTORS}
    last: Verdict | None = None
    for start in range(0, rows.shape[0], ROWS_PER_MESSAGE):
        clock[0] += 1.0
        consumer.process(encode(source.name, "eval", source.names, rows[start : start + ROWS_PER_MESSAGE].tolist()))
        seen = start + min(ROWS_PER_MESSAGE, rows.shape[0] - start)
        now = {}
        window = consumer.windows[key]
        if window.last is not last:
            last = window.last
            now["verdict"] = last.detected
            now.update({t: last.detected_by(t, settings.verdict.confirm) for t in TESTS})
            kept = keep(seen) if keep else None
            if kept is not None:
                kept.append((seen, {f: window.column(f).copy() for f in source.names}))
        now["old zscore"] = any(
            t.drift.window.n >= 200 and abs(t.drift.z(t.ref_mean, t.ref_std, settings.min_samples) or 0) > 4
            for t in consumer.features.values()
        )
        for d, on in now.items():
            if on and not state[d]:
                onsets[d].append(seen)
            state[d] = on
    return onsets


def evaluate(source, null_rows: int, warmup: int, after: int, repeats: int, evidently_rows: int = 0):
    """({"model", "false_alarms": {detector: per 100k undrifted rows}, "undrifted_rows",
    "delays": {scenario: {detector: [delays]}}}, the windows Evidently is to judge)."""
    windows = Windows(source.sample)
    false = dict.fromkeys(DETECTORS, 0)
    onsets = run_stream(
        source, "none", null_rows, 0, seed=1000, keep=lambda seen: windows.null if seen <= evidently_rows else None
    )
    for d in DETECTORS:
        false[d] += len(onsets[d])
    undrifted = null_rows
    delays = {}
    for index, scenario in enumerate(source.scenarios, start=1):
        delays[scenario] = {d: [] for d in DETECTORS}
        for r in range(repeats):
            post = []
            keep = (lambda seen, post=post: post if seen > warmup else None) if evidently_rows else None
            onsets = run_stream(source, scenario, warmup, after, seed=2000 + 100 * index + r, keep=keep)
            if evidently_rows:
                windows.changed.append((scenario, warmup, post))
            undrifted += warmup
            for d in DETECTORS:
                false[d] += sum(1 for o in onsets[d] if o <= warmup)
                later = [o - warmup for o in onsets[d] if o > warmup]
                delays[scenario][d].append(later[0] if later else None)
    result = {
        "model": source.name,
        "false_alarms": {d: false[d] * 100_000 / undrifted for d in DETECTORS},
        "undrifted_rows": undrifted,
        "delays": delays,
    }
    return result, windows


def add_evidently(result: dict, scored: dict | None, version: str = "") -> None:
    """Evidently's false alarms and delays (drift_evidently.score) as one more detector of the result."""
    if scored is None:
        return
    rows = max(scored["null_rows"], 1)
    result["false_alarms"][drift_evidently.DETECTOR] = scored["false_alarms"] * 100_000 / rows
    for scenario, values in scored["delays"].items():
        result["delays"][scenario][drift_evidently.DETECTOR] = values
    result["evidently"] = {"null_rows": scored["null_rows"], "version": version, "tests": scored["tests"]}


def median_delay(values: list) -> float | None:
    """The median delay, None (MISSED) if half or more of the streams were missed."""
    hits = sorted(v if v is not None else float("inf") for v in values)
    m = statistics.median(hits)
    return None if m == float("inf") else m


def no_worse(delays: dict) -> bool | None:
    """The verdict's median delay no worse than Evidently's (None: Evidently not run on it)."""
    if drift_evidently.DETECTOR not in delays:
        return None
    ours, theirs = median_delay(delays["verdict"]), median_delay(delays[drift_evidently.DETECTOR])
    if ours is None:
        return theirs is None
    return theirs is None or ours <= theirs


def mark(ok: bool | None) -> str:
    return "not compared" if ok is None else "met" if ok else "MISSED"


def table(results: list[dict], after: int) -> str:
    """One row per model and scenario (false alarms on "none", delays on the changes), a column per detector
    and whether the verdict's delay is no worse than Evidently's."""
    columns = [c for c in COLUMNS if any(c in r["false_alarms"] for r in results)]
    lines = ["| model: scenario | " + " | ".join(columns) + " | verdict no worse than Evidently |"]
    lines.append("|" + "---|" * (len(columns) + 2))
    for r in results:
        fa = r["false_alarms"]
        cells = [f"{fa[d]:.2f} {mark(fa[d] <= FALSE_ALARM_TARGET)}" if d in fa else "-" for d in columns]
        fa_e = fa.get(drift_evidently.DETECTOR)
        versus = "" if fa_e is None else mark(fa["verdict"] <= max(fa_e, FALSE_ALARM_TARGET))
        label = f"{r['model']}: none, false alarms per 100k rows (target <= {FALSE_ALARM_TARGET:g})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {versus} |")
        for scenario, by in r["delays"].items():
            cells = []
            for d in columns:
                m = median_delay(by[d]) if d in by else "-"
                if m == "-":
                    cells.append(m)
                elif m is None:
                    cells.append(f"not within {after} MISSED")
                else:
                    cells.append(f"{m:.0f} {mark(m <= DELAY_TARGET)}")
            label = f"{r['model']}: {scenario}, delay in rows (target <= {DELAY_TARGET})"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {mark(no_worse(by))} |")
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    """The three targets, for the verdict over every model and scenario: "<target>: met" or "...: MISSED (where)"."""
    false = [f"{r['model']} {r['false_alarms']['verdict']:.2f}" for r in results]
    high = [f for r, f in zip(results, false, strict=True) if r["false_alarms"]["verdict"] > FALSE_ALARM_TARGET]
    slow, worse, compared = [], [], False
    for r in results:
        for scenario, by in r["delays"].items():
            m = median_delay(by["verdict"])
            if m is None or m > DELAY_TARGET:
                slow.append(f"{r['model']} {scenario}")
            verdict = no_worse(by)
            compared |= verdict is not None
            if verdict is False:
                worse.append(f"{r['model']} {scenario}")

    def line(text, missed):
        return f"{text}: " + (f"MISSED ({', '.join(missed)})" if missed else "met")

    versus = "verdict: detection delay no worse than Evidently's on any scenario"
    return [
        line(f"verdict: at most {FALSE_ALARM_TARGET:g} false alarm per 100,000 undrifted rows", high),
        line(f"verdict: every change detected within {DELAY_TARGET:,} rows", slow),
        line(versus, worse) if compared else f"{versus}: not compared (Evidently not run)",
    ]


def plot(results: list[dict], after: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.6 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        scenarios = list(r["delays"])
        columns = [c for c in COLUMNS if c in r["false_alarms"]]
        width = 0.8 / len(columns)
        for i, d in enumerate(columns):
            ys = [median_delay(r["delays"][s][d]) for s in scenarios]
            xs = [j + i * width for j in range(len(scenarios))]
            label = f"{d} ({r['false_alarms'][d]:.2f} FA/100k)"
            ax.bar(xs, [after if y is None else y for y in ys], width, label=label)
        ax.axhline(DELAY_TARGET, color="black", linestyle="--", linewidth=1, label=f"target {DELAY_TARGET}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios)
        ax.set_ylabel(f"median rows to detection\n(missed = {after})")
        ax.set_title(f"{r['model']}: detection delay after the change", fontsize=10)
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_doc(text: str, doc: Path) -> None:
    body = doc.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        body = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body += f"\n{block}\n"
    doc.write_text(body)


def sources(root: Path, models: list[str]):
    """The models' stream sources, built as they are needed (training each takes 2-45 s)."""
    from twinserve.tools import drift_sources

    build = {
        "regressor": lambda: drift_sources.Regressor(root / "models" / "regressor"),
        "digits": lambda: drift_sources.Digits(root / "models" / "digits"),
        "sentiment": lambda: drift_sources.Sentiment(
            root / "models" / "sentiment", root / "tests" / "data" / "german_reviews.json"
        ),
    }
    for model in models:
        yield build[model]()


def report(args) -> int:
    """Run the evaluation (`twinserve drift-eval`): print the table, write the plot, and
    docs/drift.md's table only if args.write_docs."""
    import time

    if min(args.null_rows, args.warmup, args.after, args.repeats) < 1 or args.evidently_rows < 0:
        raise UsageError("--null-rows, --warmup, --after and --repeats must be positive, --evidently-rows >= 0")
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        raise UsageError(f"--models: unknown {unknown}; known {list(MODELS)}")
    from twinserve.settings import project_dir

    began = time.monotonic()
    root = project_dir()
    logging.getLogger("twinserve.drift.consumer").addFilter(Once())
    evidently_rows = 0 if args.no_evidently else min(args.evidently_rows, args.null_rows)
    python = (
        drift_evidently.ensure_venv(args.evidently_venv or root / "var" / "evidently-venv") if evidently_rows else None
    )
    results, jobs = [], []
    queue = drift_evidently.Queue(python, root / "var") if python else None
    try:
        for source in sources(root, sorted(set(args.models), key=SLOWEST_FIRST.index)):
            result, windows = evaluate(source, args.null_rows, args.warmup, args.after, args.repeats, evidently_rows)
            print(f"{source.name}: consumer done ({time.monotonic() - began:.0f} s)", flush=True)
            results.append(result)
            if queue:
                jobs.append((result, queue.submit(windows)))
        for result, job in jobs:
            add_evidently(result, *job.result())
            print(f"{result['model']}: Evidently done ({time.monotonic() - began:.0f} s)", flush=True)
    finally:
        if queue:
            queue.close()
    results.sort(key=lambda r: MODELS.index(r["model"]))
    text = table(results, args.after)
    marks = targets(results)
    note = (
        f"Delays: median of {args.repeats} streams per change, {ROWS_PER_MESSAGE}-row messages, change after "
        f"{args.warmup} rows; false alarms on {args.null_rows:,} undrifted rows per model plus the streams' "
        f"{args.repeats} x {args.warmup:,} before their changes"
        + (
            f"; Evidently on the same windows: the undrifted stream's first {evidently_rows:,} rows, and each changed "
            "stream's windows after the change."
            if evidently_rows
            else "; Evidently not run."
        )
        + f" {time.monotonic() - began:.0f} s."
    )
    print(text)
    print("\n".join(marks))
    print(note)
    plot(results, args.after, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write_docs:
        write_doc(f"{text}\n\n" + "".join(f"- {m}\n" for m in marks) + f"\n{note}", root / "docs" / "drift.md")
    return 0
