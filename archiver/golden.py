"""The golden set: inputs of any content type with the answers this exact model gives.

A model's train.py records it (artifacts/golden_set.json); the archiver checks it against
the model's golden rule (twinserve.golden) and copies it into the archive's metadata; the
smoke test replays every input through Nginx and compares the answers by that rule.

A case is a mapping. Its input is one of
    "data": <value>                                  sent as the JSON body {"data": <value>}
    "request": {"content_type": "image/png", "base64": "..."}   any body (record() writes it)
    "request": {"json": <value>}                     any JSON body
and its expected answer is what its rule compares:
    compare: numbers  "output": a number, or a list of numbers
    compare: label    "label": the class, "probabilities": one per class (a list, or {"class": p})
Pure: no torch, no TorchServe, no twinserve; a model's train.py may import it.
"""

import json
import math

from archiver.modelconfig import JSON, GoldenRule, ModelConfigError, Payload


def record(body: bytes, content_type: str, **expected) -> dict:
    """One golden case for a raw body (an image, a text, ...) and what the model answers to it.

    Args:
        body: the exact bytes a client sends.
        content_type: the Content-Type it is sent with, e.g. image/png.
        expected: the answer's fields the rule compares (output=..., or label=..., probabilities=...).
    """
    request = Payload("", content_type, bytes(body)).to_dict()
    del request["name"]
    return {"request": request, **expected}


def request_of(case: dict, index: int = 0) -> Payload:
    """The body and content type a golden case is replayed with."""
    name = f"golden_set[{index}]"
    if not isinstance(case, dict):
        raise ModelConfigError(f"{name} is not a mapping")
    if "data" in case:
        return Payload(name, JSON, json.dumps({"data": case["data"]}).encode())
    if "request" in case:
        return Payload.from_dict(case["request"], name)
    raise ModelConfigError(f'{name} has no input: expected "data" or "request"')


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check(cases, rule: GoldenRule) -> None:
    """Every case has a replayable input and what its rule compares.

    Raises:
        ModelConfigError: one line naming the case and the missing or wrong field.
    """
    if not isinstance(cases, list) or not cases:
        raise ModelConfigError("golden_set.json must be a non-empty list of cases")
    for i, case in enumerate(cases):
        request_of(case, i)
        where = f"golden_set[{i}]"
        if rule.compare == "numbers":
            output = case.get("output")
            values = output if isinstance(output, list) else [output]
            if not values or not all(map(_is_number, values)):
                raise ModelConfigError(f'{where}: "output" is {output!r}; compare: numbers needs finite numbers')
            continue
        probabilities = case.get("probabilities")
        if isinstance(probabilities, list):
            probabilities = {str(k): p for k, p in enumerate(probabilities)}
        if not isinstance(probabilities, dict) or not probabilities or not all(map(_is_number, probabilities.values())):
            raise ModelConfigError(f'{where}: no "probabilities"; compare: label needs one finite number per class')
        label = case.get("label")
        if isinstance(label, bool) or str(label) not in probabilities:
            raise ModelConfigError(f'{where}: "label" is {label!r}; expected one of the classes of its probabilities')
    if rule.batch and not all("data" in case for case in cases):
        raise ModelConfigError('twinserve.golden.batch is true but a golden case has no "data" rows to batch')
