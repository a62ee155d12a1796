"""Pure request parsing and response formatting for tabular models.

No torch, no TorchServe: every rule about what a client may send lives here
and is unit-tested on its own. TorchServe hands the handler one dict per
request of a batch; the JSON body is under "body", already decoded when the
request said Content-Type: application/json, raw bytes or text otherwise.
"""

import json
import math
from dataclasses import dataclass

from request_errors import BadRequest, format_error  # noqa: F401 - format_error: the codec's API

# Default bound on an input value's magnitude (model-config.yaml: handler.max_abs_input).
DEFAULT_MAX_ABS = 1.0e6


@dataclass(frozen=True)
class Rows:
    """A parsed request: its rows of features, and whether it came as one row."""

    values: list[list[float]]
    single: bool


def _decode_body(request: dict):
    if not isinstance(request, dict) or "body" not in request:
        raise BadRequest('expected a JSON body {"data": [...]} with Content-Type: application/json')
    body = request["body"]
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("body is not UTF-8 text; expected a JSON object") from None
    if isinstance(body, str):
        if not body.strip():
            raise BadRequest('body is empty; expected a JSON object {"data": [...]}')
        try:
            body = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f'body is not valid JSON ({exc.msg} at position {exc.pos}); expected an object {{"data": [...]}}'
            ) from None
        except (ValueError, RecursionError) as exc:  # an integer over 4300 digits; nesting ~1000 deep
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise BadRequest(f'body is not acceptable JSON ({reason}); expected an object {{"data": [...]}}') from None
    return body


def _number(value, where: str, max_abs: float) -> float:
    # bool is a subclass of int in Python: reject it before the int check.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where} is {json.dumps(value)[:40]}; expected a number")
    try:
        number = float(value)
    except OverflowError:
        raise BadRequest(f"{where} is an integer too large for a float; expected a finite number") from None
    if not math.isfinite(number):
        raise BadRequest(f"{where} is {value}; expected a finite number")
    if not -max_abs <= number <= max_abs:
        raise BadRequest(f"{where} is {number!r}, outside the model's input range; expected |value| <= {max_abs:g}")
    return number


def parse_request(request: dict, n_features: int, max_rows: int, max_abs: float = DEFAULT_MAX_ABS) -> Rows:
    """Validate one request of a batch.

    Args:
        request: TorchServe's dict for one request.
        n_features: values expected in each row.
        max_rows: the largest number of rows one request may carry.
        max_abs: the largest magnitude a value may have. Inputs near the float limits
            overflow inside the model, and whether an intermediate sum overflows depends
            on the kernel, which depends on the batch's size: bounded inputs keep every
            request's answer independent of what shares its batch, and an input the model
            cannot take is the client's 400, not a 500 that spends the error budget.
    Returns:
        The rows as floats, and whether the client sent a single row.
    Raises:
        BadRequest: with a message saying what was wrong and what was expected.
    """
    body = _decode_body(request)
    if not isinstance(body, dict):
        raise BadRequest(f'body is a JSON {type(body).__name__}; expected an object {{"data": [...]}}')
    if "data" not in body:
        raise BadRequest('missing key "data"; expected {"data": [x1, x2]} or {"data": [[x1, x2], ...]}')
    data = body["data"]
    if not isinstance(data, list):
        raise BadRequest(
            f'"data" is a {type(data).__name__}; expected a list of {n_features} numbers or a list of rows'
        )
    if not data:
        raise BadRequest(f'"data" is empty; expected {n_features} numbers or a list of rows')
    single = not isinstance(data[0], list)
    rows = [data] if single else data
    if len(rows) > max_rows:
        raise BadRequest(f'"data" has {len(rows)} rows; at most {max_rows} are allowed per request')
    values = []
    for i, row in enumerate(rows):
        # Every request of every batch comes through here: a row of floats within the bound, the common
        # case, is taken as it is; anything else is checked, converted or rejected below.
        if (
            type(row) is list
            and len(row) == n_features
            and all(type(v) is float and -max_abs <= v <= max_abs for v in row)
        ):
            values.append(row)
            continue
        where = '"data"' if single else f'"data"[{i}]'
        if not isinstance(row, list):
            raise BadRequest(f"{where} is not a list; every row must be a list of {n_features} numbers")
        if len(row) != n_features:
            raise BadRequest(f"{where} has {len(row)} values; expected {n_features}")
        values.append([_number(v, f"{where}[{j}]", max_abs) for j, v in enumerate(row)])
    return Rows(values=values, single=single)


def format_output(outputs: list[float], single: bool) -> str:
    """The answer for one request: a float for a single row, a list otherwise.

    Written by hand, as json.dumps would write it (repr() is how json writes a finite
    float), at a fraction of the cost: this runs for every answer.
    """
    if single:
        return f'{{"output": {outputs[0]!r}}}'
    return '{"output": [' + ", ".join(map(repr, outputs)) + "]}"
