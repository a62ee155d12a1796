"""Locust load test for twinserve: one model's route with its own sample requests.

The host comes from the command line (--host), the route from --route, and the
requests from --samples: a JSON file of the model's twinserve.samples as the archive
metadata carries them ({"name", "content_type", "json" | "base64"}; written by
twinserve/pipeline/loadtest.py from the model's model-config.yaml). Each request
is one of them picked at random, sent with its own content type (JSON rows, PNG
bytes, ...); a small share are deliberately invalid bodies, which count as a success
only when answered 400 with a JSON {"error": ...} body.

    locust -f simulator/locust/locustfile.py --host http://127.0.0.1:8080 --route /test/predict \
        --samples var/loadtest/samples.json
"""

import base64
import json
import random

from locust import FastHttpUser, between, events, task

# Bodies no model takes: a 400 with a JSON error is the right answer whatever the model's kind.
INVALID_BODIES = [
    (b'{"data": [0.2, 0.6', "application/json"),
    (b'{"inputs": [0.2, 0.6]}', "application/json"),
    (b"{}", "application/json"),
    (b"hello", "text/plain"),
]
SAMPLES: list[tuple[str, bytes, str]] = []  # (name, body, content type), read once at start


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--route", default="/predict", help="the model's production or staging route")
    parser.add_argument("--samples", required=True, help="JSON file: the model's samples (see the docstring)")


@events.init.add_listener
def _(environment, **_kwargs):
    SAMPLES[:] = read_samples(environment.parsed_options.samples)


def read_samples(path: str) -> list[tuple[str, bytes, str]]:
    """(name, body, content type) of every sample in the file."""
    with open(path) as f:
        raw = json.load(f)
    samples = []
    for i, s in enumerate(raw):
        body = json.dumps(s["json"]).encode() if "json" in s else base64.b64decode(s["base64"])
        samples.append((s.get("name") or f"sample-{i}", body, s["content_type"]))
    if not samples:
        raise SystemExit(f"{path}: no samples")
    return samples


def answered(response) -> str | None:
    """A good sample's answer: 200 with a JSON object that is not an error, or a non-empty list of them
    (a batch of inputs in one request, as sentiment's {"texts": [...]}, answers a list in the same order)."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        body = json.loads(response.text)
    except ValueError:
        return "the answer is not JSON"
    answers = body if isinstance(body, list) else [body]
    good = answers and all(isinstance(a, dict) and "error" not in a for a in answers)
    return None if good else "the answer is not a JSON answer"


def refused(response) -> str | None:
    if response.status_code != 400:
        return f"invalid input answered HTTP {response.status_code}, expected 400"
    try:
        return None if "error" in json.loads(response.text) else "400 without an error message"
    except ValueError:
        return "400 without a JSON body"


class ModelClient(FastHttpUser):
    wait_time = between(0.0, 0.05)

    def _post(self, body: bytes, content_type: str, name: str, check):
        route = self.environment.parsed_options.route
        headers = {"Content-Type": content_type}
        with self.client.post(route, data=body, headers=headers, name=name, catch_response=True) as response:
            problem = check(response)
            if problem:
                response.failure(problem)
            else:
                response.success()

    @task(95)
    def sample(self):
        name, body, content_type = random.choice(SAMPLES)
        self._post(body, content_type, f"sample ({content_type})", answered)

    @task(5)
    def invalid(self):
        body, content_type = random.choice(INVALID_BODIES)
        self._post(body, content_type, "invalid (expects 400)", refused)
