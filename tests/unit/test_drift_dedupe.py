"""Dedupe (twinserve/drift/dedupe.py): each (producer, seq) taken once, gaps counted, memory bounded."""

import json

import pytest

from twinserve.drift.dedupe import Dedupe, Seen


def test_a_message_read_again_is_a_duplicate_and_an_in_order_stream_has_no_gap():
    d = Dedupe()
    assert [d.see("a", s, 10 * s, 10) for s in range(5)] == [Seen(True)] * 5
    assert [d.see("a", s, 10 * s, 10) for s in range(5)] == [Seen(False)] * 5  # all of them again from 0
    assert d.see("b", 0, 0, 3) == Seen(True)  # another producer numbers on its own


def test_a_jump_counts_the_messages_and_rows_skipped_and_a_late_one_fills_its_gap_once():
    d = Dedupe()
    assert d.see("a", 0, 0, 4) == Seen(True)
    assert d.see("a", 3, 12, 4) == Seen(True, skipped=2, skipped_rows=8)  # seq 1 and 2, rows 4..11
    assert d.see("a", 1, 4, 4) == Seen(True)  # reordered: taken, once
    assert d.see("a", 1, 4, 4) == Seen(False)
    assert d.see("a", 2, 8, 4) == Seen(True)
    assert d.see("a", 4, 16, 1) == Seen(True)


def test_the_memory_is_bounded_per_producer_and_in_producers():
    d = Dedupe(window=100, producers=3)
    d.see("a", 0, 0, 1)
    assert d.see("a", 10_000, 10_000, 1) == Seen(True, skipped=9_999, skipped_rows=9_999)
    assert len(d.state()["a"]["missing"]) == 100  # the newest gaps only
    assert d.see("a", 9_950, 9_950, 1) == Seen(True)  # within the window: a gap filled
    assert d.see("a", 50, 50, 1) == Seen(False)  # beyond it: taken as a duplicate
    for name in "bcd":
        d.see(name, 0, 0, 1)
    assert list(d.state()) == ["b", "c", "d"]  # the least recently heard from ("a") forgotten
    assert d.see("a", 10_000, 10_000, 1) == Seen(True, skipped=10_000, skipped_rows=10_000)  # a stranger now


def test_the_state_round_trips_through_json_and_malformed_state_raises():
    d = Dedupe()
    d.see("a", 0, 0, 2)
    d.see("a", 5, 20, 2)
    d.see("b", 0, 0, 1)
    again = Dedupe()
    again.restore(json.loads(json.dumps(d.state())))
    assert again.state() == d.state()
    assert again.see("a", 5, 20, 2) == Seen(False)
    assert again.see("a", 3, 12, 2) == Seen(True)
    assert again.see("a", 6, 22, 2) == Seen(True)  # next_row kept: no gap
    for bad in ({"a": {"high": "x", "next_row": 0, "missing": []}}, {"a": {"high": 1}}, {"a": 3}, []):
        with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):
            Dedupe().restore(bad)
