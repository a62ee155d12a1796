"""Every rule about what a client may send: good bodies parse, bad ones get a BadRequest that says why."""

import json
import re

import pytest
from tabular_codec import DEFAULT_MAX_ABS, BadRequest, Rows, _number, format_error, format_output, parse_request

N_FEATURES = 2
MAX_ROWS = 64


def parse(body):
    return parse_request({"body": body}, N_FEATURES, MAX_ROWS)


def rejection(body) -> str:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.status == 400
    return str(caught.value)


# --- good requests -----------------------------------------------------------


def test_one_row_is_a_single_request():
    assert parse({"data": [0.2, 0.6]}) == Rows(values=[[0.2, 0.6]], single=True)


def test_several_rows_keep_their_order():
    assert parse({"data": [[0.2, 0.6], [1, -3]]}) == Rows(values=[[0.2, 0.6], [1.0, -3.0]], single=False)


def test_a_list_with_one_row_is_not_single():
    """[[x1, x2]] must be answered with a list, [x1, x2] with a number."""
    assert parse({"data": [[0.2, 0.6]]}).single is False


def test_integers_become_floats():
    rows = parse({"data": [1, 2]})
    assert rows.values == [[1.0, 2.0]]
    assert all(type(v) is float for v in rows.values[0])


@pytest.mark.parametrize("body", ['{"data": [0.2, 0.6]}', b'{"data": [0.2, 0.6]}', bytearray(b'{"data": [0.2, 0.6]}')])
def test_undecoded_bodies_are_parsed_as_json(body):
    """TorchServe passes the body raw when the request was not Content-Type: application/json."""
    assert parse(body) == Rows(values=[[0.2, 0.6]], single=True)


def test_exactly_max_rows_is_allowed():
    assert len(parse({"data": [[0, 1]] * MAX_ROWS}).values) == MAX_ROWS


def test_extra_keys_are_ignored():
    assert parse({"data": [0, 1], "id": "abc"}).values == [[0.0, 1.0]]


# --- bad requests: each message says what was wrong and what was expected ----


def test_malformed_json():
    message = rejection('{"data": [0.2, 0.6')
    assert "not valid JSON" in message
    assert "position" in message


def test_empty_body():
    assert "empty" in rejection("  \n")


def test_body_that_is_not_utf8():
    assert "UTF-8" in rejection(b"\xff\xfe{")


def test_request_without_a_body():
    with pytest.raises(BadRequest, match="expected a JSON body"):
        parse_request({"data": b"x"}, N_FEATURES, MAX_ROWS)


@pytest.mark.parametrize(
    ("body", "kind"), [([0.2, 0.6], "list"), ("[0.2, 0.6]", "list"), ("5", "int"), ('"text"', "str")]
)
def test_body_that_is_not_an_object(body, kind):
    message = rejection(body)
    assert f"JSON {kind}" in message
    assert "expected an object" in message


def test_missing_data():
    message = rejection({"inputs": [0.2, 0.6]})
    assert 'missing key "data"' in message
    assert '{"data": [x1, x2]}' in message


@pytest.mark.parametrize(("data", "kind"), [("0.2,0.6", "str"), ({"x1": 0.2}, "dict"), (0.2, "float")])
def test_data_that_is_not_a_list(data, kind):
    message = rejection({"data": data})
    assert f'"data" is a {kind}' in message
    assert "expected a list" in message


def test_empty_list():
    message = rejection({"data": []})
    assert '"data" is empty' in message
    assert f"expected {N_FEATURES} numbers" in message


@pytest.mark.parametrize(
    ("data", "where", "count"),
    [
        ([0.2], '"data"', 1),
        ([0.2, 0.6, 0.9], '"data"', 3),
        ([[0, 1], [0, 1, 2]], '"data"[1]', 3),
        ([[]], '"data"[0]', 0),
    ],
)
def test_wrong_feature_count(data, where, count):
    assert rejection({"data": data}) == f"{where} has {count} values; expected {N_FEATURES}"


@pytest.mark.parametrize(
    ("data", "where", "shown"),
    [
        (["0.2", 0.6], '"data"[0]', '"0.2"'),
        ([0.2, None], '"data"[1]', "null"),
        ([[0, 1], [0, "x"]], '"data"[1][1]', '"x"'),
        ([0.2, {"v": 1}], '"data"[1]', '{"v": 1}'),
    ],
)
def test_non_numeric_values(data, where, shown):
    assert rejection({"data": data}) == f"{where} is {shown}; expected a number"


@pytest.mark.parametrize("data", [[True, 0.6], [0.2, False], [[0, 1], [1, True]]])
def test_booleans_are_not_numbers(data):
    """bool is an int in Python; JSON true must not score as 1.0."""
    message = rejection({"data": data})
    assert "true" in message or "false" in message
    assert "expected a number" in message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_tokens(token):
    """Python's json accepts these tokens (TorchServe decodes with it too); they must still be refused."""
    message = rejection(f'{{"data": [{token}, 0.6]}}')
    assert message.startswith('"data"[0] is ')
    assert "expected a finite number" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_already_decoded(value):
    assert "expected a finite number" in rejection({"data": [0.2, value]})


def test_number_that_overflows_to_infinity():
    assert "expected a finite number" in rejection('{"data": [1e400, 0.6]}')


@pytest.mark.parametrize("value", [1e308, -1e308, 1.0e6 + 1, -2e6, 10**7])
def test_values_beyond_the_input_bound_are_refused_naming_the_row(value):
    message = rejection({"data": [[0.2, 0.6], [0.1, value]]})
    assert message.startswith('"data"[1][1] is ')
    assert "expected |value| <= 1e+06" in message


@pytest.mark.parametrize("value", [1.0e6, -1.0e6, 10**6])
def test_values_on_the_input_bound_are_taken(value):
    assert parse({"data": [value, 0.5]}).values == [[float(value), 0.5]]


def test_the_input_bound_comes_from_the_caller():
    with pytest.raises(BadRequest, match=r"expected \|value\| <= 10$"):
        parse_request({"body": {"data": [10.5, 0.0]}}, N_FEATURES, MAX_ROWS, max_abs=10)
    assert parse_request({"body": {"data": [10.0, 0.0]}}, N_FEATURES, MAX_ROWS, max_abs=10).values == [[10.0, 0.0]]


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "inf"])
def test_non_finite_strings_are_not_numbers(text):
    assert rejection({"data": [text, 0.6]}) == f'"data"[0] is "{text}"; expected a number'


def test_more_rows_than_allowed():
    message = rejection({"data": [[0, 1]] * (MAX_ROWS + 1)})
    assert message == f'"data" has {MAX_ROWS + 1} rows; at most {MAX_ROWS} are allowed per request'


def test_max_rows_comes_from_the_caller():
    with pytest.raises(BadRequest, match="at most 2 are allowed"):
        parse_request({"body": {"data": [[0, 1]] * 3}}, N_FEATURES, max_rows=2)


def test_row_count_is_checked_before_the_rows_are_read():
    """A huge request is refused on its size, without converting every value."""
    assert "rows" in rejection({"data": [[0, "x"]] * (MAX_ROWS + 1)})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[[0.2, 0.6]]], '"data"[0] has 1 values; expected 2'),
        ([[[0.2, 0.6], [0.1, 0.3]]], '"data"[0][0] is [0.2, 0.6]; expected a number'),
        ([[0.2, 0.6], 0.3], '"data"[1] is not a list; every row must be a list of 2 numbers'),
        ([0.2, [0.6]], '"data"[1] is [0.6]; expected a number'),
    ],
)
def test_nested_too_deep_or_mixed(data, message):
    assert rejection({"data": data}) == message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"data": [0.2, 0.6', id="malformed JSON"),
        pytest.param("", id="empty body"),
        pytest.param([1, 2], id="not an object"),
        pytest.param({"x": 1}, id="missing data"),
        pytest.param({"data": []}, id="empty list"),
        pytest.param({"data": [1]}, id="wrong feature count"),
        pytest.param({"data": ["a", 1]}, id="not a number"),
        pytest.param({"data": [True, 1]}, id="boolean"),
        pytest.param('{"data": [NaN, 1]}', id="NaN"),
        pytest.param({"data": [[0, 1]] * 65}, id="too many rows"),
        pytest.param({"data": [[0, 1], 1]}, id="row not a list"),
    ],
)
def test_every_message_says_what_was_expected(body):
    """parse_request's contract: the message says what was wrong *and* what was expected."""
    assert re.search(r"expected|at most|must be", rejection(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('{"data": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply", id="deep nesting"),
        pytest.param('{"data": [' + "9" * 400 + ", 0.6]}", "too large for a float", id="huge integer"),
        pytest.param('{"data": [' + "9" * 5000 + ", 0.6]}", "not acceptable JSON", id="over 4300 digits"),
    ],
)
def test_pathological_bodies_under_the_64k_limit_are_bad_requests(body, message):
    """These once escaped parse_request as RecursionError/OverflowError/ValueError and failed the whole batch."""
    assert len(body.encode()) < 64 * 1024  # Nginx lets them through
    assert message in rejection(body)


# --- answers -----------------------------------------------------------------


def test_single_row_answer_is_a_number():
    assert json.loads(format_output([0.25], single=True)) == {"output": 0.25}


def test_several_rows_answer_is_a_list():
    assert json.loads(format_output([0.25, -1.5], single=False)) == {"output": [0.25, -1.5]}


def test_one_row_sent_as_a_list_is_answered_with_a_list():
    assert json.loads(format_output([0.25], single=False)) == {"output": [0.25]}


def test_error_is_json_with_the_message():
    message = 'missing key "data"; expected {"data": [x1, x2]}'
    assert json.loads(format_error(message)) == {"error": message}


FLOATS = [0.0, -0.0, 0.1, -2.5, 1e-310, 5e-324, 1.7976931348623157e308, -1e22, 1e16, 123456789.125, 0.12997038662433624]


@pytest.mark.parametrize("value", FLOATS)
def test_answers_are_the_bytes_json_dumps_writes(value):
    """format_output writes JSON by hand on the hot path; it must be json.dumps's text, not just equivalent JSON."""
    assert format_output([value], single=True) == json.dumps({"output": value})
    assert format_output([value, -value, value / 3], single=False) == json.dumps({"output": [value, -value, value / 3]})


def test_answers_match_json_dumps_for_random_floats():
    import random

    rng = random.Random(11)
    for _ in range(2000):
        row = [rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30) for _ in range(rng.randint(1, 5))]
        assert format_output(row, single=False) == json.dumps({"output": row})
        assert format_output(row, single=True) == json.dumps({"output": row[0]})


@pytest.mark.parametrize(
    "row",
    [[0.2, 0.6], [1, 0.5], [0.5, 10**400], [True, 0.1], [0.1, float("nan")], [-float("inf"), 0.0], ["1", 0], [None, 1],
     [1e6, -1e6], [1e6 + 0.5, 0.0], [0.0, -1e308]],
)  # fmt: skip
def test_rows_of_floats_and_anything_else_follow_the_same_rules(row):
    """Finite floats skip the per-value checks; every other value still goes through them."""
    try:
        expected = [[_number(v, '"data"[0]', DEFAULT_MAX_ABS) for v in row]]
    except BadRequest:
        with pytest.raises(BadRequest):
            parse({"data": row})
    else:
        assert parse({"data": row}).values == expected
