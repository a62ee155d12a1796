"""The unit tests' one stack: config/stack.yaml with its var dir, state dir and model store under the
test's tmp_path (tests/unit/stacks.py's tmp_stack), nothing shared between tests. A test module that
needs more (a production colour, archives) overrides `stack` by asking for this one."""

import pytest

from tests.unit.stacks import tmp_stack


@pytest.fixture
def stack(tmp_path):
    return tmp_stack(tmp_path)


@pytest.fixture
def stack_file(stack, tmp_path):
    """The stack's description on disk (for the CLI's --stack)."""
    return tmp_path / "stack.yaml"
