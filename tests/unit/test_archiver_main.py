"""archiver/__main__.py: `python -m archiver build`; what it refuses is one line on stderr and exit 2.

Building a real archive is archiver/build.py's (test_archiver_build.py); this checks the command's own part.
"""

import pytest

from archiver.__main__ import main


@pytest.mark.parametrize(
    ("model_dir", "version", "says"),
    [
        ("nope", "1.0", "model directory"),
        ("models/regressor", "1.x", "version '1.x' must be numbers separated by dots"),
    ],
)
def test_what_cannot_be_built_is_one_line_and_exit_2(tmp_path, capsys, model_dir, version, says):
    source = tmp_path / model_dir if model_dir == "nope" else model_dir
    assert main(["build", str(source), "--version", version, "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archiver: error: ") and says in err and err.count("\n") == 1
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
