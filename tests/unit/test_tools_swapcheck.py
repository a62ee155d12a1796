"""twinserve/tools/swapcheck.py: what each model is loaded with, and when a check has failed."""

import base64
import json

from tests.unit.fakes import make_stack, write_archive
from twinserve.store.state import write_production
from twinserve.tools.swapcheck import SwapCheck, load_body
from twinserve.tools.wrk import WrkReport


def test_a_model_is_loaded_with_its_first_sample_else_its_first_golden_input(tmp_path):
    stack = make_stack(tmp_path, "blue", versions=("1.0",))
    write_production(stack, "blue", "digits")
    assert load_body(stack, "regressor") == (b'{"data": [0.2, 0.6]}', "application/json")
    path = write_archive(stack, "digits", "1.0")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["twinserve"] = {"samples": [{"content_type": "image/png", "base64": base64.b64encode(b"\x89PNG").decode()}]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert load_body(stack, "digits") == (b"\x89PNG", "image/png")


def report(non_2xx=0, socket_errors=0):
    return WrkReport(1000, 10.0, 100.0, 1.0, 5.0, non_2xx, socket_errors)


def test_any_error_on_any_model_or_another_model_moving_fails_the_check():
    assert not SwapCheck("digits", 10, None, {"digits": report(), "regressor": report()}, ()).failed
    assert SwapCheck("digits", 10, None, {"digits": report(), "regressor": report(non_2xx=1)}, ()).failed
    assert SwapCheck("digits", 10, None, {"digits": report(socket_errors=1), "regressor": report()}, ()).failed
    moved = ("regressor: ('blue', 'blue') -> ('green', 'green') after swap 3",)
    assert SwapCheck("digits", 10, None, {"digits": report(), "regressor": report()}, moved).failed
