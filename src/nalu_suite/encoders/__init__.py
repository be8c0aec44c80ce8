"""Encoders that turn raw inputs (images) into the features an arithmetic core reads."""

from __future__ import annotations

from .cnn import MNIST_MEAN, MNIST_STD, MnistCNN

__all__ = ["MNIST_MEAN", "MNIST_STD", "MnistCNN"]
