"""The golden-set smoke test: replay a version's recorded inputs and compare by the model's rule.

Run through Nginx (the model's staging route before a promotion, its production route
after), so it checks the route, the colour, the version and the answers together.
Inputs are replayed with their own content type (JSON rows, PNG bytes, ...) as the
archive's metadata recorded them (archiver/golden.py); answers are compared by the
model's twinserve.golden rule: numbers within a tolerance, or a class label exactly
with each probability within a tolerance.
"""

import json
import math

import requests

from archiver.golden import request_of
from archiver.modelconfig import JSON, GoldenRule, ModelConfigError, Payload, parse_golden
from twinserve.errors import PreflightError

DEFAULT_TOLERANCE = 1e-5  # numbers, relative: float32 answers of a float64 forward pass
DEFAULT_PROBABILITY_TOLERANCE = 1e-4  # labels: probabilities are answered to 6 decimals


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def compare_numbers(body, expected, tolerance: float) -> str | None:
    """{"output": x or [x, ...]} against the golden output(s): each within tolerance × max(1, |golden|)."""
    if not isinstance(body, dict) or "output" not in body:
        return f"answer {str(body)[:120]!r} has no output"
    got = body["output"]
    want = expected if isinstance(expected, list) else [expected]
    got_list = got if isinstance(got, list) else [got]
    if isinstance(got, list) != isinstance(expected, list) or len(got_list) != len(want):
        return f"output {str(got)[:120]} does not have the shape of {str(expected)[:120]}"
    for g, w in zip(got_list, want, strict=True):
        if not _number(g) or abs(g - w) > tolerance * max(1.0, abs(w)):
            return f"output {g} differs from the golden {w}"
    return None


def compare_label(body, label, probabilities, tolerance: float) -> str | None:
    """{"label": k, "probabilities": {"0": p, ...}}: the label exactly, every class's probability within tolerance.

    A text model answers its classes' probabilities as "scores" (the sentiment services' form,
    {"label": "positive", "scores": {...}}); either name is read.

    Args:
        probabilities: the golden ones, a list (class = index) or a mapping class -> probability.
    """
    if isinstance(probabilities, list):
        probabilities = {str(k): p for k, p in enumerate(probabilities)}
    got = body.get("probabilities", body.get("scores")) if isinstance(body, dict) else None
    if not isinstance(body, dict) or "label" not in body or not isinstance(got, dict):
        return f"answer {str(body)[:120]!r} has no label and probabilities"
    if str(body["label"]) != str(label) or isinstance(body["label"], bool):
        return f"label {body['label']!r} differs from the golden {label!r}"
    if set(got) != set(probabilities):
        return f"classes {sorted(got)} differ from the golden {sorted(probabilities)}"
    for k, want in probabilities.items():
        if not _number(got[k]) or abs(got[k] - want) > tolerance:
            return f"probability of {k} {got[k]} differs from the golden {want} by more than {tolerance:g}"
    return None


def compare(rule: GoldenRule, body, case: dict) -> str | None:
    """What is wrong with one decoded answer to a golden case, by the model's rule; None if nothing."""
    if rule.compare == "numbers":
        return compare_numbers(body, case["output"], rule.tolerance)
    return compare_label(body, case["label"], case["probabilities"], rule.tolerance)


def problem_with(answer_status: int, headers, body, case: dict, rule: GoldenRule, colour: str, version: str):
    """What is wrong with one answer, or None if it is right.

    Args:
        answer_status: the HTTP status.
        headers: the response headers (case-insensitive mapping).
        body: the decoded JSON body, or None if it was not JSON.
        case: the golden case (its expected fields: output, or label and probabilities).
        rule: the model's golden rule.
        colour: the colour that should have answered.
        version: the model version that should have answered.
    """
    if answer_status != 200:
        return f"HTTP {answer_status}: {str(body)[:120]}"
    if headers.get("X-Served-By") != colour:
        return f"served by {headers.get('X-Served-By')!r}, expected {colour!r}"
    if headers.get("X-Model-Version") != version:
        return f"model version {headers.get('X-Model-Version')!r}, expected {version!r}"
    return compare(rule, body, case)


def _post(url: str, payload: Payload):
    try:
        response = requests.post(url, data=payload.body, headers={"Content-Type": payload.content_type}, timeout=10)
    except requests.RequestException as exc:
        return 0, {}, f"{type(exc).__name__}"
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, response.headers, body


def cases_of(golden: list[dict], rule: GoldenRule) -> list[tuple[Payload, dict]]:
    """(request, case) for every golden case, and with `batch`, all rows once more as one request."""
    try:
        cases = [(request_of(g, i), g) for i, g in enumerate(golden)]
    except ModelConfigError as exc:
        raise PreflightError(f"the golden set cannot be replayed: {exc}") from None
    if rule.batch:
        rows = Payload("golden batch", JSON, json.dumps({"data": [g["data"] for g in golden]}).encode())
        cases.append((rows, {"output": [g["output"] for g in golden]}))
    return cases


def rule_of(meta: dict) -> GoldenRule:
    """The golden rule an archive's metadata carries (twinserve.golden), or the one its golden set implies."""
    raw = meta.get("twinserve", {}).get("golden") if isinstance(meta.get("twinserve"), dict) else None
    if raw is None:
        return implied_rule(meta.get("golden_set") or [])
    try:
        return parse_golden(raw)
    except ModelConfigError as exc:
        raise PreflightError(f"{meta.get('model_name')} {meta.get('version')}: {exc}") from None


def implied_rule(golden: list[dict]) -> GoldenRule:
    """For archives built before twinserve.golden existed (and callers without the metadata): a golden set
    with labels is compared as labels, one with outputs as numbers (rows batched when all cases are rows)."""
    if golden and all(isinstance(g, dict) and "label" in g for g in golden):
        return GoldenRule("label", DEFAULT_PROBABILITY_TOLERANCE)
    batch = bool(golden) and all(isinstance(g, dict) and "data" in g for g in golden)
    return GoldenRule("numbers", DEFAULT_TOLERANCE, batch)


def run_smoke(url: str, golden: list[dict], colour: str, version: str, rule: GoldenRule | None = None) -> int:
    """Send every golden input with its content type (and, for a batch rule, all rows as one request).

    Args:
        rule: the model's twinserve.golden (rule_of(metadata)); None: implied by the golden set.
    Returns:
        The number of requests checked.
    Raises:
        PreflightError: at the first wrong answer, saying which and why.
    """
    if not golden:
        raise PreflightError(f"no golden set for version {version}; cannot smoke-test it")
    rule = rule or implied_rule(golden)
    checked = cases_of(golden, rule)
    for payload, case in checked:
        problem = problem_with(*_post(url, payload), case, rule, colour, version)
        if problem:
            raise PreflightError(f"smoke test of {colour} {version} via {url} failed: {payload.name}: {problem}")
    return len(checked)
