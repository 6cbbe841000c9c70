"""The GPU check cannot rot between lendings of a GPU: its smoke mode runs every step on the
CPU, in a subprocess, and the Markdown file it writes has a real result for each; a step
forced to fail and one forced past its budget are recorded while the later steps still run;
a kill keeps the steps done; bad input is told in one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks.gpu_check import STEPS

ROOT = Path(__file__).resolve().parent.parent


def gpu_check(*args: str, out: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out)}
    command = [sys.executable, "-m", "benchmarks.gpu_check", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def sections(text: str) -> dict[str, str]:
    """Each step's section of gpu-check.md, by its step key."""
    found = {}
    for i, key in enumerate(STEPS):
        start = text.find(f"\n## {i}. {STEPS[key].title}\n")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            found[key] = text[start : end if end >= 0 else len(text)]
    return found


@pytest.mark.slow
def test_the_smoke_run_gives_every_step_a_real_result(tmp_path):
    ceiling = sum(step.smoke_budget for step in STEPS.values()) + 60
    done = gpu_check("--device", "cpu", "--smoke", out=tmp_path, timeout=ceiling)
    text = (tmp_path / "gpu-check.md").read_text()
    assert done.returncode == 0, text
    assert f"done: {len(STEPS)} of {len(STEPS)} steps passed" in text
    found = sections(text)
    assert list(found) == list(STEPS)
    for section in found.values():
        assert section.split("\n")[3].startswith("**passed**: "), section
    assert re.search(r"\| mlplab \| `\d+\.\d+", found["setup"])
    assert re.search(r"\| torch \| \d+\.\d+", found["facts"])
    assert re.search(r"\*\*passed\*\*: \d+ passed, \d+ skipped in", found["tests"])
    speed = found["speed"]
    assert re.search(r"\| 98% \| .* \| 0/1 \| n/a \| n/a \| n/a \| \d+\.\d+ \|", speed)
    assert re.search(r"\| mlplab Trainer, engine fast \(eager\) \| [\d,]+ \| \d", speed)
    assert re.search(r"Matmul peak, 512×512 @ 512×512: float32 [\d.e-]+ TFLOP/s", speed)
    assert re.search(r"\| tutorial loop: .* \| [\d,]+ \| 1\.0× \|", speed)
    assert re.search(r"\| test_accuracy \| \d+\.\d+ \|", found["recipe"])
    assert re.search(r"\*\*passed\*\*: tutorials/\S+\.py: \d+ cells in [\d.]+ s, on cpu", text)
    assert (tmp_path / "gpu-check.log").stat().st_size > 0


def test_a_failed_step_and_a_timed_out_one_are_recorded_and_the_next_still_runs(tmp_path):
    force = ["--force", "setup=fail", "--force", "facts=timeout"]
    args = ["--device", "cpu", "--smoke", "--steps", "setup,facts,lesson", *force]
    done = gpu_check(*args, out=tmp_path, timeout=120)
    text = (tmp_path / "gpu-check.md").read_text()
    assert done.returncode == 1, text
    assert "done: 1 of 3 steps passed" in text
    found = sections(text)
    assert list(found) == ["setup", "facts", "lesson"]
    assert "**failed**: forced failure (--force)" in found["setup"]
    assert "**timed out**: timed out after 2 s (its budget)" in found["facts"]
    assert "\n**passed**: tutorials/" in found["lesson"]
    assert "| 2. The CUDA tests" not in text  # a step not asked for is not listed


def test_a_kill_keeps_the_steps_done(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    args = ["--device", "cpu", "--smoke", "--steps", "setup,facts,lesson"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.gpu_check", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    path, deadline = tmp_path / "gpu-check.md", time.monotonic() + 60
    while "running: 2 of 3 steps done" not in (path.read_text() if path.is_file() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # in the lesson: its kernel goes with the check
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    text = path.read_text()
    assert "running: 2 of 3 steps done" in text
    assert list(sections(text)) == ["setup", "facts"]
    assert not list(tmp_path.glob(".*.part"))  # no half-written file beside it


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
        (["--steps", "setup,nope"], "--steps: unknown 'nope'; the steps are setup, facts, "),
        (["--force", "setup=explode"], "--force: 'setup=explode' is not STEP=fail or STEP=timeout"),
    ],
)
def test_bad_input_is_told_in_one_line(args, message, tmp_path):
    done = gpu_check(*args, out=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"python -m benchmarks.gpu_check: error: {message}")
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "gpu-check.md").exists()
