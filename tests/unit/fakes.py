"""Small fakes of TorchServe's management API, Nginx's switch and the smoke test, for release's unit tests.

They exist for the branches the real servers cannot be made to reach on demand
(a switch refused after the state file was written, a smoke test that fails
after registration): each fake fails exactly where a test tells it to and keeps
what it was asked, so a test can check what was undone. The real paths are the
integration tests' (tests/integration/test_bluegreen.py).
"""

import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

from tests.unit.stacks import tmp_stack
from twinserve.errors import PreflightError, ServiceError
from twinserve.release.clients import Clients
from twinserve.settings import Stack
from twinserve.store.state import write_production


def make_stack(root: Path, production: str = "blue", versions: tuple[str, ...] = ()) -> Stack:
    """A stack under `root` (tests/unit/stacks.py), `production` in its state file and stand-in archives
    of regressor's `versions` in its model store."""
    stack = tmp_stack(root)
    write_production(stack, production)
    for version in versions:
        write_archive(stack, "regressor", version)
    return stack


def write_archive(stack: Stack, model: str, version: str, golden: list[dict] | None = None) -> Path:
    """A stand-in .mar in the model store with the metadata the archiver writes beside it."""
    path = stack.model_store / f"{model}-{version}.mar"
    path.write_bytes(f"{model} {version}".encode())
    meta = {
        "model_name": model,
        "version": version,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "torchserve": {"minWorkers": 1},
        "golden_set": [{"data": [0.2, 0.6], "output": 0.5}] if golden is None else golden,
    }
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


class FakeTorchServe:
    """Every colour's management API: what each serves, what it was asked, where it fails.

    `fail[(colour, method)]` is raised by that call (then forgotten, unless `sticky`);
    `down` colours raise ServiceError on every call, as an unreachable API does.
    """

    def __init__(self, serving: dict[str, dict[str, str]]):
        self.versions = {c: {m: [v] for m, v in models.items()} for c, models in serving.items()}
        self.defaults = {c: dict(models) for c, models in serving.items()}
        self.workers: dict[tuple[str, str, str], list[str]] = {}  # (colour, model, version): worker states
        self.fail: dict[tuple[str, str], BaseException] = {}
        self.sticky = False
        self.down: set[str] = set()
        self.registers_anyway = False  # register raises, but TorchServe registered the version (a timeout)
        self.calls: list[tuple] = []

    def __call__(self, stack: Stack, colour: str, timeout: float = 120.0) -> "FakeManagement":
        return FakeManagement(self, colour)

    def check(self, colour: str, method: str, *args) -> None:
        self.calls.append((colour, method, *args))
        if colour in self.down:
            raise ServiceError(f"{colour} management API unreachable: ConnectionError")
        if (colour, method) in self.fail:
            error = self.fail[(colour, method)] if self.sticky else self.fail.pop((colour, method))
            raise error

    def changes(self, colour: str) -> list[tuple]:
        """The calls that changed the colour, in order."""
        return [c[1:] for c in self.calls if c[0] == colour and c[1] in ("register", "set_default", "unregister")]


class FakeManagement:
    def __init__(self, server: FakeTorchServe, colour: str):
        self.server, self.colour = server, colour

    def describe(self, model: str) -> list[dict]:
        self.server.check(self.colour, "describe", model)
        return [
            {
                "modelVersion": v,
                "workers": [{"status": s} for s in self.server.workers.get((self.colour, model, v), ["READY"])],
            }
            for v in self.server.versions[self.colour].get(model, [])
        ]

    def default_version(self, model: str) -> str | None:
        self.server.check(self.colour, "default_version", model)
        return self.server.defaults[self.colour].get(model)

    def register(self, model: str, archive_name: str, workers: int) -> None:
        version = archive_name.removeprefix(f"{model}-").removesuffix(".mar")
        try:
            self.server.check(self.colour, "register", model, version)
        except ServiceError:
            if self.server.registers_anyway:
                self.server.versions[self.colour].setdefault(model, []).append(version)
            raise
        self.server.versions[self.colour].setdefault(model, []).append(version)

    def set_default(self, model: str, version: str) -> None:
        self.server.check(self.colour, "set_default", model, version)
        if version not in self.server.versions[self.colour].get(model, []):
            raise ServiceError(f"{self.colour}: PUT /models/{model}/{version}/set-default failed: HTTP 404")
        self.server.defaults[self.colour][model] = version

    def unregister(self, model: str, version: str) -> None:
        self.server.check(self.colour, "unregister", model, version)
        self.server.versions[self.colour][model].remove(version)


class FakeSwitch:
    """Nginx's production switch, one entry per model: `production` is the default model's, `others`
    the other models'; refuses the colours in `refuses`. `calls` are the colours set, `models` for which."""

    def __init__(self, production: str | None, others: dict[str, str] | None = None):
        self.production = production
        self.others = dict(others or {})
        self.refuses: set[str] = set()
        self.calls: list[str] = []
        self.models: list[str] = []

    def get_production(self, stack: Stack, model: str | None = None) -> str | None:
        model = stack.model(model)
        return self.production if model == stack.default else self.others.get(model)

    def set_production(self, stack: Stack, colour: str, model: str | None = None) -> None:
        model = stack.model(model)
        self.calls.append(colour)
        self.models.append(model)
        if colour in self.refuses:
            raise ServiceError(f"nginx refused the switch of {model} to {colour}: HTTP 500 lua error")
        if model == stack.default:
            self.production = colour
        else:
            self.others[model] = colour


class FakeSmoke:
    """The golden-set smoke test; fails on the paths in `fails_on` ("/test/predict/regressor", "/predict/regressor")."""

    def __init__(self):
        self.fails_on: set[str] = set()
        self.interrupt_on: set[str] = set()
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, url: str, golden: list[dict], colour: str, version: str, rule=None) -> int:
        self.calls.append((urlparse(url).path, colour, version))
        if urlparse(url).path in self.interrupt_on:
            raise KeyboardInterrupt
        if urlparse(url).path in self.fails_on:
            raise PreflightError(f"smoke test of {colour} {version} via {url} failed: output 9.0 differs")
        return len(golden) + 1


def fake_clients(server: FakeTorchServe, switch: FakeSwitch, smoke: FakeSmoke, ping_status: int = 200) -> Clients:
    return Clients(management=server, switch=switch, smoke=smoke, ping=lambda stack, colour: ping_status)
