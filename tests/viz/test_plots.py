"""Every picture is written, is a real PNG of the expected pixel size, and is not blank."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

from mlplab.data.registry import get_info
from mlplab.errors import MlplabError
from mlplab.viz import plots
from mlplab.viz.report import PICTURES, plot_run, write_report


def check_png(path, name: str):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        w, h = plots.SIZES[name]
        assert img.size == (round(w * plots.DPI), round(h * plots.DPI))
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 5  # something was drawn


def test_view_classify_draws_with_fashion_class_names(tmp_path):
    classes = get_info("fashion-mnist").classes
    probs = torch.softmax(torch.arange(10.0), 0)
    image = (torch.rand(28, 28) * 255).to(torch.uint8)
    path = plots.view_classify(image, probs, classes, tmp_path / "vc.png")
    check_png(path, "view_classify")


def test_each_standalone_picture(tmp_path, mnist):
    x, y = mnist.test.x[:200], mnist.test.y[:200]
    classes = [str(d) for d in range(10)]
    check_png(plots.sample_grid(x, y, classes, tmp_path / "s.png"), "samples")
    confusion = np.bincount(y.numpy() * 10 + np.roll(y.numpy(), 1), minlength=100)
    check_png(
        plots.confusion_heatmap(confusion.reshape(10, 10), classes, tmp_path / "c.png"), "confusion"
    )
    check_png(plots.first_layer_weights(torch.randn(100, 784), tmp_path / "w.png"), "weights")
    probs = torch.softmax(torch.randn(200, 10) * 3, 1)
    check_png(plots.confident_mistakes(x, y, probs, classes, tmp_path / "m.png"), "mistakes")
    history = [
        {
            "kind": "eval",
            "iteration": i * 100,
            "epoch": 1,
            "train_loss": 1 / i,
            "test_loss": 1.2 / i,
            "test_accuracy": 90 + i,
        }
        for i in range(1, 6)
    ]
    history.append(
        {"kind": "epoch", "epoch": 1, "iteration": 500, "train_loss": 0.3, "train_accuracy": 93.0}
    )
    check_png(plots.training_curves(history, tmp_path / "t.png"), "curves")


def test_plot_run_writes_every_picture(trained_run, mnist):
    written = plot_run(trained_run, mnist)
    assert set(written) == set(PICTURES)
    for name, path in written.items():
        assert path.parent == trained_run / "plots"
        check_png(path, name)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in ("img", "meta", "br", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()


def test_report_is_valid_self_contained_html(trained_run, mnist):
    path = write_report(trained_run, mnist)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    parser = _Collector()
    parser.feed(text)
    assert parser.stack == []
    assert len(parser.images) == len(PICTURES)
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=\"https?://", text)  # nothing to fetch: works offline
    assert "784-100-10:relu" in text and "Per-class test accuracy" in text


def test_report_renders_in_headless_chromium(trained_run, mnist, tmp_path, browser):
    report = write_report(trained_run, mnist)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(report.as_uri())
    loaded = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
    )
    assert loaded == [True] * len(PICTURES)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 900  # the full page is taller than one screen
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text and pictures, not blank


@pytest.mark.parametrize("bad", [[], [{"kind": "epoch"}]])
def test_curves_need_evaluations(bad, tmp_path):
    from mlplab.errors import MlplabError

    with pytest.raises(MlplabError, match="no evaluation records"):
        plots.training_curves(bad, tmp_path / "x.png")


# Draws what `mlplab train` draws at the end of every run, in a fresh interpreter, and
# reports which matplotlib modules that loaded.
_END_OF_RUN = """
import sys
from mlplab.data.dataset import load_dataset
from mlplab.viz.report import plot_run
plot_run(sys.argv[1], load_dataset("mnist"), only=("curves", "confusion"))
print("matplotlib.backends.backend_agg" in sys.modules, "matplotlib.pyplot" in sys.modules)
"""


def test_end_of_run_pictures_do_not_import_pyplot(trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("plots"))
    done = subprocess.run(
        [sys.executable, "-c", _END_OF_RUN, str(run_dir)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    agg_loaded, pyplot_loaded = done.stdout.split()
    assert agg_loaded == "True"  # the pictures really were drawn with matplotlib
    assert pyplot_loaded == "False"
    plots_dir = run_dir / "plots"
    check_png(plots_dir / "curves.png", "curves")
    check_png(plots_dir / "confusion.png", "confusion")
    assert not list(plots_dir.glob(".*.part"))  # written atomically: no temp files left


def test_missing_matplotlib_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    message = r"^plots need matplotlib: pip install 'mlplab\[plots\]'$"
    with pytest.raises(MlplabError, match=message):
        plots.confusion_heatmap(np.eye(10, dtype=int), list("0123456789"), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
