"""Shared fixtures: a fixed seed for every test, and real MNIST loaded once per session."""

from __future__ import annotations

import pytest
import torch

from mlplab.data import load_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST on the CPU (make test fetches it before pytest runs)."""
    return load_dataset("mnist")
