"""Each published message taken once, whatever the broker or the consumer's offsets do.

Offsets alone cannot say whether a message was seen: a broker restarted with empty storage
serves a new topic whose offsets start again at 0, and the consumer, seeing the topic
replaced, reads it again from its start (twinserve/drift/topic.py) - the messages it had
already read from the new topic before that check were counted twice (issue 23, item 3).
So the publisher (handlers/input_publisher.py) stamps each message with its producer's id
(random per process), a sequence number (0, 1, 2, ... per producer) and the number of rows
it sent before this message, and the consumer takes a (producer, seq) only the first time.

The memory is bounded: per producer, the highest sequence number seen and the numbers below
it not seen yet (the gaps, at most `window` of them, the newest), for at most `producers`
producers (the least recently heard from forgotten first). A number at or below the highest
that is not a known gap is a duplicate; one more than `window` below the highest is taken as
a duplicate too (a message that late is not expected from one partition read in order).

Gaps count what was skipped when a producer's number jumps, in messages and in rows: what
the publisher stamped and lost (a broker killed before the consumer read what it had
acknowledged). A message that fills a gap later (reordered by a producer's retry) is still
taken once; it was counted as a gap when the jump was seen, so the gap counters are an upper
bound on what was lost.
"""

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class _Producer:
    high: int = -1  # the highest sequence number seen
    next_row: int = 0  # the producer's row number after the highest message's rows
    missing: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Seen:
    first: bool  # False: a duplicate, not to be counted
    skipped: int = 0  # messages skipped before this one (a gap)
    skipped_rows: int = 0


class Dedupe:
    def __init__(self, window: int = 10_000, producers: int = 1_000):
        self.window = window
        self.max_producers = producers
        self._producers: OrderedDict[str, _Producer] = OrderedDict()

    def see(self, producer: str, seq: int, row: int, rows: int) -> Seen:
        """One message (`rows` rows from the producer's row number `row` on): first seen or not,
        and what its number skipped; remembered."""
        p = self._producers.get(producer)
        if p is None:
            p = self._producers[producer] = _Producer()
            if len(self._producers) > self.max_producers:
                self._producers.popitem(last=False)
        self._producers.move_to_end(producer)
        if seq > p.high:
            skipped = seq - p.high - 1
            skipped_rows = max(row - p.next_row, 0) if skipped else 0
            p.missing.update(range(max(p.high + 1, seq - self.window), seq))
            if len(p.missing) > self.window:
                floor = seq - self.window
                p.missing = {s for s in p.missing if s >= floor}
            p.high, p.next_row = seq, row + rows
            return Seen(True, skipped, skipped_rows)
        if seq in p.missing:
            p.missing.discard(seq)
            return Seen(True)
        return Seen(False)

    def state(self) -> dict:
        """For the consumer's snapshot: {producer: {"high", "next_row", "missing"}}, oldest first."""
        return {
            name: {"high": p.high, "next_row": p.next_row, "missing": sorted(p.missing)}
            for name, p in self._producers.items()
        }

    def restore(self, state: dict) -> None:
        """The inverse of state(); TypeError/ValueError/KeyError/AttributeError on anything malformed."""
        producers = OrderedDict()
        for name, entry in state.items():
            missing = {int(s) for s in entry["missing"]}
            producers[str(name)] = _Producer(int(entry["high"]), int(entry["next_row"]), missing)
        self._producers = producers
