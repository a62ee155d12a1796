"""The message contract between the handler (publisher) and the drift consumer."""

import pytest
from input_publisher import input_message

from twinserve.drift.messages import Inputs, InvalidMessage, decode, encode


def test_what_the_handler_publishes_the_consumer_decodes():
    raw = input_message("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6], [1, 2]])
    assert decode(raw) == Inputs("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6], [1.0, 2.0]])
    assert encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6], [1, 2]]) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": "1", "features": ["x1"], "rows": []}', '"model"'),
        (b'{"model": "m", "version": 1, "features": ["x1"], "rows": []}', '"version"'),
        (b'{"model": "m", "version": "1", "features": [], "rows": []}', "non-empty"),
        (b'{"model": "m", "version": "1", "features": [3], "rows": []}', "non-empty"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [[1, 2]]}', "1 values"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [3]}', "1 values"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [["a"]]}', "finite number"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [[true]]}', "finite number"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [[NaN]]}', "finite number"),
        (b'{"model": "m", "version": "1", "features": ["x1"], "rows": [[Infinity]]}', "finite number"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(raw, reason):
    with pytest.raises(InvalidMessage, match=reason):
        decode(raw)


def test_a_message_without_rows_is_valid_and_empty():
    assert decode(b'{"model": "m", "version": "1", "features": ["x1"], "rows": []}').rows == []
