"""benchmarks/lab.py end to end on crumbs (--smoke), so that it cannot rot between full runs.

The claims are not asserted: 60 iterations on a busy machine say nothing about them. What is
asserted is that every run finished and filled its row, and that nothing raised.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNS = [
    "`mlplab train`",
    "`mlplab lab`, page open in chromium",
    "`mlplab lab`, no browser (POST play, SSE reader)",
    "`mlplab lab`, vanished browser (unread /api/events)",
    "models A-E, `mlplab train` one after another",
    "models A-E, `mlplab lab --experiment`, page open",
]
CLAIMS = [
    "1. steps/s", "2. /healthz p99", "3a. lab RSS", "3b. vanished browser",
    "4. five runs side by side",
]  # fmt: skip


def rows(text: str) -> dict[str, list[str]]:
    """Every markdown table row, by its first cell."""
    found = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            found[cells[0]] = cells[1:]
    return found


@pytest.mark.slow
def test_lab_benchmark_smoke():
    pytest.importorskip("playwright", reason="the lab benchmark drives chromium")
    pytest.importorskip("psutil", reason="the lab benchmark samples the lab's memory")
    done = subprocess.run(
        # one thread: on a busy 2-core machine torch's default two thrash
        [sys.executable, "-m", "benchmarks.lab", "--smoke", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in out + done.stderr, done.stderr[-3000:]
    assert out.startswith("## Lab: `mlplab lab` training with the page open"), out[:500]
    assert "- FAILED: `mlplab" not in out, out  # a run failed, not a claim
    table = rows(out)
    for run in RUNS:
        assert run in table, f"no row for {run}"
        assert all(cell and cell != "—" for cell in table[run]), (run, table[run])
    for claim in CLAIMS:
        row = next((cells for name, cells in table.items() if name.startswith(claim)), None)
        assert row is not None, f"no row for claim {claim}"
        assert row[-1] in ("**met**", "**missed**"), (claim, row)
    memory = [name for name in table if name.startswith(("train (", "lab, "))]
    assert len(memory) == 4, table.keys()
