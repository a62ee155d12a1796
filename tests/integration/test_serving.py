"""The serving core against real servers: answers, bad inputs, batching, security."""

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import yaml

from archiver import read_metadata
from twinserve.runtime import processes, torchserve
from twinserve.store.state import read_deployments, read_production

pytestmark = pytest.mark.integration

BAD_INPUTS = {
    "malformed JSON": (b'{"data": [0.2, 0.6', "application/json", "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00", "application/octet-stream", "UTF-8"),
    "wrong content type (form)": (
        b"data=0.2,0.6",
        "application/x-www-form-urlencoded",
        "Content-Type: application/json",
    ),
    "body is a list": (b"[0.2, 0.6]", "application/json", "expected an object"),
    "missing key": (b'{"inputs": [0.2, 0.6]}', "application/json", 'missing key "data"'),
    "data is a string": (b'{"data": "0.2,0.6"}', "application/json", "expected a list"),
    "too few features": (b'{"data": [0.2]}', "application/json", "expected 2"),
    "too many features": (b'{"data": [0.2, 0.6, 0.1]}', "application/json", "expected 2"),
    "wrong count in a row": (b'{"data": [[0.2, 0.6], [0.1]]}', "application/json", '"data"[1] has 1 values'),
    "non-numeric": (b'{"data": ["a", 0.6]}', "application/json", "expected a number"),
    "null": (b'{"data": [null, 0.6]}', "application/json", "expected a number"),
    "boolean": (b'{"data": [true, 0.6]}', "application/json", "expected a number"),
    "NaN": (b'{"data": [NaN, 0.6]}', "application/json", "finite"),
    "Infinity": (b'{"data": [0.2, Infinity]}', "application/json", "finite"),
    "overflow to infinity": (b'{"data": [1e999, 0.6]}', "application/json", "finite"),
    "beyond the input bound": (b'{"data": [[-1e308, 1e308]]}', "application/json", "outside the model's input range"),
    "empty list": (b'{"data": []}', "application/json", "empty"),
    "empty body": (b"", "application/json", "empty"),
    "too many rows": (json.dumps({"data": [[0.1, 0.2]] * 65}).encode(), "application/json", "at most 64"),
}


def post(url, body, content_type="application/json"):
    return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=10)


@pytest.fixture
def production(stack):
    """(colour, version) of production now: these tests hold whichever serves."""
    colour = read_production(stack)
    return colour, read_deployments(stack)[colour]["regressor"]


def golden_of(stack, version):
    return read_metadata(stack.model_store / f"regressor-{version}.mar")["golden_set"]


def test_predict_answers_one_row_with_a_float(stack, production):
    colour, version = production
    response = post(f"{stack.nginx.url}/predict", b'{"data": [0.2, 0.6]}')
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Served-By"] == colour
    assert response.headers["X-Model-Version"] == version
    output = response.json()["output"]
    assert isinstance(output, float)
    assert output == pytest.approx(golden_of(stack, version)[0]["output"], abs=1e-6)


def test_predict_answers_several_rows_with_a_list(stack, production):
    golden = golden_of(stack, production[1])
    response = post(f"{stack.nginx.url}/predict", json.dumps({"data": [g["data"] for g in golden]}).encode())
    assert response.status_code == 200
    assert response.json()["output"] == pytest.approx([g["output"] for g in golden], abs=1e-6)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_400_with_json_error(stack, case):
    body, content_type, fragment = BAD_INPUTS[case]
    response = post(f"{stack.nginx.url}/predict", body, content_type)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["error"]


def _worker_pids(stack, colour):
    description = torchserve.Management(stack, colour).describe("regressor")
    return sorted(w["pid"] for d in description for w in d["workers"])


def test_bad_inputs_in_a_batch_do_not_disturb_good_ones(stack, production):
    """Bad and good requests at once share TorchServe batches; every good one is right."""
    colour, version = production
    pids_before = _worker_pids(stack, colour)
    rows = golden_of(stack, version)
    good = [(json.dumps({"data": g["data"]}).encode(), "application/json", g["output"]) for g in rows] * 4
    bad = [(body, ctype, None) for body, ctype, _ in BAD_INPUTS.values()] * 4
    mixed = [item for pair in zip(good, bad, strict=False) for item in pair] + good[len(bad) :] + bad[len(good) :]

    def send(item):
        body, ctype, expected = item
        return expected, post(f"{stack.nginx.url}/predict", body, ctype)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(send, mixed))
    for expected, response in results:
        if expected is None:
            assert response.status_code == 400, response.text
            assert "error" in response.json()
        else:
            assert response.status_code == 200, response.text
            assert response.json()["output"] == pytest.approx(expected, abs=1e-6)
    assert _worker_pids(stack, colour) == pids_before, "a bad input restarted a worker"


def test_one_answer_per_input_whatever_shares_its_batch(stack):
    """Finding 6 of the attack: [-1e308, 1e308] alone got 500, in a batch 200 with -8.81.

    The extreme row, and rows on the input bound, are sent alone, then 60 times each among
    good requests from 48 threads (so inside TorchServe batches of many sizes), and as one
    row of requests with 4, 48 and 64 rows: the same status and the same bytes every time.
    """
    extreme, edges = [-1e308, 1e308], [[1.0e6, -1.0e6], [-1.0e6, 1.0e6]]

    def send(row):
        response = post(f"{stack.nginx.url}/predict", json.dumps({"data": row}).encode())
        return tuple(row), response.status_code, response.text

    alone = {tuple(row): send(row)[1:] for row in (extreme, *edges)}
    assert alone[tuple(extreme)][0] == 400 and "outside the model's input range" in alone[tuple(extreme)][1]
    assert all(alone[tuple(row)][0] == 200 for row in edges)
    load = [[i / 97, -i / 89] for i in range(240)] + [extreme, *edges] * 60
    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(send, load))
    for row, status, text in answers:
        if row in alone:
            assert (status, text) == alone[row]
        else:
            assert status == 200, text
    for size in (4, 48, 64):
        rows = [[i / 7, 0.5] for i in range(size - 1)]
        response = post(f"{stack.nginx.url}/predict", json.dumps({"data": [*rows, extreme]}).encode())
        assert response.status_code == 400
        assert response.json()["error"].startswith(f'"data"[{size - 1}][0] is -1e+308')


def test_torchserve_batches_as_the_model_config_says(stack, production):
    config = yaml.safe_load((stack.models["regressor"].dir / "model-config.yaml").read_text())
    description = torchserve.Management(stack, production[0]).describe("regressor")[0]
    assert description["batchSize"] == config["batchSize"] > 1
    assert description["maxBatchDelay"] == config["maxBatchDelay"]


def test_body_over_the_limit_gets_413_json(stack):
    response = post(f"{stack.nginx.url}/predict", b'{"data": [' + b"0.1, " * 20000 + b"0.2]}")
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


@pytest.mark.parametrize("path", ["/models", "/models/regressor", "/metrics", "/predictions/regressor", "/ping", "/"])
def test_management_and_metrics_are_not_reachable_through_nginx(stack, path):
    for method in ("GET", "POST"):
        response = requests.request(method, f"{stack.nginx.url}{path}", timeout=5)
        assert response.status_code in (404, 405)
        assert "error" in response.json()


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def test_torchserve_listens_on_loopback_only(stack):
    for colour in stack.colours:
        root = psutil.Process(processes.running_pid(stack, torchserve.process_name(colour)))
        listening = [
            conn.laddr
            for proc in [root, *root.children(recursive=True)]
            for conn in proc.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        ]
        assert {addr.port for addr in listening} >= {stack.colours[colour].management_port}
        assert all(_is_loopback(addr.ip) for addr in listening), listening


def test_models_register_only_from_the_local_store(stack):
    client = torchserve.Management(stack, "green")  # the management API accepts only store file names
    key = torchserve.authorization(stack, "green", "management")  # with the key: the URL check itself
    for url in ("https://example.com/regressor.mar", "file:///etc/passwd", "../../../etc/regressor-9.mar"):
        params = {"url": url, "model_name": "evil"}
        response = requests.post(f"{client.url}/models", params=params, headers=key, timeout=10)
        assert response.status_code in (400, 403, 404), response.text
    assert client.describe("evil") == []


def test_healthz(stack, production):
    response = requests.get(f"{stack.nginx.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == production[0]


def _refused(response) -> bool:
    """TorchServe 0.12 answers a missing or wrong key with 400 and this message (InvalidKeyException)."""
    return response.status_code == 400 and "Token Authorization failed" in response.json().get("message", "")


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_torchserve_apis_need_their_keys(stack, colour):
    """TorchServe's token authorization: no key, a wrong key or the other API's key is refused."""
    management, inference = stack.management_url(colour), stack.inference_url(colour)
    keys = {kind: torchserve.authorization(stack, colour, kind) for kind in ("management", "inference")}
    scale = {"min_worker": 0, "synchronous": "true"}  # what a local user did to staging in the attack
    for headers in ({}, {"Authorization": "Bearer wrong"}, keys["inference"]):
        assert _refused(requests.put(f"{management}/models/regressor", params=scale, headers=headers, timeout=10))
    for headers in ({}, keys["management"]):
        assert _refused(requests.get(f"{inference}/ping", headers=headers, timeout=10))
        assert _refused(requests.post(f"{inference}/predictions/regressor", json={"data": [0.2, 0.6]},
                                      headers=headers, timeout=10))  # fmt: skip
    assert requests.get(f"{inference}/ping", headers=keys["inference"], timeout=10).status_code == 200
    assert requests.get(f"{management}/models", headers=keys["management"], timeout=10).status_code == 200
    assert stack.key_file(colour).stat().st_mode & 0o777 == 0o600
    assert torchserve.Management.has_ready_worker(torchserve.Management(stack, colour).describe("regressor")[0])
