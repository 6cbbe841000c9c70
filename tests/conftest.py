"""Shared fixtures: a fixed seed, one thread, real MNIST, a trained run, the CLI, a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from mlplab.data.dataset import Dataset, Split, load_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: on a busy 2-core machine two threads thrash (measured 10x slower),
    and the tests' models are small enough that one thread loses little on an idle one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cli():
    """Run `python -m mlplab ARGS` in a folder; returns the CompletedProcess (text)."""

    def run(*args: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(
            [sys.executable, "-m", "mlplab", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright (make test installs chromium)."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for the browser tests (make test installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def head(data: Dataset, n_train: int, n_test: int | None = None) -> Dataset:
    """The same dataset cut to its first n_train training (and n_test test) images."""
    test = data.test if n_test is None else Split(data.test.x[:n_test], data.test.y[:n_test])
    return replace(data, train=Split(data.train.x[:n_train], data.train.y[:n_train]), test=test)


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST on the CPU (make test fetches it before pytest runs)."""
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def trained_run(mnist, tmp_path_factory):
    """A run directory of preset c trained briefly on real MNIST (about 96% test accuracy)."""
    from mlplab.config import TrainConfig
    from mlplab.training.runner import run

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
