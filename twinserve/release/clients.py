"""What deploy and promote talk to, in one argument they take (default: the real ones).

Deploy and promote change running servers, and their riskiest code runs only
when a server fails at the wrong moment: the undo of a deploy whose smoke test
failed, the restore of production after Nginx refused a flip. The real
TorchServe and Nginx cannot be made to fail on demand there, so the unit tests
pass small fakes through `Clients` (tests/unit/fakes.py); the integration tests
run the same code with `LIVE`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twinserve.release.smoke import run_smoke
from twinserve.runtime import nginx
from twinserve.runtime.torchserve import Management, ping
from twinserve.settings import Stack


class Switch(Protocol):
    """Nginx's production switch (twinserve.runtime.nginx)."""

    def get_production(self, stack: Stack, model: str | None = None) -> str | None: ...

    def set_production(self, stack: Stack, colour: str, model: str | None = None) -> None: ...


@dataclass(frozen=True)
class Clients:
    """Each field is called exactly as the real one it stands for."""

    management: Callable[[Stack, str], Management] = Management  # a colour's TorchServe management API
    switch: Switch = nginx  # the production switch
    smoke: Callable[..., int] = run_smoke  # the golden-set smoke test: (url, golden, colour, version[, rule])
    ping: Callable[[Stack, str], int] = ping  # HTTP status of a colour's /ping


LIVE = Clients()
