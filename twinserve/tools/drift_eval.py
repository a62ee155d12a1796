"""make drift-eval: each drift detector's false alarms and detection delay, on streams with known changes.

The regressor is trained as models/regressor/train.py trains it (its seed),
its reference built as the archiver builds it (archiver/reference.py: x1, x2
and the prediction). Streams are fresh draws from the training distribution
(train.make_data, other seeds), scored by the trained model, sent in messages
of ROWS_PER_MESSAGE rows through the real consumer's DriftConsumer.process
(no broker), with a clock of one second per message. After `warmup` rows
one change hits x1 (the prediction follows it, as in production):

    none; mean + 0.25, 0.5, 1 std; std x1.5 and x2 (same mean);
    bimodal: two narrow modes at mean +- 0.95 std (same mean and std).

Detectors: the verdict (detect.py's rule), each test alone as the rule
(ks, wasserstein, psi, zscore on the verdict's window, confirmed by the same
number of consecutive evaluations as the verdict) and the old alert
(|z| > 4 on any feature with 200+ rows in the 500-row window, per message).
A detector's alarms are the times its state turns on: a false alarm is one
before the change (or on the undrifted stream), counted per 100,000
undrifted rows; the delay is the rows after the change until the state is
on (MISSED if it is not within `after` rows). Delays are the median over
`repeats` seeded streams.

Evidently's data-drift preset is not run here yet (docs/drift.md says so).
"""

import json
import re
import statistics
import sys
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from archiver.reference import column_reference
from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.drift.detect import TESTS, Verdict
from twinserve.drift.messages import encode
from twinserve.errors import UsageError

ROWS_PER_MESSAGE = 48  # a TorchServe batch's worth, as the publisher merges them
DETECTORS = ("verdict", *TESTS, "old zscore")
SCENARIOS = ("none", "mean +0.25 std", "mean +0.5 std", "mean +1 std", "std x1.5", "std x2", "bimodal")
FALSE_ALARM_TARGET, DELAY_TARGET = 1.0, 2000
BEGIN, END = "<!-- drift-eval table: begin -->", "<!-- drift-eval table: end -->"


def load_train(model_dir: Path):
    import importlib.util

    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("regressor_train", model_dir / "train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


class Regressor:
    """The trained demo regressor, its reference, and streams drawn like its training data."""

    def __init__(self, model_dir: Path, seed: int = 42, epochs: int = 30, samples: int = 8192):
        import torch

        self.train = load_train(model_dir)
        self.torch = torch
        model, x, _ = self.train.train(seed, epochs, samples)
        self.model = model.double()
        self.features = list(self.train.FEATURES)
        columns = {f: x[:, i].double().numpy() for i, f in enumerate(self.features)}
        columns["prediction"] = self.score(x.double().numpy())
        self.reference = {name: column_reference(values) for name, values in columns.items()}
        self.mean, self.std = columns["x1"].mean(), columns["x1"].std(ddof=1)

    def score(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(x)).float().double().reshape(-1).numpy()

    def draw(self, n: int, seed: int) -> np.ndarray:
        x, _ = self.train.make_data(n, self.torch.Generator().manual_seed(seed))
        return x.double().numpy()

    def change(self, scenario: str, x1: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        m, s = self.mean, self.std
        if scenario.startswith("mean +"):
            return x1 + float(scenario.split("+")[1].split()[0]) * s
        if scenario.startswith("std x"):
            return m + float(scenario.removeprefix("std x")) * (x1 - m)
        if scenario == "bimodal":  # modes at +-a*s, each of std b*s, a^2 + b^2 = 1: same mean and std
            a, b = 0.95, (1 - 0.95**2) ** 0.5
            return m + s * (rng.choice([-a, a], size=x1.size) + b * rng.standard_normal(x1.size))
        return x1


def run_stream(reg: Regressor, scenario: str, warmup: int, after: int, seed: int) -> dict[str, list[int]]:
    """{detector: row counts (since the stream's start) at which its state turned on}; the change at `warmup`."""
    rng = np.random.default_rng(seed)
    x = reg.draw(warmup + after, seed)
    x[warmup:, 0] = reg.change(scenario, x[warmup:, 0], rng)
    rows = np.column_stack([x, reg.score(x)])
    names = [*reg.features, "prediction"]
    settings = ConsumerSettings("unused:9092", "unused", model_store=Path("/nonexistent"))
    clock = [0.0]
    consumer = DriftConsumer(settings, CollectorRegistry(), {("regressor", "eval"): reg.reference}, lambda: clock[0])
    state = dict.fromkeys(DETECTORS, False)
    onsets = {d: [] for d in DETECTORS}
    last: Verdict | None = None
    for start in range(0, rows.shape[0], ROWS_PER_MESSAGE):
        clock[0] += 1.0
        consumer.process(encode("regressor", "eval", names, rows[start : start + ROWS_PER_MESSAGE].tolist()))
        seen = start + min(ROWS_PER_MESSAGE, rows.shape[0] - start)
        now = {}
        window = consumer.windows[("regressor", "eval")]
        if window.last is not last:
            last = window.last
            now["verdict"] = last.detected
            now.update({t: last.detected_by(t, settings.verdict.confirm) for t in TESTS})
        now["old zscore"] = any(
            t.drift.window.n >= 200 and abs(t.drift.z(t.ref_mean, t.ref_std, settings.min_samples) or 0) > 4
            for t in consumer.features.values()
        )
        for d, on in now.items():
            if on and not state[d]:
                onsets[d].append(seen)
            state[d] = on
    return onsets


def evaluate(reg: Regressor, null_rows: int, warmup: int, after: int, repeats: int) -> dict:
    """{"false_alarms": {detector: per 100k undrifted rows}, "delays": {scenario: {detector: [delays]}}}."""
    false = dict.fromkeys(DETECTORS, 0)
    undrifted = 0
    onsets = run_stream(reg, "none", null_rows, 0, seed=1000)
    for d in DETECTORS:
        false[d] += len(onsets[d])
    undrifted += null_rows
    delays = {}
    for scenario in SCENARIOS[1:]:
        delays[scenario] = {d: [] for d in DETECTORS}
        for r in range(repeats):
            onsets = run_stream(reg, scenario, warmup, after, seed=2000 + 100 * SCENARIOS.index(scenario) + r)
            undrifted += warmup
            for d in DETECTORS:
                false[d] += sum(1 for o in onsets[d] if o <= warmup)
                later = [o - warmup for o in onsets[d] if o > warmup]
                delays[scenario][d].append(later[0] if later else None)
    return {
        "false_alarms": {d: false[d] * 100_000 / undrifted for d in DETECTORS},
        "undrifted_rows": undrifted,
        "delays": delays,
    }


def median_delay(values: list) -> float | None:
    """The median delay, None (MISSED) if half or more of the streams were missed."""
    hits = sorted(v if v is not None else float("inf") for v in values)
    m = statistics.median(hits)
    return None if m == float("inf") else m


def table(result: dict, after: int) -> str:
    head = "| scenario | " + " | ".join(DETECTORS) + " |"
    lines = [head, "|" + "---|" * (len(DETECTORS) + 1)]
    fa = result["false_alarms"]
    lines.append(
        f"| none: false alarms per 100k rows (target <= {FALSE_ALARM_TARGET:g}) | "
        + " | ".join(f"{fa[d]:.2f} {'met' if fa[d] <= FALSE_ALARM_TARGET else 'MISSED'}" for d in DETECTORS)
        + " |"
    )
    for scenario, by in result["delays"].items():
        cells = []
        for d in DETECTORS:
            m = median_delay(by[d])
            if m is None:
                cells.append(f"not within {after} MISSED")
            else:
                cells.append(f"{m:.0f} {'met' if m <= DELAY_TARGET else 'MISSED'}")
        lines.append(f"| {scenario}: delay in rows (target <= {DELAY_TARGET}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, after: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(result["delays"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(DETECTORS)
    for i, d in enumerate(DETECTORS):
        ys = [median_delay(result["delays"][s][d]) for s in scenarios]
        xs = [j + i * width for j in range(len(scenarios))]
        label = f"{d} ({result['false_alarms'][d]:.2f} FA/100k)"
        ax.bar(xs, [after if y is None else y for y in ys], width, label=label)
    ax.axhline(DELAY_TARGET, color="black", linestyle="--", linewidth=1, label=f"target {DELAY_TARGET}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios, rotation=15)
    ax.set_ylabel(f"median rows to detection (missed = {after})")
    ax.set_title("Drift detectors on the regressor: detection delay after a change of x1")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_doc(text: str, doc: Path) -> None:
    body = doc.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        body = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body += f"\n{block}\n"
    doc.write_text(body)


def report(args) -> int:
    """Run the evaluation (`twinserve drift-eval`): print the table, write the plot and docs/drift.md's table."""
    if min(args.null_rows, args.warmup, args.after, args.repeats) < 1:
        raise UsageError("--null-rows, --warmup, --after and --repeats must be positive")
    from twinserve.settings import project_dir

    root = project_dir()
    reg = Regressor(root / "models" / "regressor")
    result = evaluate(reg, args.null_rows, args.warmup, args.after, args.repeats)
    text = table(result, args.after)
    note = (
        f"{result['undrifted_rows']:,} undrifted rows; delays: median of {args.repeats} streams, "
        f"{ROWS_PER_MESSAGE}-row messages, change after {args.warmup} rows."
    )
    print(text)
    print(note)
    plot(result, args.after, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.no_doc:
        write_doc(f"{text}\n\n{note}", root / "docs" / "drift.md")
    return 0
