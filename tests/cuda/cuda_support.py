"""What the CUDA tests share: the device they run on, when they are skipped, and the CLI.

Without a CUDA device every test here is collected and skipped, as in CI. With
MLPLAB_CUDA_TESTS_ON_CPU=1 (what `python -m benchmarks.gpu_check --device cpu --smoke` sets)
they run on the CPU instead, their comparisons with the CPU then trivially close, so that
their code cannot rot between lendings of a GPU; the tests whose claim is about CUDA itself
(no host sync, bf16 on the device) stay skipped there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
ON_CPU = os.environ.get("MLPLAB_CUDA_TESTS_ON_CPU") == "1"
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
REASON = "needs a CUDA device (MLPLAB_CUDA_TESTS_ON_CPU=1 runs it on the CPU)"

needs_device = pytest.mark.skipif(not (HAS_CUDA or ON_CPU), reason=REASON)
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
TIMEOUT = 180  # seconds for any one mlplab process


def mlplab(*args: str, cwd: Path) -> subprocess.Popen:
    """`python -m mlplab ARGS` in `cwd`, started (one CPU thread: the GPU does the work)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mlplab", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Wait for a process (killed past TIMEOUT); its exit code, stdout and stderr."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def wait_for(condition, proc: subprocess.Popen) -> bool:
    """Poll `condition` until it holds (True) or the process ends first (False)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.0005)
    proc.kill()
    raise TimeoutError("the condition never held")


def run_dir(out: Path) -> Path | None:
    """The one run directory under `out`, if there is one yet."""
    found = [p for p in out.glob("*") if p.is_dir()] if out.is_dir() else []
    return found[0] if found else None
