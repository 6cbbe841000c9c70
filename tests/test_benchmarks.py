"""The benchmark's smoke mode end to end, so that `make bench` cannot rot between full runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "Targets",
    "Where the start-up goes",
    "Techniques, side by side",
    "1. Throughput at equal accuracy",
    "2a. mlplab recipe search (one run each)",
    "2b. Time to 97% and 98% from process start",
    "2c. Time to 99% from process start",
    "3a. float32 matmul peak (torch.mm)",
    "3b. Hardware efficiency: wide MLP",
    "4. Crash safety: what checkpointing costs",
    "5. Data parallelism: 1 process against 2 ranks",
    "Profiles (torch.profiler, operators by self CPU time)",
    "6. scikit-learn: mlplab.MLPClassifier against MLPClassifier",
    "7. Sweeps: Optuna's bookkeeping per trial",
    "8. Soak: mlplab serve under a mixed load",
    "9. The lab: training with the page open",
    "10. Tracking: TensorBoard and MLflow at once",
]
TARGETS = [
    "Throughput",
    "Time to 98%",
    "Time to 99%",
    "Against MLPClassifier",
    "Hardware",
    "Checkpoint overhead",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[str, str]:
    """(report, stderr) of one smoke run into a temporary file; BENCHMARKS.md untouched."""
    pytest.importorskip("sklearn", reason="the benchmark needs the [bench] extra")
    pytest.importorskip("psutil", reason="the benchmark needs the [bench] extra")
    out = tmp_path_factory.mktemp("bench") / "smoke.md"
    before = _read(ROOT / "BENCHMARKS.md")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _read(ROOT / "BENCHMARKS.md") == before, "the smoke run rewrote BENCHMARKS.md"
    return out.read_text(), done.stderr


@pytest.fixture(scope="module")
def report(smoke) -> str:
    return smoke[0]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_no_case_failed(smoke):
    failed = [line for line in smoke[1].splitlines() if line.lstrip().startswith("!")]
    assert not failed, "\n".join(failed)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def table_rows(body: str) -> list[list[str]]:
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def test_smoke_writes_every_section(report):
    assert report.startswith("# BENCHMARKS (smoke run")
    assert list(sections(report)) == SECTIONS


SCRIPT_SECTIONS = SECTIONS[-5:]  # scripts of their own, each with its own tests


def test_every_table_row_is_filled(report):
    for title, body in sections(report).items():
        if title.startswith("Profiles"):
            continue
        if title in SCRIPT_SECTIONS:
            assert body.strip().startswith("Not in the smoke run; `python -m benchmarks."), title
            continue
        rows = table_rows(body)
        assert rows, f"{title}: no table rows"
        for row in rows:
            assert all(cell and cell != "—" for cell in row), f"{title}: empty cell in {row}"


def test_every_target_has_a_verdict(report):
    rows = table_rows(sections(report)["Targets"])
    names = [row[0] for row in rows]
    for target in TARGETS:
        assert any(name.startswith(target) for name in names), f"no row for {target}"
    for row in rows:
        assert row[3] in ("**met**", "**missed**"), row


def test_profiles_are_torch_profiler_tables(report):
    body = sections(report)["Profiles (torch.profiler, operators by self CPU time)"]
    assert body.count("Self CPU time total") == 3
    assert "aten::addmm" in body
