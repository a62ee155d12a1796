"""The unit tests' one stack: config/stack.yaml with its var dir, state dir and model store under the
test's tmp_path (tests/unit/stacks.py's tmp_stack), nothing shared between tests. A module that needs
another stack defines its own `stack`: with a colour and archives (tests/unit/fakes.py's make_stack),
or with every port shifted (test_runtime_render.py)."""

import pytest

from tests.unit.stacks import tmp_stack


@pytest.fixture
def stack(tmp_path):
    return tmp_stack(tmp_path)


@pytest.fixture
def stack_file(stack, tmp_path):
    """The stack's description on disk (for the CLI's --stack)."""
    return tmp_path / "stack.yaml"
