"""Shared fixtures: a fixed seed, one thread, real MNIST, a trained run, the CLI, a browser."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
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
    from benchmarks.browser import launch_chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
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
    from mlplab.runner import run

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


def run_async(coroutine, timeout: float = 60):
    """asyncio.run on a daemon thread of its own, within `timeout` seconds: the main thread
    may already run an event loop (Playwright's sync API leaves one there for the session's
    browser), and a stuck coroutine must fail the test, not hang it."""
    box = {}

    def target():
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def draw(page, selector: str, stroke: list[tuple[int, int]]) -> None:
    """Drag the mouse along `stroke` (points in the element's pixels), as a hand draws."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
        for t in range(1, 9):
            page.mouse.move(box["x"] + x0 + (x1 - x0) * t / 8, box["y"] + y0 + (y1 - y0) * t / 8)
    page.mouse.up()
