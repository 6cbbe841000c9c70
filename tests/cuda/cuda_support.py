"""What the CUDA tests share: the device they run on, when they are skipped, and the CLI.

Without a CUDA device every test here is collected and skipped, as in CI. With
MLPLAB_CUDA_TESTS_ON_CPU=1 (what `python -m benchmarks.gpu_check --device cpu --smoke` sets)
they run on the CPU instead, their comparisons with the CPU then trivially close, so that
their code cannot rot between lendings of a GPU; the tests whose claim is about CUDA itself
(no host sync, bf16 on the device) stay skipped there.
"""

from __future__ import annotations

import os

import pytest
import torch

from mlplab_process import Mlplab

HAS_CUDA = torch.cuda.is_available()
ON_CPU = os.environ.get("MLPLAB_CUDA_TESTS_ON_CPU") == "1"
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
REASON = "needs a CUDA device (MLPLAB_CUDA_TESTS_ON_CPU=1 runs it on the CPU)"

needs_device = pytest.mark.skipif(not (HAS_CUDA or ON_CPU), reason=REASON)
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
TIMEOUT = 180  # seconds for any one mlplab process
CLI = Mlplab(TIMEOUT, poll=0.0005)  # `python -m mlplab ARGS`, one CPU thread: the GPU works
mlplab, finish, wait_for = CLI.start, CLI.finish, CLI.wait_for
