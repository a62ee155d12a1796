"""twinserve/cli/: the registry of verbs, the one error handler, and what the verbs start."""

import re
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from kafka.errors import KafkaTimeoutError

from archiver.build import ArchiveError, ArchiveExists
from archiver.modelconfig import ModelConfigError
from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve import cli
from twinserve.errors import (
    CheckFailed,
    ConfigError,
    PreflightError,
    ServiceError,
    TwinserveError,
    UsageError,
)
from twinserve.store.state import exclusive

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


# --- the registry ---------------------------------------------------------------


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_is_a_module_with_a_help_line_a_parser_and_a_handler(verb):
    module = cli.verb_module(verb)
    assert Path(module.__file__).parent == REPO_ROOT / "twinserve" / "cli"
    assert module.__doc__ and module.__doc__.strip().splitlines()[0].endswith((".", ")"))
    assert callable(module.arguments) and callable(module.run)


@pytest.mark.parametrize(
    "argv", [[verb] for verb in cli.VERBS] + [["bench", b] for b in ("serving", "drift", "drift-broker")]
    + [["pipeline", c] for c in ("run", "start", "stage", "abort", "show")],
)  # fmt: skip
def test_every_verb_and_subcommand_prints_its_help(capsys, argv):
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: twinserve {' '.join(argv)}")


def test_every_module_of_the_package_is_a_registered_verb():
    modules = {p.stem for p in (REPO_ROOT / "twinserve" / "cli").glob("*.py")} - {"__init__"}
    assert modules == set(cli.VERBS.values())


def test_help_lists_every_verb_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^    (\S+)", out, re.M)
    assert listed == list(cli.VERBS)
    assert "exit codes: 0 done; 1 refused or failed" in out


def test_the_user_commands_of_the_issue_are_all_verbs():
    wanted = {"up", "down", "status", "deploy", "swap", "rollback", "which", "bench", "loadtest", "swapcheck",
              "pipeline", "drift-demo", "render-compose", "images", "serve", "container", "health"}  # fmt: skip
    assert wanted <= set(cli.VERBS)


@pytest.mark.parametrize(
    "argv,where,says",
    [
        (["bogus"], "twinserve", "invalid choice: 'bogus'"),
        ([], "twinserve", "required: <verb>"),
        (["deploy", "models/regressor", "1.0", "extra"], "twinserve deploy", "unrecognized arguments: extra"),
        (["swap", "digits", "extra"], "twinserve swap", "unrecognized arguments: extra"),
        (["pipeline", "stage", "nope", "--run-id", "r"], "twinserve pipeline", "invalid choice: 'nope'"),
        (["bench"], "twinserve bench", "required: <benchmark>"),
        (["serve", "grafana"], "twinserve serve", "invalid choice: 'grafana'"),
    ],
)
def test_a_command_line_that_does_not_parse_is_one_line_and_exit_2(capsys, argv, where, says):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"{where}: error: ") and says in err, err


# --- the one error handler ------------------------------------------------------


@pytest.mark.parametrize(
    "error,code,message",
    [
        (TwinserveError("it failed"), 1, "it failed"),
        (PreflightError("blue does not answer; nothing was changed"), 1, "blue does not answer; nothing was changed"),
        (ServiceError("TorchServe refused"), 1, "TorchServe refused"),
        (CheckFailed("missed: p99 300 ms > 200 ms"), 1, "missed: p99 300 ms > 200 ms"),
        (ConfigError("stack description /x not found"), 2, "stack description /x not found"),
        (UsageError("no such option"), 2, "no such option"),
        (ArchiveExists("model_store/r-1.0.mar already exists"), 1, "model_store/r-1.0.mar already exists"),
        (ArchiveError("version 'x' must be numbers"), 2, "version 'x' must be numbers"),
        (ModelConfigError("r 1.0 has no twinserve: section"), 2, "r 1.0 has no twinserve: section"),
        (OSError(98, "Address already in use"), 1, "OSError: [Errno 98] Address already in use"),
        (KafkaTimeoutError("no metadata"), 1, "KafkaTimeoutError: no metadata"),
        (requests.ConnectionError("refused"), 1, "ConnectionError: refused"),
        (psutil.NoSuchProcess(4242), 1, "NoSuchProcess: process no longer exists (pid=4242)"),
        (ServiceError("first line\n  second line\n"), 1, "first line; second line"),
    ],
)
def test_each_error_becomes_its_exit_code_and_one_line_without_a_traceback(monkeypatch, capsys, error, code, message):
    def fail(args):
        raise error

    monkeypatch.setattr(cli.verb_module("which"), "run", fail)
    assert cli.main(["which"]) == code
    out, err = capsys.readouterr()
    assert out == "" and err == f"twinserve which: error: {message}\n"


def test_an_interrupt_exits_130_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.verb_module("status"), "run", interrupted)
    assert cli.main(["status"]) == 130
    assert capsys.readouterr() == ("", "")


def test_a_bug_of_the_control_plane_keeps_its_traceback(monkeypatch):
    """Only the errors a verb can expect are one line; anything else is a bug, shown as one."""

    def bug(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli.verb_module("which"), "run", bug)
    with pytest.raises(KeyError):
        cli.main(["which"])


def test_a_verb_s_own_exit_code_passes_through(monkeypatch):
    monkeypatch.setattr(cli.verb_module("pipeline"), "run", lambda args: 3)
    assert cli.main(["pipeline", "show"]) == 3


# `python -m twinserve`; the scripts' stdlib-only doorway; the file Locust runs in its own process
ENTRY_POINTS = ("__main__.py", "doorway.py", "locustfile.py")


def test_no_library_code_exits_the_process():
    """Exits are the cli's: library code raises (loadtest once raised SystemExit, the pipeline caught it)."""
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for root in ("twinserve", "archiver", "simulator")
        for p in (REPO_ROOT / root).rglob("*.py")
        if re.search(r"SystemExit|sys\.exit\(", p.read_text()) and p.name not in ENTRY_POINTS
    ]
    assert offenders == []


def test_a_locust_run_without_a_report_raises_not_exits(monkeypatch, tmp_path):
    from twinserve.pipeline import loadtest

    class Done:
        returncode, stderr = 1, "locust: error: bad host\n"

    monkeypatch.setattr(loadtest.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(ServiceError, match="locust wrote no report: locust: error: bad host"):
        loadtest.run_locust("http://127.0.0.1:1", "/predict", 1, 1, 1, tmp_path, samples=())


# --- swapcheck takes the lock that deploy and swap take -------------------------


BODIES = {m: (b"{}", "application/json") for m in RAW["models"]}  # every model of config/stack.yaml


class FakeLoad:
    """Stands in for wrk: the lock is what is under test here, not the load (tests/integration run wrk)."""

    def __init__(self, url, connections, body=None, content_type=None):
        self.stopped = False

    def stop(self):
        self.stopped = True
        return "report"


def lock_is_held(stack) -> bool:
    try:
        with exclusive(stack, "probe"):
            return False
    except PreflightError:
        return True


def test_swapcheck_holds_the_lock_for_each_deploy_and_swap(monkeypatch, stack):
    from twinserve.tools import swapcheck

    seen = []
    monkeypatch.setattr(swapcheck, "WrkRun", FakeLoad)
    monkeypatch.setattr(swapcheck, "_colours", lambda s, models: {m: ("blue", "blue") for m in models})
    monkeypatch.setattr(swapcheck.time, "sleep", lambda s: seen.append(("pause", lock_is_held(stack))))
    deploy = lambda s, src, model: seen.append(("deploy", lock_is_held(s))) or "v2"  # noqa: E731
    monkeypatch.setattr(swapcheck.deploy, "deploy", deploy)
    monkeypatch.setattr(swapcheck.promote, "swap", lambda s, model: seen.append(("swap", lock_is_held(s))))
    result = swapcheck.swaps_under_load(stack, 2, Path("models/regressor"), pause_s=0, bodies=BODIES)
    assert (result.swaps, result.deployed, result.report) == (2, "v2", "report")
    changes = [held for what, held in seen if what != "pause"]
    assert [what for what, _ in seen if what != "pause"] == ["swap", "deploy", "swap"]
    assert all(changes), "every change runs under the lock"
    assert not any(held for what, held in seen if what == "pause"), "the lock is free between changes"


def test_swapcheck_is_refused_while_another_command_changes_the_stack(monkeypatch, stack):
    from twinserve.tools import swapcheck

    loads = []
    monkeypatch.setattr(swapcheck, "WrkRun", lambda url, c, **kw: loads.append(FakeLoad(url, c)) or loads[-1])
    monkeypatch.setattr(swapcheck, "_colours", lambda s, models: {m: ("blue", "blue") for m in models})
    monkeypatch.setattr(swapcheck.time, "sleep", lambda s: None)
    swap = lambda s, model: pytest.fail("swapped under another command's lock")  # noqa: E731
    monkeypatch.setattr(swapcheck.promote, "swap", swap)
    with exclusive(stack, "pipeline run r1"), pytest.raises(PreflightError, match="pipeline run r1"):
        swapcheck.swaps_under_load(stack, 1, None, pause_s=0, bodies=BODIES)
    assert loads[0].stopped, "the load is stopped whatever happens"


# --- the services: one start-up each, native or in a container -------------------


@pytest.fixture
def started(monkeypatch):
    """Each service's function records how it was started instead of serving."""
    from twinserve.drift import service as drift
    from twinserve.observe import alert_receiver, exporter

    calls = []
    monkeypatch.setattr(exporter, "run", lambda s, host, supervision: calls.append(("exporter", host, supervision)))
    monkeypatch.setattr(alert_receiver, "run", lambda s, host: calls.append(("alert-receiver", host)))
    monkeypatch.setattr(drift, "run", lambda s, host: calls.append(("drift-consumer", host)))
    return calls


def test_native_services_listen_on_loopback_and_containers_on_all_interfaces(stack, started):
    for service in ("exporter", "alert-receiver", "drift-consumer"):
        assert cli.main(["--stack", str(stack.path), "serve", service]) == 0
        assert cli.main(["--stack", str(stack.path), "container", service]) == 0
    assert started == [
        ("exporter", "127.0.0.1", True), ("exporter", "0.0.0.0", False),
        ("alert-receiver", "127.0.0.1"), ("alert-receiver", "0.0.0.0"),
        ("drift-consumer", "127.0.0.1"), ("drift-consumer", "0.0.0.0"),
    ]  # fmt: skip


def test_up_starts_the_control_plane_s_services_and_the_supervisor_through_the_cli(stack):
    from twinserve.runtime import monitoring
    from twinserve.runtime.supervisor import SUPERVISOR

    ours = [s for s in monitoring.services(stack) if s.argv[1:3] == ["-m", "twinserve"]]
    assert {s.name for s in ours} == {"exporter", "alert-receiver", "drift-consumer"}
    for argv in [s.argv for s in ours] + [monitoring.twinserve_argv("serve", SUPERVISOR)]:
        args = cli.parser().parse_args(argv[3:])
        assert (args.verb, args.service) == ("serve", argv[-1])
