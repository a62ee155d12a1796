"""nginx/lua/twinserve/*.lua outside Nginx: the state file's validation and the
metrics exposition, run by Lua 5.1 (the language of Nginx's LuaJIT) with a
small stand-in for Nginx's shared dictionary and request variables."""

import json
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.checkout import REPO_ROOT
from twinserve.runtime.render import LATENCY_BUCKETS, NGINX_LUA, lua_literal

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


def test_every_answer_is_exposed_per_route_model_colour_and_status_with_a_histogram():
    answers = [("production", "regressor", "blue", "200", 0.003)] * 3 + [
        ("production", "regressor", "blue", "502", 0.001),
        ("production", "digits", "blue", "200", 0.002),
        ("production", "regressor", "", "405", 0.0),
        ("other", "", "", "400", 0.2),
    ]
    observe = "\n".join(
        f"ngx.var.route, ngx.var.model, ngx.var.colour, ngx.var.status, ngx.var.request_time = "
        f"'{r}', '{m}', '{c}', '{s}', '{t}'\nmetrics.observe()"
        for r, m, c, s, t in answers
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

    regressor = {"route": "production", "model": "regressor"}
    assert samples[(f"{counter}_total", labels(**regressor, colour="blue", status="200"))] == 3
    assert samples[(f"{counter}_total", labels(**regressor, colour="blue", status="502"))] == 1
    assert samples[(f"{counter}_total", labels(route="production", model="digits", colour="blue", status="200"))] == 1
    assert samples[(f"{counter}_total", labels(**regressor, colour="", status="405"))] == 1
    assert samples[(f"{counter}_total", labels(route="other", model="", colour="", status="400"))] == 1
    hist = "twinserve_http_request_duration_seconds"
    assert samples[(f"{hist}_count", labels(**regressor, colour="blue"))] == 4
    assert samples[(f"{hist}_count", labels(route="production", model="digits", colour="blue"))] == 1
    assert samples[(f"{hist}_bucket", labels(**regressor, colour="blue", le="0.005"))] == 4
    assert samples[(f"{hist}_bucket", labels(route="other", model="", colour="", le="0.1"))] == 0
    assert samples[(f"{hist}_bucket", labels(route="other", model="", colour="", le="0.25"))] == 1
    assert samples[(f"{hist}_sum", labels(**regressor, colour="blue"))] == pytest.approx(0.01)


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


FAKE_DICT = """
local shared = { data = {} }
function shared:set(k, v) self.data[k] = v end
function shared:get(k) return self.data[k] end
ngx.shared.t = shared
"""


def switch_init(tmp_path, files: dict[str, str | None], retired: str | None = None) -> dict:
    """Run switch.init on state files; returns {model: colour or the problem}."""
    paths = {}
    for model, text in files.items():
        paths[model] = str(tmp_path / f"production.{model}")
        if text is not None:
            (tmp_path / f"production.{model}").write_text(text)
    if retired is not None:  # the single-model file of a state dir from before several models
        (tmp_path / "production").write_text(retired)
    cfg = {
        "dict": "t", "colours": ["blue", "green"], "models": list(files), "default_model": next(iter(files)),
        "production_files": paths,
        "token_file": str(tmp_path / "none"), "key_files": {},
    }  # fmt: skip
    out = lua(
        FAKE_DICT
        + f"local s = require('twinserve.switch')\ns.init({lua_literal(cfg)})\n"
        + "".join(f"print(s.production('{m}') or shared:get('problem|{m}'))\n" for m in files)
    )
    return dict(zip(files, out.splitlines(), strict=True))


def test_nginx_keeps_one_colour_per_model_and_one_bad_file_is_that_model_s_only(tmp_path):
    got = switch_init(tmp_path, {"regressor": "green\n", "digits": "purple\n", "text": None})
    assert got["regressor"] == "green"
    assert got["digits"].startswith(f"{tmp_path}/production.digits says 'purple'")
    assert got["text"].startswith(f"{tmp_path}/production.text is missing")


def test_nginx_never_reads_the_retired_single_model_file(tmp_path):
    got = switch_init(tmp_path, {"regressor": None, "digits": "blue\n"}, retired="green\n")
    assert got["regressor"].startswith(f"{tmp_path}/production.regressor is missing")
    assert got["digits"] == "blue"


def test_a_cache_entry_answers_only_the_request_it_was_made_for():
    """cache.lua keeps the request's own bytes in the entry: a hit needs the same bytes, not only the
    same digest; the answer and its version and content type come back as they were stored."""
    out = lua(
        """
local cache = require("twinserve.cache")
local entry = cache.encode("1.2", "application/json", '{"text": "a\\nb"}', '{"label": "positive"}\\n')
local v, t, a = cache.decode(entry, '{"text": "a\\nb"}')
print(v, t, a == '{"label": "positive"}\\n')
print(cache.decode(entry, '{"text": "a\\nc"}'))
print(cache.decode(entry, '{"text": "a\\nbb"}'))
print(cache.decode("garbage", "x"))
local empty = cache.encode("1.0", "image/png", "", "")
print(select("#", cache.decode(empty, "")), (cache.decode(empty, "")))
"""
    )
    assert out.splitlines() == ["1.2\tapplication/json\ttrue", "nil", "nil", "nil", "3\t1.0"]


def test_the_cache_counters_are_prometheus_text():
    out = lua(
        """
local cache = require("twinserve.cache")
local m = ngx.shared.m
m:incr("cache|hit|sentiment", 19, 0); m:incr("cache|miss|sentiment", 1, 0); m:incr("cache|bypass|digits", 2, 0)
m:incr("cache|evicted|sentiment", 3, 0); m:incr("n|production|sentiment|blue|200", 20, 0)
local c = { data = {} }
function c.free_space() return 4096 end
ngx.shared.c = c; ngx.shared.s = { incr = function() end }
cache.init({ cache_dict = "c", dict = "s", metrics_dict = "m", cache_max_entry = 10, cached_models = { "sentiment" },
             models = { "sentiment", "digits" } })
local out = {}
cache.exposition(out)
print(table.concat(out, "\\n"))
"""
    )
    families = {f.name: f for f in text_string_to_metric_families(out)}
    requests = {(s.labels["model"], s.labels["result"]): s.value for s in families["twinserve_cache_requests"].samples}
    # every counter a model can have is exported from the start (at 0 until it counts)
    assert requests == {("sentiment", "hit"): 19, ("sentiment", "miss"): 1, ("sentiment", "bypass"): 0,
                        ("digits", "bypass"): 2}  # fmt: skip
    kept = {(s.labels["model"], s.labels["reason"]): s.value for s in families["twinserve_cache_not_kept"].samples}
    assert kept == {("sentiment", "evicted"): 3, ("sentiment", "too_large"): 0, ("sentiment", "no_memory"): 0}
    assert families["twinserve_cache_free_bytes"].samples[0].value == 4096


@pytest.mark.parametrize(
    ("cache_control", "pragma", "fresh"),
    [
        (None, None, False),
        ("'no-cache'", None, True),
        ("'No-Cache'", None, True),
        ("'NO-STORE'", None, True),
        ("'max-age=0, No-Store'", None, True),
        ("{'max-age=60', ' no-cache'}", None, True),  # the field sent twice
        ("'no-cache=\"x\"'", None, True),
        ("'x-no-cache-ext, max-age=5'", None, False),  # a substring of another directive is not the directive
        ("'max-age=5'", None, False),
        (None, "'no-cache'", True),
        (None, "'No-Cache'", True),
        (None, "'x-no-cache'", False),
        ("'max-age=5'", "'no-cache'", False),  # Pragma counts only without Cache-Control (RFC 9111 5.4)
    ],
)
def test_the_cache_reads_directives_as_tokens_in_any_case(cache_control, pragma, fresh):
    out = lua(f"print(require('twinserve.cache').fresh_asked({cache_control or 'nil'}, {pragma or 'nil'}))")
    assert out.strip() == str(fresh).lower()


def test_xor_of_bytes_is_xor():
    pairs = [(a, b) for a in range(0, 256, 7) for b in range(0, 256, 11)] + [(255, 0), (0, 255), (170, 85)]
    script = "".join(f"print(require('twinserve.secret').xor8({a}, {b}))\n" for a, b in pairs)
    assert [int(x) for x in lua(script).split()] == [a ^ b for a, b in pairs]


@pytest.mark.parametrize(
    ("given", "expected", "same"),
    [
        ("Bearer abc", "Bearer abc", True),
        ("Bearer abd", "Bearer abc", False),
        ("Bearer ab", "Bearer abc", False),  # a prefix of the secret
        ("Bearer abcd", "Bearer abc", False),  # the secret as a prefix
        ("", "Bearer abc", False),
        ("bearer abc", "Bearer abc", False),
        ("Bearer abc ", "Bearer abc", False),
    ],
)
def test_the_admin_token_is_compared_byte_for_byte(given, expected, same):
    out = lua(f"print(require('twinserve.secret').equal({json.dumps(given)}, {json.dumps(expected)}))")
    assert out.strip() == str(same).lower()


def test_the_admin_token_comparison_visits_every_byte_whatever_the_guess():
    """The loop is over the expected secret: a guess wrong at its first byte costs the same
    byte visits as one wrong at its last (counted through string.byte, which it calls per byte)."""
    out = lua(
        """
local secret = require("twinserve.secret")
local calls, byte = 0, string.byte
string.byte = function(...) calls = calls + 1 return byte(...) end
local expected = "Bearer 0123456789abcdef"
for _, guess in ipairs({ "Xearer 0123456789abcdef", "Bearer 0123456789abcdeX", "B", expected }) do
    calls = 0
    secret.equal(guess, expected)
    print(calls)
end
"""
    )
    assert set(out.split()) == {str(2 * len("Bearer 0123456789abcdef"))}
