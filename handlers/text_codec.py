"""Pure request parsing and response formatting for text classifiers.

No torch, no tokenizer, no TorchServe: every rule about what a client may send
lives here and is unit-tested on its own (tests/unit/test_handlers_text_codec.py).
A request is {"text": "..."} (one answer) or {"texts": [...]} (a list of answers
in the same order). TorchServe hands the body over already decoded when the
client said Content-Type: application/json, as bytes otherwise.

What is refused, each with its own JSON error: a body that is not UTF-8 or not
JSON, a body that is not an object with exactly one of "text" and "texts", a
text that is not a string, an empty or whitespace-only text, a string that is
not valid Unicode (a lone surrogate escape, which JSON allows), more texts than
the model takes (400), and a text over the model's byte limit (413). The token
limit is not refused here: the handler truncates and says so in the answer.
"""

import json
from dataclasses import dataclass

from request_errors import BadRequest, PayloadTooLarge

LABELS = ("negative", "positive")  # the head's outputs, in order
DIGITS = 4  # scores are rounded: an answer does not depend on what shared its batch
SHAPE = 'expected {"text": "..."} or {"texts": ["...", ...]}'


@dataclass(frozen=True)
class Texts:
    """A parsed request: its texts, and whether it came as one "text"."""

    values: tuple[str, ...]
    single: bool


def _json_body(request) -> object:
    body = request.get("body", request.get("data")) if isinstance(request, dict) else None
    if body is None:
        raise BadRequest(f"expected a JSON body; {SHAPE}")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"body is not UTF-8 (invalid byte at position {exc.start}); {SHAPE}") from None
    if isinstance(body, str):
        if not body.strip():
            raise BadRequest(f"body is empty; {SHAPE}")
        try:
            body = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON ({exc.msg} at position {exc.pos}); {SHAPE}") from None
        except (ValueError, RecursionError):  # an integer over 4300 digits; nesting ~1000 deep
            raise BadRequest(f"body is not acceptable JSON; {SHAPE}") from None
    return body


def _text(value, where: str, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where} is a JSON {type(value).__name__}; expected a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"{where} is not valid Unicode (a lone surrogate escape)") from None
    if not value.strip():
        raise BadRequest(f"{where} is empty or only whitespace; expected a sentence")
    if size > max_bytes:
        raise PayloadTooLarge(f"{where} is {size} bytes of UTF-8; at most {max_bytes} are allowed per text")
    return value


def parse_request(request, max_texts: int, max_text_bytes: int) -> Texts:
    """Validate one request of a batch.

    Args:
        request: TorchServe's dict for one request.
        max_texts: the most texts one {"texts": [...]} may carry.
        max_text_bytes: the largest text, in bytes of UTF-8 (a 413 above it).
    Returns:
        The texts as sent, and whether they came as one "text".
    Raises:
        BadRequest: (400, or PayloadTooLarge 413) saying what was wrong and what was expected.
    """
    body = _json_body(request)
    if not isinstance(body, dict):
        raise BadRequest(f"body is a JSON {type(body).__name__}; {SHAPE}")
    if ("text" in body) == ("texts" in body):
        raise BadRequest(f'{"both" if "text" in body else "neither"} "text" and "texts" given; {SHAPE}')
    if "text" in body:
        return Texts((_text(body["text"], '"text"', max_text_bytes),), True)
    texts = body["texts"]
    if not isinstance(texts, list):
        raise BadRequest(f'"texts" is a JSON {type(texts).__name__}; expected a list of strings')
    if not texts:
        raise BadRequest('"texts" is empty; expected at least one string')
    if len(texts) > max_texts:
        raise BadRequest(f'"texts" has {len(texts)} strings; at most {max_texts} are allowed per request')
    return Texts(tuple(_text(t, f'"texts"[{i}]', max_text_bytes) for i, t in enumerate(texts)), False)


def prediction(probabilities: list[float], truncated: bool, labels=LABELS) -> dict:
    """One text's answer: the likeliest label, every label's score, and whether the text was cut."""
    best = max(range(len(labels)), key=probabilities.__getitem__)
    scores = {label: round(p, DIGITS) for label, p in zip(labels, probabilities, strict=True)}
    return {"label": labels[best], "scores": scores, "truncated": truncated}


def format_prediction(probabilities: list[float], truncated: bool, labels=LABELS) -> str:
    return json.dumps(prediction(probabilities, truncated, labels))


def format_answer(texts: Texts, outputs: list[tuple[list[float], bool]], labels=LABELS) -> str:
    """The JSON answer to one request: an object for "text", a list in the same order for "texts".

    Args:
        outputs: (probabilities, truncated) per text of the request.
    """
    answers = [prediction(p, cut, labels) for p, cut in outputs]
    return json.dumps(answers[0] if texts.single else answers)


def text_drift_features(pcs: list[str]) -> list[str]:
    """The names of text_drift_row's values, in order (train.py's reference columns are these)."""
    return ["chars", "tokens", "unknown_share", *pcs, "positive"]


def text_drift_row(text: str, tokens: int, unknown: int, pcs: list[float], positive: float) -> list[float]:
    """One text's drift values: its length in characters and tokens (the encoder's, [CLS] and [SEP]
    included), the share of those tokens the vocabulary does not know ([UNK]), its sentence embedding on
    the training set's principal components, and the positive score (prediction drift)."""
    return [float(len(text)), float(tokens), unknown / tokens if tokens else 0.0, *pcs, positive]
