"""Locust load test for twinserve: /predict (or /test/predict) with a realistic mix.

The host comes from the command line (--host); the route from --route
(default /predict). The mix: mostly single rows, some small batches, and a
small share of deliberately invalid requests, which count as a success only
when answered 400 with a JSON {"error": ...} body.

    locust -f simulator/locust/locustfile.py --host http://127.0.0.1:8080 --route /test/predict
"""

import json
import random

from locust import FastHttpUser, between, events, task

FEATURES = 2
INVALID_BODIES = [
    b'{"data": [0.2]}',
    b'{"data": [true, 0.6]}',
    b'{"data": "0.2,0.6"}',
    b'{"inputs": [0.2, 0.6]}',
    b'{"data": [0.2, 0.6',
    b'{"data": []}',
]


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--route", default="/predict", help="/predict (production) or /test/predict (staging)")


def row() -> list[float]:
    return [round(random.random(), 4) for _ in range(FEATURES)]


class ModelClient(FastHttpUser):
    wait_time = between(0.0, 0.05)
    headers = {"Content-Type": "application/json"}

    def _post(self, body: bytes, name: str, check):
        route = self.environment.parsed_options.route
        with self.client.post(route, data=body, headers=self.headers, name=name, catch_response=True) as response:
            problem = check(response)
            if problem:
                response.failure(problem)
            else:
                response.success()

    @staticmethod
    def _output(response, kind):
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        try:
            output = json.loads(response.text)["output"]
        except (ValueError, KeyError, TypeError):
            return "no output in the answer"
        return None if isinstance(output, kind) else f"output is not a {kind.__name__}"

    @task(80)
    def one_row(self):
        self._post(json.dumps({"data": row()}).encode(), "one row", lambda r: self._output(r, float))

    @task(15)
    def several_rows(self):
        rows = [row() for _ in range(random.randint(2, 16))]
        self._post(json.dumps({"data": rows}).encode(), "several rows", lambda r: self._output(r, list))

    @task(5)
    def invalid(self):
        def check(response):
            if response.status_code != 400:
                return f"invalid input answered HTTP {response.status_code}, expected 400"
            try:
                return None if "error" in json.loads(response.text) else "400 without an error message"
            except ValueError:
                return "400 without a JSON body"

        self._post(random.choice(INVALID_BODIES), "invalid (expects 400)", check)
