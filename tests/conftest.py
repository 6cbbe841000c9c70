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


@pytest.fixture(scope="session")
def trained_run(mnist, tmp_path_factory):
    """A run directory of preset c trained briefly on real MNIST (about 96% test accuracy)."""
    from mlplab.config import TrainConfig
    from mlplab.runs import run

    config = TrainConfig(
        preset="c",
        iterations=600,
        batch_size=128,
        lr=3e-3,
        seed=0,
        normalization="dataset",
        out=str(tmp_path_factory.mktemp("runs")),
        name="fixture",
    )
    run_dir, result = run(config, mnist)
    assert result.test.accuracy > 95.0
    return run_dir
