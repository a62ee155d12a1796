"""nginx/lua/twinserve/*.lua outside Nginx: the state file's validation and the
metrics exposition, run by Lua 5.1 (the language of Nginx's LuaJIT) with a
small stand-in for Nginx's shared dictionary and request variables."""

import json
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.checkout import REPO_ROOT
from twinserve.runtime.render import LATENCY_BUCKETS, NGINX_LUA

pytestmark = pytest.mark.skipif(shutil.which("lua5.1") is None, reason="lua5.1 not installed (lua-check brings it)")

FAKE_NGX = """
local dict = { data = {} }
function dict:incr(k, v, init) self.data[k] = (self.data[k] or init) + v end
function dict:get(k) return self.data[k] end
function dict:get_keys() local ks = {} for k in pairs(self.data) do ks[#ks + 1] = k end return ks end
ngx = { shared = { m = dict }, var = {} }
"""


def lua(script: str) -> str:
    prelude = f"package.path = {json.dumps(str(REPO_ROOT / NGINX_LUA) + '/?.lua;')} .. package.path\n"
    result = subprocess.run(["lua5.1", "-"], input=prelude + FAKE_NGX + script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("content", "colour", "problem"),
    [
        ("blue\n", "blue", None),
        ("  green \n\n", "green", None),
        ("grn\n", None, "/s/production says 'grn', not a known colour; write one of blue, green into it"),
        ("\xff\xfe", None, "/s/production holds bytes that are not a colour name"),
        ("", None, "/s/production says '', not a known colour"),
        (None, None, "/s/production is missing; write one of blue, green into it, then run `make up`"),
    ],
)
def test_nginx_reads_the_state_file_as_strictly_as_the_control_plane(content, colour, problem):
    text = "nil" if content is None else "'" + "".join(f"\\{ord(c)}" for c in content) + "'"
    out = lua(
        f"local c, p = require('twinserve.switch').parse_state({text}, '/s/production', {{'blue', 'green'}})\n"
        "print(c or 'nil') print(p or 'nil')"
    )
    got_colour, got_problem = out.splitlines()
    assert got_colour == (colour or "nil")
    if problem is None:
        assert got_problem == "nil"
    else:
        assert got_problem.startswith(problem)


def test_every_answer_is_exposed_per_route_colour_and_status_with_a_histogram():
    answers = [("production", "blue", "200", 0.003)] * 3 + [
        ("production", "blue", "502", 0.001),
        ("production", "", "405", 0.0),
        ("other", "", "400", 0.2),
    ]
    observe = "\n".join(
        f"ngx.var.route, ngx.var.colour, ngx.var.status, ngx.var.request_time = '{r}', '{c}', '{s}', '{t}'\n"
        "metrics.observe()"
        for r, c, s, t in answers
    )
    buckets = ", ".join(str(b) for b in LATENCY_BUCKETS)
    out = lua(
        "local metrics = require('twinserve.metrics')\n"
        f"metrics.init({{ latency_buckets = {{ {buckets} }}, metrics_dict = 'm' }})\n"
        f"{observe}\nio.write(metrics.exposition())"
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }
    counter = "twinserve_http_requests"

    def labels(**kw):
        return tuple(sorted(kw.items()))

    assert samples[(f"{counter}_total", labels(route="production", colour="blue", status="200"))] == 3
    assert samples[(f"{counter}_total", labels(route="production", colour="blue", status="502"))] == 1
    assert samples[(f"{counter}_total", labels(route="production", colour="", status="405"))] == 1
    assert samples[(f"{counter}_total", labels(route="other", colour="", status="400"))] == 1
    hist = "twinserve_http_request_duration_seconds"
    assert samples[(f"{hist}_count", labels(route="production", colour="blue"))] == 4
    assert samples[(f"{hist}_bucket", labels(route="production", colour="blue", le="0.005"))] == 4
    assert samples[(f"{hist}_bucket", labels(route="other", colour="", le="0.1"))] == 0
    assert samples[(f"{hist}_bucket", labels(route="other", colour="", le="0.25"))] == 1
    assert samples[(f"{hist}_sum", labels(route="production", colour="blue"))] == pytest.approx(0.01)


GSON_KEY_FILE = """{
  "management": {
    "key": "B-E5KSRM",
    "expiration time": "2036-02-16T21:12:24.801167Z"
  },
  "inference": {
    "key": "gNRuA7dS",
    "expiration time": "2036-02-16T21:12:24.801148Z"
  },
  "API": {
    "key": "yv9uQajP"
  }
}"""


@pytest.mark.parametrize(
    ("text", "key"),
    [(GSON_KEY_FILE, "gNRuA7dS"), ('{"inference": {"key": "a b"}}', "nil"), ("", "nil"), (None, "nil")],
)
def test_nginx_reads_the_inference_key_from_torchserve_key_file(text, key):
    arg = "nil" if text is None else json.dumps(text)
    assert lua(f"print(require('twinserve.switch').parse_inference_key({arg}) or 'nil')").strip() == key
