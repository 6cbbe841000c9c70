"""benchmarks/tracking.py end to end on crumbs (one round of 40 iterations), so that it cannot rot
between full runs. The 3% claim is not asserted: one short round on a busy machine says
nothing about it. What is asserted is that both modes ran and filled their rows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tracking_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.tracking", "--rounds", "1", "--iterations", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| logging |")
    assert re.match(r"\| none \| \d+\.\d\d \| ", rows[1]), rows[1]
    both = rows[2]
    assert both.startswith("| TensorBoard + MLflow (local SQLite) |")
    assert re.search(r"\| [+-]\d+\.\d% \| (met|MISSED) \|$", both), both
    assert re.search(r"Round by round [^:]*: [+-]\d+\.\d%; median [+-]\d+\.\d%\.", done.stdout)
    assert re.search(r"Inside the trackers' own hooks: \d+\.\d\d% ", done.stdout)
