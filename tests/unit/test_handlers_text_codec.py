"""handlers/text_codec.py: what a text request may be, and the answers' shape. Pure: no torch, no tokenizer."""

import json

import pytest
from request_errors import BadRequest, PayloadTooLarge
from text_codec import Texts, format_answer, format_prediction, parse_request


def parse(body, max_texts=4, max_text_bytes=64):
    return parse_request({"body": body}, max_texts, max_text_bytes)


@pytest.mark.parametrize(
    "body",
    [
        {"text": "a wonderful, moving film"},  # decoded by TorchServe (Content-Type: application/json)
        b'{"text": "a wonderful, moving film"}',  # raw bytes
        '{"text": "a wonderful, moving film"}',  # text
    ],
)
def test_one_text_in_any_form_torchserve_hands_over(body):
    assert parse(body) == Texts(("a wonderful, moving film",), True)


def test_texts_keep_their_order_and_unicode():
    body = json.dumps({"texts": ["Crust is not good.", "très bon 👍", "  ok  "]}, ensure_ascii=False).encode()
    assert parse(body) == Texts(("Crust is not good.", "très bon 👍", "  ok  "), False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "expected a JSON body"),
        (b"", "body is empty"),
        (b"\xff\xfe{}", "not UTF-8 (invalid byte at position 0)"),
        (b'{"text": "caf\xe9"}', "not UTF-8"),
        (b"{text: 1}", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not acceptable JSON"),
        (["a"], "body is a JSON list"),
        ({}, 'neither "text" and "texts"'),
        ({"text": "a", "texts": ["b"]}, 'both "text" and "texts"'),
        ({"text": 3}, '"text" is a JSON int; expected a string'),
        ({"text": None}, '"text" is a JSON NoneType'),
        ({"text": ""}, '"text" is empty or only whitespace'),
        ({"text": " \n\t\u3000"}, '"text" is empty or only whitespace'),
        (b'{"text": "\\ud800"}', "not valid Unicode"),
        ({"texts": "a"}, '"texts" is a JSON str; expected a list of strings'),
        ({"texts": []}, '"texts" is empty'),
        ({"texts": ["a", 2]}, '"texts"[1] is a JSON int'),
        ({"texts": ["a", " "]}, '"texts"[1] is empty or only whitespace'),
        ({"texts": ["a"] * 5}, '"texts" has 5 strings; at most 4 are allowed per request'),
    ],
)
def test_refused_with_a_400_saying_what_was_wrong(body, message):
    with pytest.raises(BadRequest) as err:
        parse_request({"body": body} if body is not None else {}, 4, 64)
    assert type(err.value) is BadRequest and err.value.status == 400
    assert message in str(err.value)


def test_a_text_over_the_byte_limit_is_413_counted_in_utf8_bytes():
    assert parse({"text": "é" * 32}).values == ("é" * 32,)  # 64 bytes: at the limit
    with pytest.raises(PayloadTooLarge, match='"text" is 66 bytes of UTF-8; at most 64') as err:
        parse({"text": "é" * 33})
    assert err.value.status == 413
    with pytest.raises(PayloadTooLarge, match=r'"texts"\[2\] is 65 bytes'):
        parse({"texts": ["a", "b", "x" * 65]})


def test_one_answer_for_text_and_a_list_in_order_for_texts():
    one = json.loads(format_answer(Texts(("a",), True), [([0.25, 0.75], False)]))
    assert one == {"label": "positive", "scores": {"negative": 0.25, "positive": 0.75}, "truncated": False}
    many = json.loads(format_answer(Texts(("a", "b"), False), [([0.9, 0.1], True), ([0.2, 0.8], False)]))
    assert [a["label"] for a in many] == ["negative", "positive"]
    assert [a["truncated"] for a in many] == [True, False]


def test_scores_are_rounded_to_four_digits():
    answer = json.loads(format_prediction([0.123456789, 0.876543211], truncated=False))
    assert answer["scores"] == {"negative": 0.1235, "positive": 0.8765}


def test_a_texts_drift_row_is_its_lengths_unknown_share_components_and_score():
    from text_codec import text_drift_features, text_drift_row

    row = text_drift_row("Très bien ☃", 8, 2, [0.25, -0.5], 0.9)
    assert row == [11.0, 8.0, 0.25, 0.25, -0.5, 0.9] == text_drift_row("Très bien ☃", 8, 2, [0.25, -0.5], 0.9)
    assert text_drift_features(["pc1", "pc2"]) == ["chars", "tokens", "unknown_share", "pc1", "pc2", "positive"]
