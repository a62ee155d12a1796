"""What the settings and render tests share: config/stack.yaml as loaded, a copy of it, its ports,
and a copy with every port shifted."""

import copy
from pathlib import Path

import yaml

from tests.checkout import DEFAULT_STACK
from twinserve.settings import Stack, load_stack

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


def all_ports(stack) -> list[int]:
    return [
        stack.nginx.port,
        stack.nginx.admin_port,
        *stack.monitoring.ports,
        stack.drift.broker_port,
        stack.drift.consumer_metrics_port,
        *(p for c in stack.colours.values() for p in c.ports),
    ]


def raw_copy() -> dict:
    return copy.deepcopy(RAW)


def shifted(raw: dict, by: int) -> dict:
    """The stack with every port moved, as the integration tests do with free ports."""
    raw = copy.deepcopy(raw)
    for section in ("nginx", "monitoring", "drift"):
        for key, value in raw[section].items():
            if key.endswith("_port") or key == "port":
                raw[section][key] = value + by
    for colour in raw["colours"].values():
        for key in colour:
            colour[key] += by
    return raw


def tmp_stack(root: Path) -> Stack:
    """config/stack.yaml with its var dir, state dir and model store under `root`, written to root/stack.yaml."""
    raw = raw_copy()
    raw["var_dir"], raw["state_dir"], raw["model_store"] = str(root / "var"), str(root / "state"), str(root / "store")
    (root / "store").mkdir(parents=True, exist_ok=True)
    path = root / "stack.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_stack(path)
