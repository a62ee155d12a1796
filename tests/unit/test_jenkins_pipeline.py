"""jenkins/pipeline.groovy against the local runner: same stages, in order, each calling the same command.

There is no Jenkins here; what can be checked without one is that every
command the Jenkinsfile runs is one the pipeline CLI accepts.
"""

import re
import subprocess

import pytest

from tests.checkout import REPO_ROOT
from twinserve.cli import parser
from twinserve.pipeline.stages import SKIPPABLE, STAGES

GROOVY = (REPO_ROOT / "jenkins" / "pipeline.groovy").read_text()
PIPELINE = ".venv/bin/python -m twinserve pipeline"
PARAMS = {"MODEL_DIR": "models/regressor", "VERSION": "1.4", "SEED": "7", "RUN_ID": "jenkins-12-1700000000000"}


def stage_blocks() -> dict[str, str]:
    """{stage name: its body}, in file order."""
    names = list(re.finditer(r"stage\('([a-z]+)'\)", GROOVY))
    ends = [m.start() for m in names[1:]] + [GROOVY.rindex("post {")]
    return {m.group(1): GROOVY[m.end() : end] for m, end in zip(names, ends, strict=True)}


def shell_commands(body: str) -> list[str]:
    return re.findall(r"sh '([^']*)'", body)


def expand(command: str, skip_tests: str = "true") -> list[str]:
    """What bash makes of the command with the job's parameters in its environment."""
    script = f"for a in {command.replace('$PIPELINE', '')}; do printf '%s\\0' \"$a\"; done"
    env = {**PARAMS, "SKIP_TESTS": skip_tests, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    return [a for a in out.split("\0") if a]


def parse(argv: list[str]):
    """`twinserve pipeline <argv>` as the command line parses it."""
    return parser().parse_args(["pipeline", *argv])


def test_the_stages_are_the_local_runners_in_order():
    assert list(stage_blocks()) == list(STAGES)


def test_every_stage_runs_its_own_pipeline_stage_command():
    for name, body in stage_blocks().items():
        commands = [c for c in shell_commands(body) if "stage " in c]
        assert len(commands) == 1, (name, commands)
        argv = expand(commands[0])
        assert argv[:2] == ["stage", name]
        args = parse(argv)
        assert (args.command, args.name, args.run_id) == ("stage", name, PARAMS["RUN_ID"])


def test_the_commands_use_the_projects_python_and_no_interpolated_parameters():
    assert re.search(r"PIPELINE = '" + re.escape(PIPELINE) + "'", GROOVY)
    for command in shell_commands(GROOVY):
        assert "${params." not in command and "${env." not in command  # the shell expands; Groovy does not


@pytest.mark.parametrize("skip", ["true", "false"])
def test_the_first_stage_starts_the_run_and_skips_tests_only_when_asked(skip):
    start, test = [c for c in shell_commands(stage_blocks()["test"]) if "$PIPELINE" in c]
    args = parse(expand(start))
    assert (args.command, str(args.model_dir), args.version, args.run_id) == (
        "start", PARAMS["MODEL_DIR"], PARAMS["VERSION"], PARAMS["RUN_ID"]
    )  # fmt: skip
    assert parse(expand(test, skip)).skip is (skip == "true")
    assert "test" in SKIPPABLE


def test_approval_is_an_input_step_then_the_approve_stage():
    body = stage_blocks()["approve"]
    assert "input message:" in body
    assert body.index("input message:") < body.index("stage approve")
    assert parse(expand(shell_commands(body)[0])).approve is True


def test_an_aborted_build_rolls_back_through_the_abort_command():
    post = GROOVY[GROOVY.rindex("post {") :]
    aborted = post[post.index("aborted {") : post.index("always {")]
    [command] = shell_commands(aborted)
    args = parse(expand(command))
    assert (args.command, args.run_id) == ("abort", PARAMS["RUN_ID"])
