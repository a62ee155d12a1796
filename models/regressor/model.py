"""The demo model: a small MLP that maps two features to one value.

TorchServe instantiates the single nn.Module class of this file with no
arguments and loads the state dict written by train.py into it, so every
constructor argument needs a default that matches the trained weights.
"""

from torch import nn


class RegressorMLP(nn.Module):
    """Two inputs, one output, one hidden layer."""

    def __init__(self, n_features: int = 2, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)
