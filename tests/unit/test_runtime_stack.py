"""twinserve/runtime/stack.py: the stack's parts and their ports; a port held by a foreign process (a real socket)."""

import os
import socket

import pytest

from twinserve.errors import ServiceError
from twinserve.runtime import stack as stack_mod


def test_up_names_a_foreign_process_holding_a_port_and_starts_nothing(stack):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    part = stack_mod.Part("torchserve-blue", (port,), True, lambda: pytest.fail("started"), lambda: None)
    try:
        with pytest.raises(ServiceError) as err:
            stack_mod.check_ports(stack, [part])
    finally:
        holder.close()
    message = str(err.value)
    assert f"port {port} (torchserve-blue) is held by pid {os.getpid()}" in message
    assert "not this stack's" in message and "nothing was started" in message
    assert "\n" not in message


def test_a_socket_no_process_owns_gets_time_to_close_then_counts_as_taken(stack, monkeypatch):
    part = stack_mod.Part("exporter", (30714,), False, lambda: pytest.fail("started"), lambda: None)
    answers = iter([{30714: None}, {30714: None}, {}])  # closing, closing, gone
    monkeypatch.setattr(stack_mod.processes, "listeners", lambda ports: next(answers))
    stack_mod.check_ports(stack, [part], settle_s=5.0)  # no error: the port came free
    monkeypatch.setattr(stack_mod.processes, "listeners", lambda ports: {30714: None})
    with pytest.raises(ServiceError, match=r"port 30714 \(exporter\) is held by a process this user cannot see"):
        stack_mod.check_ports(stack, [part], settle_s=0.5)


def test_every_part_knows_its_ports_and_they_are_the_stack_ports(stack):
    parts = stack_mod.parts(stack)
    assert [p.name for p in parts if p.serving] == ["torchserve-blue", "torchserve-green", "nginx"]
    assert sorted(port for p in parts for port in p.ports) == sorted(stack.ports)
