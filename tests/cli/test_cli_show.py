"""`mlplab plot`, `report`, `data show` and `reproduce`, end to end through subprocesses."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mlplab.experiments.reproduce import EXPERIMENTS


def test_plot_and_report(trained_run, tmp_path, cli):
    out = cli("plot", str(trained_run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = out.stdout.split()
    assert len(written) == 6 and all(p.endswith(".png") for p in written)
    out = cli("report", str(trained_run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (trained_run / "report.html").stat().st_size > 50_000


def test_train_writes_curves_and_confusion(tmp_path, cli):
    out = cli(
        "train",
        "--preset",
        "logistic",
        "--iterations",
        "30",
        "--out",
        "runs",
        "--quiet",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["confusion.png", "curves.png"]


def test_data_show(tmp_path, cli):
    out = cli("data", "show", "mnist", "--count", "16", "-o", "grid.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "grid.png").size == (800, 860)


def test_not_a_run_directory(tmp_path, cli):
    out = cli("plot", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 1
    assert (
        out.stderr.strip() == f"mlplab: error: {tmp_path}: not a run directory (no metrics.jsonl)"
    )


def test_reproduce_quick_prints_and_saves_the_table(tmp_path, cli):
    out = cli("reproduce", "--quick", "--seeds", "0,1", "--out", "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(EXPERIMENTS)  # header, rule, one row per experiment
    for exp, row in zip(EXPERIMENTS, lines[2:], strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == exp.title and cells[2] == "2"
        mean, std = (float(v) for v in cells[3].split(" ± "))
        assert 10 < mean <= 100 and std >= 0
        assert cells[4] == ("—" if exp.published is None else f"{exp.published:.0f}")
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = (run_dir / "reproduce.md").read_text()
    assert "quick budget" in saved and lines[2] in saved
    results = json.loads((run_dir / "reproduce.json").read_text())
    assert [r["key"] for r in results] == [e.key for e in EXPERIMENTS]
    assert all(len(r["accuracies"]) == 2 for r in results)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "nope"], "--only: unknown experiment 'nope'; see --list"),
        (["--seeds", "a,b"], "--seeds must be comma-separated integers, got 'a,b'"),
    ],
)
def test_reproduce_bad_arguments(args, message, tmp_path, cli):
    out = cli("reproduce", "--quick", *args, cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.strip() == f"mlplab: error: {message}"
