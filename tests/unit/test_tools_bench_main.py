"""make bench's report: medians, ratios and the target verdicts, from made-up wrk reports."""

from twinserve.tools.bench.serving import (
    DEFAULT_TS,
    FASTAPI,
    FASTAPI_TUNED,
    KIND_TARGETS,
    TWINSERVE,
    plot,
    round_ratios,
    summarise,
    table,
    targets,
)
from twinserve.tools.wrk import WrkReport


def report(rps: float, p99: float = 10.0, non_2xx: int = 0, socket_errors: int = 0) -> WrkReport:
    return WrkReport(requests=int(rps * 8), seconds=8.0, rps=rps, p50_ms=p99 / 3, p99_ms=p99,
                     non_2xx=non_2xx, socket_errors=socket_errors)  # fmt: skip


def results(ours: float, workshop: float, default: float, p99: float = 30.0, non_2xx: int = 0) -> dict:
    return {
        TWINSERVE: {c: summarise([report(ours, p99, non_2xx)]) for c in (1, 50, 200)},
        FASTAPI: {c: summarise([report(workshop)]) for c in (1, 50, 200)},
        DEFAULT_TS: {c: summarise([report(default)]) for c in (1, 50, 200)},
    }


def test_summarise_takes_the_median_run_and_sums_errors():
    s = summarise([report(900, p99=9.0), report(1000, p99=99.0, non_2xx=2), report(1100, socket_errors=1)])
    assert (s["rps"], s["p99"]) == (1000, 99.0)
    assert (s["non_2xx"], s["socket_errors"]) == (2, 1)
    assert s["requests"] == 8 * (900 + 1000 + 1100)


def test_every_target_met():
    lines = targets(results(ours=10_000, workshop=3_000, default=1_500), ab_failed=0)
    assert len(lines) == 6  # FastAPI at 50, default TorchServe at 200, p99 at 50, non-2xx, socket errors, ab
    assert all(line.startswith("target met: ") for line in lines), lines


def test_a_ratio_under_the_target_is_missed():
    lines = targets(results(ours=5_000, workshop=3_000, default=1_000), ab_failed=0)
    missed = [line for line in lines if "MISSED" in line]
    assert missed == [f"target MISSED: ≥ 2× {FASTAPI} at 50 connections: 1.7×"], lines


def test_errors_latency_and_ab_failures_are_missed():
    lines = targets(results(ours=10_000, workshop=3_000, default=1_000, p99=100.1, non_2xx=3), ab_failed=4)
    missed = {line.split(": ", 1)[1] for line in lines if "MISSED" in line}
    assert missed == {
        "non-2xx at 1, 50, 200 connections: 9",
        "50 connections, p99 ≤ 100 ms: 100.1 ms",
        "ab -n 10000 -c 200, failed requests: 4",
    }


def test_only_what_was_measured_is_judged():
    only_ours = {TWINSERVE: {100: summarise([report(10_000)])}}
    assert [line for line in targets(only_ours, ab_failed=None) if "×" in line or "p99" in line] == []
    tuned_only = {**only_ours, FASTAPI_TUNED: {50: summarise([report(9_000)])}}
    assert len(targets(tuned_only, ab_failed=None)) == 2  # errors only: the tuned peer carries no target


def test_a_text_model_is_judged_at_32_connections_with_a_300_ms_p99():
    text = {
        TWINSERVE: {c: summarise([report(400, p99=280.0)]) for c in (1, 8, 32, 64)},
        FASTAPI: {c: summarise([report(210)]) for c in (1, 8, 32, 64)},
        DEFAULT_TS: {c: summarise([report(90)]) for c in (1, 8, 32, 64)},
    }
    lines = targets(text, ab_failed=None, goal=KIND_TARGETS["text"])
    assert lines[:3] == [
        f"target MISSED: ≥ 2× {FASTAPI} at 32 connections: 1.9×",
        f"target met: ≥ 4× {DEFAULT_TS} at 64 connections: 4.4×",
        "target met: 32 connections, p99 ≤ 300 ms: 280.0 ms",
    ]
    assert KIND_TARGETS["text"].connections == (1, 8, 32, 64)


def test_round_ratios_pair_the_runs_of_each_round():
    reports = {
        TWINSERVE: {100: [report(2_000), report(3_000)]},
        FASTAPI: {100: [report(1_000), report(0)]},
    }
    assert round_ratios(reports) == [f"twinserve ÷ {FASTAPI}, 100 connections, by round: 2.00, ∞"]


def test_the_plot_is_a_png_with_every_setup(tmp_path):
    path = plot(results(ours=10_000, workshop=3_000, default=1_500), "digits 1.0", tmp_path / "digits.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_peer_without_a_single_2xx_answer_does_not_break_the_table():
    rows = table({TWINSERVE: {50: summarise([report(1_000)])}, DEFAULT_TS: {50: summarise([report(100, non_2xx=800)])}})
    assert "(twinserve ∞)" in rows
