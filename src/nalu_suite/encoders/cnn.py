"""The CNN of the PyTorch MNIST example, the image encoder of the NALU paper's MNIST tasks (§4.2).

Trask et al. (2018) point to ``pytorch/examples/mnist/main.py`` for the digit encoder. That file has
changed over the years; two versions matter here:

* ``"2018"``: the example as it was when the paper was written (``pytorch/examples`` at 75e7c75,
  Jul 2018, unchanged from May to Dec 2018)::

      conv(1 -> 10, 5x5) - maxpool 2 - ReLU - conv(10 -> 20, 5x5) - dropout2d - maxpool 2 - ReLU
      - FC 320 -> 50 - ReLU - dropout - FC 50 -> out_features

* ``"2019"``: the example from Dec 2018 (d8dd8ca) to Nov 2019, which Madsen & Johansen (2020) use
  ("The same CNN is used", stable-nalu ``regression_mnist.py``)::

      conv(1 -> 20, 5x5) - ReLU - maxpool 2 - conv(20 -> 50, 5x5) - ReLU - maxpool 2
      - FC 800 -> 500 - ReLU - FC 500 -> out_features

  It costs about 5x the multiply-adds of the 2018 version.

Input: raw ``uint8`` (or float in [0, 255]) images ``(..., 28, 28)``, normalised here with the example's
mean 0.1307 and std 0.3081, so callers can keep the image table in its compact ``uint8`` form.
Output: ``(..., out_features)`` unnormalised scores (logits); what they mean is the caller's choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: pixel mean and standard deviation of the MNIST training images (scaled to [0, 1])
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
VARIANTS = ("2018", "2019")


class MnistCNN(nn.Module):
    """CNN of the PyTorch MNIST example: ``(..., 28, 28)`` images -> ``(..., out_features)``.

    ``variant`` picks the 2018 or 2019 version (module docstring); ``dropout`` is the 2018 version's
    dropout probability (0.5 in the example; the 2019 version has none).
    """

    def __init__(self, *, out_features: int = 10, variant: str = "2018", dropout: float = 0.5) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MnistCNN variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MnistCNN dropout={dropout!r} must be in [0, 1)")
        self.out_features = out_features
        self.variant = variant
        self.dropout = dropout if variant == "2018" else 0.0
        channels, hidden = ((10, 20), 50) if variant == "2018" else ((20, 50), 500)
        self.conv1 = nn.Conv2d(1, channels[0], kernel_size=5)
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size=5)
        self.fc1 = nn.Linear(4 * 4 * channels[1], hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    @staticmethod
    def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``uint8`` pixels -> the example's normalised float input."""
        return (images.to(dtype) / 255.0 - MNIST_MEAN) / MNIST_STD

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (28, 28):
            raise ValueError(f"MnistCNN expects images of shape (..., 28, 28), got {tuple(images.shape)}")
        lead = images.shape[:-2]
        x = self.normalize(images.reshape(-1, 1, 28, 28), self.fc2.weight.dtype)
        # max-pooling and ReLU commute, so both versions share this order
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = self.conv2(x)
        if self.dropout:
            x = F.dropout2d(x, self.dropout, self.training)
        x = F.relu(F.max_pool2d(x, 2))
        x = F.relu(self.fc1(x.flatten(1)))
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        return self.fc2(x).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, dropout={self.dropout}"
