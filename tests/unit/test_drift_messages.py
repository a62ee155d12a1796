"""The message contract between the handler (publisher) and the drift consumer."""

import numpy as np
import pytest
from input_publisher import input_message

from twinserve.drift.messages import Inputs, InvalidMessage, decode, decode_batch, encode


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
    with pytest.raises(InvalidMessage, match=reason):  # the consumer's decoder refuses the same, alike
        decode_batch(raw)


@pytest.mark.parametrize(
    "rows",
    [
        [[True, 0.5]],  # numpy alone would take true as 1.0 beside a number
        [[0.5, False]],
        [[0.5, None]],
        [[0.5, "0.5"]],  # numpy alone would parse the string
        [[0.5, 1e400]],  # JSON's 1e400 is inf
        [[0.5, 0.5], [0.5]],
        [[0.5, [0.5]]],
        [0.5, 0.5],
    ],
)
def test_the_batch_decoder_refuses_what_numpy_alone_would_take(rows):
    raw = encode("m", "1", ["x1", "x2"], rows).replace(b"Infinity", b"1e400")
    with pytest.raises(InvalidMessage):
        decode(raw)
    with pytest.raises(InvalidMessage):
        decode_batch(raw)


@pytest.mark.parametrize(
    "raw",
    [
        input_message("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6], [1, 2], [-3.5e99, 7]]),
        input_message("true-model", "null", ["x1", "false"], [[0.25, 1]]),  # the careful path, same answer
        encode("m", "1", ["x1"], [[10**30]]),  # beyond int64: numpy makes objects; decode() floats
        b'{"model": "m", "version": "1", "features": ["x1"], "rows": []}',
    ],
)
def test_the_batch_decoder_gives_decodes_values_as_one_array(raw):
    inputs, batch = decode(raw), decode_batch(raw)
    assert (batch.model, batch.version, batch.features) == (inputs.model, inputs.version, inputs.features)
    assert batch.values.dtype == np.float64 and batch.values.shape == (len(inputs.rows), len(inputs.features))
    assert batch.values.tolist() == inputs.rows


def test_a_message_without_rows_is_valid_and_empty():
    assert decode(b'{"model": "m", "version": "1", "features": ["x1"], "rows": []}').rows == []


def test_the_publishers_stamp_reaches_the_consumer_and_a_partial_or_bad_one_is_refused():
    raw = input_message("regressor", "1.0", ["x1"], [[0.2]], ("3f9c", 7, 120))
    assert raw == encode("regressor", "1.0", ["x1"], [[0.2]], ("3f9c", 7, 120))
    batch = decode_batch(raw)
    assert (batch.producer, batch.seq, batch.row) == ("3f9c", 7, 120)
    assert decode_batch(encode("regressor", "1.0", ["x1"], [[0.2]])).producer is None  # unstamped: the simulator's
    head = '{"model": "m", "version": "1", "features": ["x1"], "rows": [[1]]'
    for stamp, reason in (
        (', "producer": "a", "seq": 1', "come together"),
        (', "seq": 1, "row": 0', "come together"),
        (', "producer": 3, "seq": 1, "row": 0', "must be a string"),
        (', "producer": "a", "seq": -1, "row": 0', "integers >= 0"),
        (', "producer": "a", "seq": true, "row": 0', "integers >= 0"),
        (', "producer": "a", "seq": 1, "row": 2.5', "integers >= 0"),
    ):
        for decoder in (decode, decode_batch):
            with pytest.raises(InvalidMessage, match=reason):
                decoder((head + stamp + "}").encode())
