"""twinserve/store/archives.py: the next version number of a model."""

import copy

import pytest
import yaml

from tests.checkout import DEFAULT_STACK
from twinserve.settings import parse_stack
from twinserve.store.archives import next_version


@pytest.fixture
def store_stack(tmp_path):
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_STACK.read_text()))
    raw["model_store"] = str(tmp_path / "store")
    (tmp_path / "store").mkdir()
    return parse_stack(raw, tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("archives", "expected"),
    [
        ([], "1.0"),
        (["regressor-1.0.mar"], "1.1"),
        (["regressor-1.0.mar", "regressor-1.1.mar"], "1.2"),
        (["regressor-1.9.mar", "regressor-1.10.mar"], "1.11"),  # numbers, not text
        (["regressor-1.4.mar", "regressor-2.0.mar"], "2.1"),
        (["regressor-3.mar"], "3.1"),
        (["regressor-1.2.7.mar"], "1.3"),
        (["regressor-1.0.mar", "regressor-1.5.json", "other-7.0.mar", "regressor-x.mar"], "1.1"),
        (["regressor_big-9.0.mar"], "1.0"),
    ],
)
def test_next_version(store_stack, archives, expected):
    for name in archives:
        (store_stack.model_store / name).write_text("")
    assert next_version(store_stack, "regressor") == expected
