"""The golden-set smoke test: replay a version's recorded inputs and compare.

Run through Nginx (/test/predict before a promotion, /predict after), so it
checks the route, the colour, the version and the numbers together.
"""

import math

import requests

from twinserve.errors import PreflightError

TOLERANCE = 1e-5


def problem_with(
    answer_status: int, headers: dict, body, expected: list[float] | float, colour: str, version: str
) -> str | None:
    """What is wrong with one answer, or None if it is right.

    Args:
        answer_status: the HTTP status.
        headers: the response headers (case-insensitive mapping).
        body: the decoded JSON body, or None if it was not JSON.
        expected: the recorded output(s).
        colour: the colour that should have answered.
        version: the model version that should have answered.
    """
    if answer_status != 200:
        return f"HTTP {answer_status}: {str(body)[:120]}"
    if headers.get("X-Served-By") != colour:
        return f"served by {headers.get('X-Served-By')!r}, expected {colour!r}"
    if headers.get("X-Model-Version") != version:
        return f"model version {headers.get('X-Model-Version')!r}, expected {version!r}"
    if not isinstance(body, dict) or "output" not in body:
        return f"answer {str(body)[:120]!r} has no output"
    got = body["output"]
    want = expected if isinstance(expected, list) else [expected]
    got_list = got if isinstance(got, list) else [got]
    if isinstance(got, list) != isinstance(expected, list) or len(got_list) != len(want):
        return f"output {str(got)[:120]} does not have the shape of {str(expected)[:120]}"
    for g, w in zip(got_list, want, strict=True):
        if not isinstance(g, (int, float)) or not math.isfinite(g) or abs(g - w) > TOLERANCE * max(1.0, abs(w)):
            return f"output {g} differs from the golden {w}"
    return None


def _post(url: str, payload: dict):
    try:
        response = requests.post(url, json=payload, timeout=10)
    except requests.RequestException as exc:
        return 0, {}, f"{type(exc).__name__}"
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, response.headers, body


def run_smoke(url: str, golden: list[dict], colour: str, version: str) -> int:
    """Send every golden row, then all of them as one batch request.

    Returns:
        The number of requests checked.
    Raises:
        PreflightError: at the first wrong answer, saying which and why.
    """
    if not golden:
        raise PreflightError(f"no golden set for version {version}; cannot smoke-test it")
    cases = [({"data": g["data"]}, g["output"]) for g in golden]
    cases.append(({"data": [g["data"] for g in golden]}, [g["output"] for g in golden]))
    for payload, expected in cases:
        problem = problem_with(*_post(url, payload), expected, colour, version)
        if problem:
            raise PreflightError(f"smoke test of {colour} {version} via {url} failed: {problem}")
    return len(cases)
