"""Several models per colour against the real stack: both colours serve regressor, digits and sentiment,
each model with its own routes, body limit and production colour; swapping one never moves
another, and ten swaps of digits under load on both models fail no request.

The tests run in file order and share one stack (tests/integration/conftest.py).
"""

import io
import os
import subprocess

import pytest
import requests
from PIL import Image

from tests.checkout import REPO_ROOT
from tests.integration.helpers import poll, scrape, total
from twinserve.errors import ConfigError
from twinserve.runtime import nginx
from twinserve.store.state import production_file, read_production, read_productions
from twinserve.tools.swapcheck import swaps_under_load

pytestmark = pytest.mark.integration
ROW = {"data": [0.2, 0.6]}
SAMPLES = {k: (REPO_ROOT / "models" / "digits" / "samples" / f"digit-{k}.png").read_bytes() for k in range(10)}
PNG = {"Content-Type": "image/png"}


def post(stack, path, body=None, headers=None, **kw):
    return requests.post(f"{stack.nginx.url}{path}", data=body, headers=headers, timeout=10, **kw)


def cli(stack, script, *args):
    env = {**os.environ, "TWINSERVE_STACK": str(stack.path)}
    return subprocess.run([str(REPO_ROOT / "scripts" / script), *args], env=env, capture_output=True, text=True)


def colours(stack) -> dict[str, tuple[str, str | None]]:
    """{model: (the state's production colour, Nginx's)}."""
    return {m: (read_production(stack, m), nginx.get_production(stack, m)) for m in stack.models}


def test_both_colours_serve_both_models_each_from_its_own_route(stack):
    assert colours(stack) == {"regressor": ("blue", "blue"), "digits": ("blue", "blue"), "sentiment": ("blue", "blue")}
    for label, png in SAMPLES.items():
        answer = post(stack, "/predict/digits", png, PNG)
        assert answer.status_code == 200, answer.text
        assert answer.json()["label"] == label
        assert (answer.headers["X-Served-By"], answer.headers["X-Model-Version"]) == ("blue", "1.0")
    staging = post(stack, "/test/predict/digits", SAMPLES[7], PNG)
    assert staging.status_code == 200 and staging.json()["label"] == 7
    assert staging.headers["X-Served-By"] == "green"


def jpeg(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF orientation
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def test_a_phone_photo_tagged_sideways_is_read_as_a_person_sees_it(stack):
    """Orientation 6 ("rotate 90° clockwise to display"): the stored pixels are the 7 turned a quarter
    counter-clockwise, as a phone held upright stores them; every viewer shows the upright 7."""
    sideways = Image.open(io.BytesIO(SAMPLES[7])).transpose(Image.Transpose.ROTATE_90)
    tagged = post(stack, "/predict/digits", jpeg(sideways, 6), {"Content-Type": "image/jpeg"})
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["label"] == 7
    raw = post(stack, "/predict/digits", jpeg(sideways, 1), {"Content-Type": "image/jpeg"})
    assert raw.status_code == 200 and raw.json()["label"] != 7  # the same pixels untagged: not a 7


def test_predict_is_the_default_model_and_agrees_with_its_own_route(stack):
    default = post(stack, "/predict", json=ROW)
    named = post(stack, "/predict/regressor", json=ROW)
    assert default.status_code == named.status_code == 200
    assert default.content == named.content and "output" in default.json()
    assert default.headers["X-Served-By"] == named.headers["X-Served-By"] == "blue"
    test_default, test_named = post(stack, "/test/predict", json=ROW), post(stack, "/test/predict/regressor", json=ROW)
    assert test_default.content == test_named.content and test_named.headers["X-Served-By"] == "green"


@pytest.mark.parametrize("path", ["/predict/cats", "/test/predict/cats", "/predict/digits/", "/predict/Digits"])
def test_an_unknown_model_is_a_404_json_listing_the_models(stack, path):
    answer = post(stack, path, json=ROW)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["models"] == ["regressor", "digits", "sentiment"] and "regressor, digits, sentiment" in body["error"]


def test_each_model_has_its_own_body_limit(stack):
    """digits takes 256 KiB (an image), regressor 64 KiB; above its own limit a model's route is a 413 JSON."""
    between = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100_000  # over regressor's limit, under digits'
    too_big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 262_144  # over digits' limit
    to_regressor = post(stack, "/predict/regressor", between, {"Content-Type": "application/json"})
    assert to_regressor.status_code == 413 and "at most 65536 bytes for regressor" in to_regressor.json()["error"]
    to_digits = post(stack, "/predict/digits", between, PNG)
    assert to_digits.status_code == 400, to_digits.text  # reached the model: a broken PNG, its own 400 JSON
    assert to_digits.headers["X-Model-Version"] == "1.0"
    for path in ("/predict/digits", "/test/predict/digits"):
        answer = post(stack, path, too_big, PNG)
        assert answer.status_code == 413, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        assert "at most 262144 bytes for digits" in answer.json()["error"]


def test_every_answer_is_counted_under_its_model(stack):
    post(stack, "/predict/digits", SAMPLES[3], PNG)

    def counted():
        samples = scrape(f"{stack.nginx.admin_url}/metrics")
        digits = total(samples, "twinserve_http_requests_total", route="production", model="digits", status="200")
        regressor = total(samples, "twinserve_http_requests_total", route="production", model="regressor", status="200")
        return digits >= 11 and regressor >= 2 and (digits, regressor)

    assert poll(counted, timeout=5, every=0.2)


def test_swapping_digits_leaves_the_regressor_where_it_was(stack):
    result = cli(stack, "swap_deploy.sh", "digits")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "digits: production is GREEN (was BLUE)"
    expected = {"regressor": ("blue", "blue"), "digits": ("green", "green"), "sentiment": ("blue", "blue")}
    assert colours(stack) == expected
    assert post(stack, "/predict/digits", SAMPLES[1], PNG).headers["X-Served-By"] == "green"
    assert post(stack, "/predict/regressor", json=ROW).headers["X-Served-By"] == "blue"
    assert post(stack, "/predict", json=ROW).headers["X-Served-By"] == "blue"
    assert production_file(stack, "digits").read_text() == "green\n"
    assert production_file(stack, "regressor").read_text() == "blue\n"


def test_which_names_each_model_and_all_of_them(stack):
    assert cli(stack, "which_is_production.sh").stdout.strip() == "production is BLUE"  # the default model
    assert cli(stack, "which_is_production.sh", "digits").stdout.strip() == "production is GREEN"
    every = cli(stack, "which_is_production.sh", "--all")
    assert every.returncode == 0, every.stderr
    assert every.stdout.splitlines() == [
        "regressor: production is BLUE",
        "digits: production is GREEN",
        "sentiment: production is BLUE",
    ]
    unknown = cli(stack, "which_is_production.sh", "cats")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "unknown model 'cats'; this stack serves regressor, digits, sentiment" in unknown.stderr


def test_the_exporter_reports_each_model_s_production_colour(stack):
    exporter = f"http://127.0.0.1:{stack.monitoring.exporter_port}/metrics"
    samples = scrape(exporter)
    assert total(samples, "twinserve_production", model="digits", colour="green") == 1
    assert total(samples, "twinserve_production", model="digits", colour="blue") == 0
    assert total(samples, "twinserve_production", model="regressor", colour="blue") == 1
    assert total(samples, "twinserve_state_valid", model="digits") == 1


def test_rolling_back_digits_leaves_the_regressor_too(stack):
    result = cli(stack, "rollback.sh", "digits")
    assert result.returncode == 0, result.stderr
    assert colours(stack) == {"regressor": ("blue", "blue"), "digits": ("blue", "blue"), "sentiment": ("blue", "blue")}


def test_a_bad_state_file_of_one_model_503s_that_model_only(spare_nginx):
    production_file(spare_nginx, "digits").write_text("purple\n")
    nginx.start(spare_nginx)
    nginx.wait_ready(spare_nginx)
    for path in ("/predict/digits", "/test/predict/digits"):
        answer = post(spare_nginx, path, SAMPLES[2], PNG)
        assert answer.status_code == 503
        assert answer.json()["error"].startswith("no production colour for digits: ")
        assert "says 'purple'" in answer.json()["error"]
    for path in ("/predict", "/predict/regressor", "/test/predict/regressor"):
        assert post(spare_nginx, path, json=ROW).status_code == 200
    assert requests.get(f"{spare_nginx.nginx.url}/healthz", timeout=5).status_code == 200  # the default model's
    found = read_productions(spare_nginx)
    assert found["regressor"] == "blue" and isinstance(found["digits"], ConfigError)
    nginx.set_production(spare_nginx, "blue", "digits")  # what `make up` does once the file is fixed
    assert post(spare_nginx, "/predict/digits", SAMPLES[2], PNG).json()["label"] == 2


def assert_swaps_failed_no_request(stack, result, before: dict, min_requests: int) -> None:
    """swaps_under_load's result: every model loaded (at least min_requests each) with no socket error
    and no non-2xx, no other model's colour moved, and each model where it started (an even number of swaps)."""
    assert set(result.reports) == set(stack.models)
    for model, report in result.reports.items():
        assert report.requests > min_requests, (model, report)
        assert report.socket_errors == 0, (model, report)
        assert report.non_2xx == 0, (model, report)
    assert result.others_moved == ()
    assert not result.failed
    assert colours(stack) == before


def test_ten_swaps_of_digits_under_load_on_both_models_fail_no_request(stack):
    """The CI version of `make swapcheck MODEL=digits`: wrk keep-alive on every model's production route
    (digits: a PNG) while digits flips ten times; the other models' colours never move."""
    before = colours(stack)
    bodies = {"digits": (SAMPLES[5], "image/png"), "regressor": (b'{"data": [0.2, 0.6]}', "application/json")}
    result = swaps_under_load(stack, swaps=10, connections=50, model="digits", bodies=bodies)
    assert_swaps_failed_no_request(stack, result, before, min_requests=500)
