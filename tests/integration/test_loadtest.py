"""The Locust gate against the real stack, with the model's samples: it passes a healthy stack and fails a
missed threshold."""

import csv

import pytest

from twinserve.cli import main

pytestmark = pytest.mark.integration


def run(stack, tmp_path, *extra):
    return main(
        [
            "loadtest",
            "--host",
            stack.nginx.url,
            "--users",
            "10",
            "--spawn-rate",
            "10",
            "--seconds",
            "6",
            "--out",
            str(tmp_path),
            *extra,
        ]
    )


def test_a_healthy_stack_passes_and_invalid_requests_count_as_answered(stack, tmp_path, capsys):
    assert run(stack, tmp_path, "--staging") == 0
    assert "loadtest: passed" in capsys.readouterr().out
    with (tmp_path / "locust_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["invalid (expects 400)"]["Request Count"]) > 0
    assert int(rows["invalid (expects 400)"]["Failure Count"]) == 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["sample (application/json)"]["Request Count"]) > 0  # the model's twinserve.samples
    assert (tmp_path / "samples.json").is_file()
    assert (tmp_path / "locust.html").stat().st_size > 0


def test_a_missed_threshold_fails_the_gate(stack, tmp_path, capsys):
    assert run(stack, tmp_path, "--min-rps", "1000000") == 1
    err = capsys.readouterr().err
    assert err.startswith("twinserve loadtest: error: missed: ") and err.count("\n") == 1, err
    assert "requests/s < 1000000" in err
