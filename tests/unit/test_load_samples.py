"""The model's samples in the load generators: wrk's Lua script (bench) and the locustfile (load tests)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archiver import modelconfig
from archiver.modelconfig import Payload
from twinserve.tools.wrk import lua_string, samples_script

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS = REPO_ROOT / "models"
PNG = (MODELS / "digits" / "samples" / "digit-7.png").read_bytes()

FAKE_WRK = """
wrk = {headers = {Host = "127.0.0.1:8080", ["X-Extra"] = "yes"}}
function wrk.format(method, path, headers, body)
  local hex = body:gsub(".", function(c) return string.format("%02x", c:byte()) end)
  return method .. " " .. tostring(path) .. " " .. headers["Content-Type"] .. " " .. headers.Host .. " "
    .. headers["X-Extra"] .. " " .. hex
end
"""


@pytest.mark.skipif(shutil.which("lua5.1") is None, reason="lua5.1 not installed (lua-check brings it)")
def test_the_wrk_script_sends_every_sample_byte_for_byte_with_its_content_type():
    samples = [(PNG, "image/png"), (b'{"data": [0.2, "\\\\"]}', "application/json"), (bytes(range(256)), "x/y")]
    driver = "init({})\nlocal seen = {}\nfor i = 1, 400 do seen[request()] = true end\n"
    driver += "for r in pairs(seen) do print(r) end\n"
    script = FAKE_WRK + samples_script(samples) + driver
    out = subprocess.run(["lua5.1", "-"], input=script, capture_output=True, text=True, check=True).stdout
    expected = {f"POST nil {kind} 127.0.0.1:8080 yes {body.hex()}" for body, kind in samples}
    assert set(out.splitlines()) == expected  # all of them, picked at random, none altered


def test_lua_strings_escape_what_is_not_printable():
    assert lua_string(b'a"b\\c\x00\x891') == '"a\\034b\\092c\\000\\1371"'


# Locust patches the standard library with gevent when imported: its file is imported in a process of its own.
LOCUST_DRIVER = """
import json, random, sys
sys.path.insert(0, sys.argv[2])
from simulator.locust import locustfile

samples = locustfile.read_samples(sys.argv[1])
locustfile.SAMPLES[:] = samples
sent = []

class User:
    def _post(self, body, content_type, name, check):
        sent.append([body.hex(), content_type])

random.seed(3)
for _ in range(300):
    locustfile.ModelClient.sample(User())
print(json.dumps({"read": [[n, b.hex(), t] for n, b, t in samples], "sent": sent}))
"""


def locust_run(samples, tmp_path) -> dict:
    """What the locustfile reads from the samples file loadtest writes, and what 300 of its requests send."""
    path = tmp_path / "samples.json"
    path.write_text(json.dumps([s.to_dict() for s in samples]))
    argv = [sys.executable, "-c", LOCUST_DRIVER, str(path), str(REPO_ROOT)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tmp_path).stdout)


def test_the_locustfile_reads_the_samples_loadtest_writes(tmp_path):
    samples = modelconfig.load(MODELS / "digits").samples
    read = locust_run(samples, tmp_path)["read"]
    assert read == [[s.name, s.body.hex(), s.content_type] for s in samples]


def test_locust_sends_every_sample_not_one_repeated(tmp_path):
    samples = modelconfig.load(MODELS / "regressor").samples + (Payload("png", "image/png", PNG),)
    sent = locust_run(samples, tmp_path)["sent"]
    assert {tuple(s) for s in sent} == {(s.body.hex(), s.content_type) for s in samples}
