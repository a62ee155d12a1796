"""When the native broker is recycled to bound its memory, and how recycles are counted."""

import math

import pytest

from tests.checkout import DEFAULT_STACK
from twinserve.runtime.broker_retention import Decision, count, decide, read_record
from twinserve.settings import load_stack


@pytest.mark.parametrize(
    ("growth", "lag", "expected"),
    [
        (10, 0, Decision(False)),  # under the bound
        (65, 0, Decision(True, 0, "grew 65 MB > 64 MB, consumer caught up")),
        (65, 3, Decision(False)),  # over it, the consumer behind: wait for it
        (65, math.nan, Decision(False)),  # over it, the consumer silent: wait
        (129, 3, Decision(True, 3, "grew 129 MB > 2 × 64 MB, consumer 3 messages behind")),
        (129, math.nan, Decision(True, -1, "grew 129 MB > 2 × 64 MB, consumer not answering")),
        (129, 0, Decision(True, 0, "grew 129 MB > 64 MB, consumer caught up")),
        (math.nan, 0, Decision(False)),  # no reading of the broker's memory: no verdict
    ],
)
def test_recycle_at_the_bound_once_caught_up_and_at_twice_the_bound_regardless(growth, lag, expected):
    assert decide(growth, lag, 64) == expected


def test_recycles_and_lost_messages_are_counted_across_calls(tmp_path):
    stack = load_stack(DEFAULT_STACK)
    stack = type(stack)(**{**stack.__dict__, "var_dir": tmp_path})
    assert read_record(stack) == {"recycles": 0, "lost_messages": 0}
    count(stack, 0)
    count(stack, 5)
    count(stack, -1)  # unknown (the consumer did not answer): not added
    assert read_record(stack) == {"recycles": 3, "lost_messages": 5}
    (tmp_path / "run" / "broker-recycles.json").write_text("{not json")
    assert read_record(stack) == {"recycles": 0, "lost_messages": 0}
