"""twinserve/runtime/logrotate.py: the rendered logrotate config bounds every log, and logrotate accepts it."""

import shutil
import subprocess

import pytest

from twinserve.runtime import logrotate
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.supervisor import SUPERVISOR


def test_logrotate_config_bounds_every_log_of_the_stack(stack):
    names = [p.name for p in stack_mod.parts(stack)] + [SUPERVISOR]
    text = logrotate.render(stack, names)
    (block,) = [b for b in text.split("}") if "{" in b]
    files, settings = block.split("{")
    files = files.splitlines()[-1].split()  # after the comment line
    assert f"size {stack.supervisor.log_max_mb}M" in settings
    assert f"rotate {stack.supervisor.log_keep}" in settings
    assert "compress" in settings and "copytruncate" in settings
    for name in names:
        if name.startswith("torchserve-"):
            assert str(stack.colour_dir(name.split("-")[1]) / "logs" / "stdout.log") in files
        elif name != "nginx":
            assert str(stack.var_dir / "logs" / f"{name}.log") in files
    for nginx_log in ("access_*.log", "error.log", "nginx-stdout.log"):
        assert str(stack.var_dir / "logs" / nginx_log) in files
    assert len(files) == len(set(files)), "logrotate refuses a log named twice"


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="no logrotate (make install has it)")
def test_logrotate_accepts_the_rendered_config(stack):
    path = logrotate.write_config(stack, ["broker"])
    (stack.var_dir / "logs").mkdir(parents=True)
    (stack.var_dir / "logs" / "broker.log").write_bytes(b"x" * 10)
    done = subprocess.run(["logrotate", "--debug", "--state", str(tmp_state(stack)), str(path)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def tmp_state(stack):
    return stack.var_dir / "logrotate" / "status-test"
