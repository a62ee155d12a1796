"""The FastAPI peers' model: the archive's model.py and weights, loaded as the TorchServe handler loads them."""

import importlib.util
from pathlib import Path

import torch
from torch import nn


def load_model(model_dir: Path) -> nn.Module:
    """The one nn.Module class of model_dir/model.py with weights.pt, in float64 as the handlers score."""
    spec = importlib.util.spec_from_file_location("peer_model", model_dir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (cls,) = [
        v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module) and v is not nn.Module
    ]
    model = cls()
    model.load_state_dict(torch.load(model_dir / "weights.pt", map_location="cpu"))
    return model.double().eval()
