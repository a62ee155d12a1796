"""Free ports for the stacks the tests start."""

import random
import socket

# Listening ports are drawn below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
# here). A port the kernel handed out by bind(0) can come back as the local end of one of this process's
# own outgoing connections (requests, Kafka clients) before the stack binds it; ports in this band are
# never handed out that way. (The "held by pytest" that CI saw twice was another thing: a closing socket
# with no owner, which processes.listeners took for the caller; see stack.check_ports.)
PORT_BAND = range(20000, 32000)


def free_ports(n: int) -> list[int]:
    """`n` distinct ports that nothing listens on, outside the ephemeral range."""
    chosen: list[int] = []
    for port in random.sample(PORT_BAND, len(PORT_BAND)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == n:
            return chosen
    raise RuntimeError(f"fewer than {n} free ports in {PORT_BAND}")
