"""The TorchServe handler, driven the way TorchServe's worker drives it: initialize() with a Context,
then handle() per batch with one RequestProcessor per request. No TorchServe process, no Kafka."""

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
import ts_fastpath
import twinserve_handler
import yaml
from tabular_handler import TabularHandler
from ts.context import Context

from models.regressor.model import RegressorMLP
from tests.unit.harness import run_batch

REGRESSOR = Path(__file__).resolve().parents[2] / "models" / "regressor"
HANDLER_CONFIG = yaml.safe_load((REGRESSOR / "model-config.yaml").read_text())
GOOD = [0.2, 0.6]


@pytest.fixture
def weights(tmp_path):
    """A model directory as TorchServe unpacks an archive: model.py and untrained, seeded weights."""
    shutil.copy(REGRESSOR / "model.py", tmp_path / "model.py")
    with torch.random.fork_rng():
        torch.manual_seed(3)
        state = RegressorMLP().state_dict()
    torch.save(state, tmp_path / "weights.pt")
    return tmp_path


@pytest.fixture
def reference(weights):
    """The model run directly, outside the handler."""
    model = RegressorMLP()
    model.load_state_dict(torch.load(weights / "weights.pt"))
    return model.eval().double()


@pytest.fixture
def isolated(monkeypatch):
    """initialize() changes process-wide state (torch threads, root log level, the worker protocol): undo it."""
    monkeypatch.delenv("TWINSERVE_KAFKA_BOOTSTRAP", raising=False)
    installs = []
    monkeypatch.setattr(ts_fastpath, "install", lambda: installs.append(True) or True)
    threads, level = torch.get_num_threads(), logging.getLogger().level
    yield installs
    torch.set_num_threads(threads)
    logging.getLogger().setLevel(level)


def make_context(model_dir: Path, yaml_config: dict) -> Context:
    manifest = {
        "model": {
            "modelName": "regressor",
            "modelVersion": "1.3",
            "serializedFile": "weights.pt",
            "modelFile": "model.py",
            "handler": "tabular_handler.py",
        }
    }
    return Context("regressor", str(model_dir), manifest, 48, None, "0.12.0", model_yaml_config=yaml_config)


@pytest.fixture
def context(weights, isolated, monkeypatch):
    # TorchServe puts the unpacked archive on sys.path; BaseHandler imports "model" from there.
    monkeypatch.syspath_prepend(str(weights))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    return make_context(weights, HANDLER_CONFIG)


@pytest.fixture
def handler(context):
    h = TabularHandler()
    h.initialize(context)
    return h


def score(model, rows) -> list[float]:
    """What the handler promises: float64 forward pass, answered in float32, independent of the batch."""
    with torch.no_grad():
        return [float(model(torch.tensor([row], dtype=torch.float64)).float()) for row in rows]


def test_initialize_reads_the_handler_section_of_model_config(handler, isolated):
    assert handler.features == ["x1", "x2"]
    assert handler.max_rows == 64
    assert handler.version == "1.3"
    assert torch.get_num_threads() == 1
    assert logging.getLogger().level == logging.WARNING
    assert isolated == [True]  # buffered_protocol: true installs the fast reader


def test_without_a_broker_no_publisher_is_started(handler):
    assert handler.publisher is None


def test_a_broker_in_the_environment_starts_the_publisher(context, monkeypatch):
    """The other side of the decision above, with the publisher replaced (no Kafka client is made)."""
    made = []
    monkeypatch.setattr(twinserve_handler, "InputPublisher", lambda *args: made.append(args) or object())
    monkeypatch.setenv("TWINSERVE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("TWINSERVE_INPUTS_TOPIC", "inputs-x")
    TabularHandler().initialize(context)
    assert len(made) == 1
    assert made[0][:2] == ("127.0.0.1:1", "inputs-x")


def test_one_row_gets_a_number(handler, context, reference):
    [(status, headers, body)] = run_batch(handler, context, [{"data": GOOD}])
    assert status == 200
    assert body == {"output": score(reference, [GOOD])[0]}
    assert headers["X-Model-Version"] == "1.3"
    assert headers["content-type"] == "application/json"


def test_several_rows_get_a_list_in_order(handler, context, reference):
    rows = [[0.0, 0.0], [1.0, 0.5], [-2.0, 3.0]]
    [(status, _, body)] = run_batch(handler, context, [{"data": rows}])
    assert status == 200
    assert body == {"output": score(reference, rows)}
    assert len(set(body["output"])) == 3


def test_a_mixed_batch_answers_every_request_with_its_own_status(handler, context, reference):
    bodies = [
        {"data": GOOD},
        {"data": [0.2]},
        {"data": [[0.1, 0.9], [0.5, 0.5], [0.7, 0.3]]},
        bytearray(b'{"data": [0.2, '),  # not JSON: TorchServe passes the raw bytes
        "[1, 2]",
        {"data": [[0.3, 0.4]]},
        {"data": [True, 0.6]},
    ]
    answers = run_batch(handler, context, bodies)
    assert [status for status, _, _ in answers] == [200, 400, 200, 400, 400, 200, 400]
    assert answers[0][2] == {"output": score(reference, [GOOD])[0]}
    assert answers[2][2] == {"output": score(reference, [[0.1, 0.9], [0.5, 0.5], [0.7, 0.3]])}
    assert answers[5][2] == {"output": score(reference, [[0.3, 0.4]])}
    for status, headers, body in answers:
        assert headers["X-Model-Version"] == "1.3"
        assert headers["content-type"] == "application/json"
        if status == 400:
            assert list(body) == ["error"]
            assert isinstance(body["error"], str) and body["error"]


def test_bad_requests_do_not_change_later_answers(handler, context):
    [(_, _, alone)] = run_batch(handler, context, [{"data": GOOD}])
    run_batch(handler, context, [{"data": ["x", 1]}, {"nodata": 1}, {"data": [[0, 1]] * 65}])
    mixed = run_batch(handler, context, [{"data": [1]}, {"data": GOOD}, "{", {"data": [[9.0, 9.0], GOOD]}])
    after = run_batch(handler, context, [{"data": GOOD}])
    assert mixed[1] == (200, {"content-type": "application/json", "X-Model-Version": "1.3"}, alone)
    assert mixed[3][2]["output"][1] == alone["output"]
    assert after[0][2] == alone


def test_a_batch_of_only_bad_requests(handler, context):
    answers = run_batch(handler, context, [{"data": []}, {"data": [float("nan"), 1]}])
    assert [(status, body) for status, _, body in answers] == [
        (400, {"error": '"data" is empty; expected 2 numbers or a list of rows'}),
        (400, {"error": '"data"[0] is nan; expected a finite number'}),
    ]


def test_answers_do_not_depend_on_batch_size(handler, context):
    """docs/architecture.md's promise: the same input gets the same bytes back whichever requests share its batch.

    Exact although the batch size changes the kernels: the handler scores in float64 and answers in
    float32, so a difference in float64's last bits changes the answer only if it straddles a float32
    rounding boundary (about 2**-29 per value; the fixed inputs here do not)."""
    alone = run_batch(handler, context, [{"data": GOOD}])[0][2]
    crowded = run_batch(handler, context, [{"data": [[i / 7, -i / 3] for i in range(64)]}] * 10 + [{"data": GOOD}])
    assert crowded[-1][2] == alone


EXTREME = [-1e308, 1e308]  # alone it overflowed the model (500); in a batch it gave a number (200)


@pytest.mark.parametrize("others", [0, 3, 47, 63])
def test_an_input_that_would_overflow_the_model_gets_the_same_400_in_any_batch(handler, context, reference, others):
    """Finding 6 of the attack: the answer to an input must not depend on what shares its batch."""
    good = [{"data": [i / 7, -i / 3]} for i in range(others)]
    answers = run_batch(handler, context, [*good, {"data": EXTREME}])
    *rest, (status, _, body) = answers
    assert status == 400
    assert body["error"].startswith('"data"[0] is -1e+308, outside the model\'s input range')
    assert [a[2] for a in rest] == [{"output": v} for v in score(reference, [g["data"] for g in good])]


@pytest.mark.parametrize("others", [3, 47, 63])
def test_the_extreme_row_inside_a_request_of_many_rows_refuses_that_request(handler, context, others):
    rows = [[i / 7, -i / 3] for i in range(others)] + [EXTREME]
    [(status, _, body)] = run_batch(handler, context, [{"data": rows}])
    assert status == 400
    assert body["error"].startswith(f'"data"[{others}][0] is -1e+308')


def test_inputs_on_the_bound_get_the_same_bytes_in_any_batch(handler, context):
    edge = [[1.0e6, -1.0e6], [-1.0e6, 1.0e6], [1.0e6, 1.0e6]]
    alone = [run_batch(handler, context, [{"data": row}])[0] for row in edge]
    assert all(status == 200 for status, _, _ in alone)
    for others in (3, 47, 63):
        crowd = [{"data": [i / 7, -i / 3]} for i in range(others)]
        crowded = run_batch(handler, context, [*crowd, *({"data": row} for row in edge)])[-len(edge) :]
        assert [a[2] for a in crowded] == [a[2] for a in alone]


def test_only_production_inputs_are_published(handler, context):
    published = []

    class Recorder:
        def publish(self, model, version, features, rows):
            published.append((model, version, features, rows))

    handler.publisher = Recorder()
    headers = [
        {"X-Twinserve-Route": "production"},
        {"x-twinserve-route": "production"},
        {"X-Twinserve-Route": "test"},
        {},
    ]
    bodies = [{"data": [0.1, 0.2]}, {"data": [[0.3, 0.4], [0.5, 0.6]]}, {"data": [0.7, 0.8]}, {"data": [0.9, 1.0]}]
    run_batch(handler, context, bodies + [{"data": [1]}], headers + [{"X-Twinserve-Route": "production"}])
    [(model, version, features, rows)] = published
    assert [r[:2] for r in rows] == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    assert (model, version, list(features)) == ("regressor", "1.3", ["x1", "x2", "prediction"])
    answers = [a[2]["output"] for a in run_batch(handler, context, [{"data": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]}])]
    assert [r[2] for r in rows] == answers[0], "the output column is the answer each row got"


def test_a_pathological_request_does_not_fail_the_rest_of_its_batch(handler, context, reference):
    deep = bytearray(('{"data": ' + "[" * 5000 + "]" * 5000 + "}").encode())
    answers = run_batch(handler, context, [{"data": GOOD}, deep])
    assert answers[0][2] == {"output": score(reference, [GOOD])[0]}
    assert answers[1][0] == 400


def test_a_model_that_gives_nan_answers_500_with_a_json_error_not_nan(handler, context):
    with torch.no_grad():
        for parameter in handler.model.parameters():
            parameter.fill_(float("nan"))
    answers = run_batch(handler, context, [{"data": GOOD}, {"data": [0.2]}, {"data": [[0.1, 0.2], [0.3, 0.4]]}])
    assert [status for status, _, _ in answers] == [500, 400, 500]
    assert answers[0][2] == {"error": "model regressor 1.3 gave a non-finite output"}
    assert answers[2][2] == answers[0][2]


def test_twinserve_drift_features_choose_the_published_columns(weights, context):
    """twinserve.drift_features: the base publishes only the watched features, in their order."""
    config = {**HANDLER_CONFIG, "twinserve": {**HANDLER_CONFIG["twinserve"], "drift_features": ["x2"]}}
    handler = TabularHandler()
    handler.initialize(make_context(weights, config))
    published = []

    class Recorder:
        def publish(self, model, version, features, rows):
            published.append((features, rows))

    handler.publisher = Recorder()
    run_batch(handler, context, [{"data": [[0.1, 0.2], [0.3, 0.4]]}], [{"X-Twinserve-Route": "production"}])
    assert published == [(["x2"], [[0.2], [0.4]])]


def test_a_body_over_twinserve_max_body_is_that_requests_413(weights, context):
    config = {**HANDLER_CONFIG, "twinserve": {**HANDLER_CONFIG["twinserve"], "max_body": 30}}
    handler = TabularHandler()
    handler.initialize(make_context(weights, config))
    big = json.dumps({"data": [[0.1, 0.2]] * 3}).encode()
    answers = run_batch(handler, context, [big, b'{"data": [0.1, 0.2]}'])
    assert answers[0][0] == 413 and f"{len(big)} bytes; at most 30" in answers[0][2]["error"]
    assert answers[1][0] == 200


def test_a_model_that_gives_nan_answers_500_json_and_its_batch_mates_are_still_judged(handler, context):
    """The base's one non-finite check sees this kind's scores (scores())."""
    with torch.no_grad():
        for parameter in handler.model.parameters():
            parameter.fill_(float("nan"))
    [(status, _, body), (bad, _, _)] = run_batch(handler, context, [{"data": GOOD}, {"nothing": 1}])
    assert (status, bad) == (500, 400)
    assert body["error"].endswith("gave a non-finite output")
