"""An image classifier: a small CNN for 8×8 grey digits (scikit-learn's bundled digits).

TorchServe instantiates the single nn.Module class of this file with no
arguments and loads the state dict written by train.py into it, so every
constructor argument needs a default that matches the trained weights.
Inputs are (N, 1, 8, 8) grey levels from 0 (paper) to 16 (ink), as in the data set.
"""

from torch import nn


class DigitsCNN(nn.Module):
    """Two 3×3 convolutions, one pooling, two dense layers: ~40k parameters."""

    def __init__(self, classes: int = 10, channels: int = 16, scale: float = 16.0):
        super().__init__()
        self.scale = scale
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, classes),
        )

    def forward(self, x):
        """Logits, one row per image."""
        return self.head(self.features(x / self.scale))
