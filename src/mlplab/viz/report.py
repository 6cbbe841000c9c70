"""Every picture of a run, and report.html: one self-contained page that opens offline."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import torch

from mlplab.data.dataset import Dataset
from mlplab.io.atomic import atomic_write_text
from mlplab.io.checkpoint import load_checkpoint
from mlplab.io.rundir import read_metrics
from mlplab.training.evaluate import evaluate, predict_logits
from mlplab.viz import plots

PICTURES = {
    "curves": "Training curves",
    "confusion": "Confusion matrix",
    "view_classify": "An image and its class probabilities",
    "samples": "Test images with their labels",
    "weights": "First-layer weights",
    "mistakes": "Most confident mistakes",
}

# The look of mlplab's self-contained HTML pages (the run report, the sweep page).
STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1050px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eef; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }"""


def plot_run(
    run_dir: str | Path, data: Dataset, only: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """Write the run's pictures to RUN_DIR/plots/; returns name -> path."""
    run_dir = Path(run_dir)
    out = run_dir / "plots"
    ckpt = load_checkpoint(run_dir)
    classes = ckpt.classes
    wanted = only or tuple(PICTURES)
    written = {}
    if "curves" in wanted:
        written["curves"] = plots.training_curves(read_metrics(run_dir), out / "curves.png")
    test = data.test
    if {"view_classify", "mistakes"} & set(wanted):  # only these two need the probabilities
        probs = torch.softmax(predict_logits(ckpt.model, test.x, ckpt.norm).float(), 1)
    if "confusion" in wanted:
        metrics = evaluate(ckpt.model, test, ckpt.norm, len(classes))
        written["confusion"] = plots.confusion_heatmap(
            metrics.confusion, classes, out / "confusion.png"
        )
    if "view_classify" in wanted:
        written["view_classify"] = plots.view_classify(
            test.x[0],
            probs[0],
            classes,
            out / "view_classify.png",
            title=f"test image 0, label {classes[int(test.y[0])]}",
        )
    if "samples" in wanted:
        written["samples"] = plots.sample_grid(
            test.x, test.y, classes, out / "samples.png", title=f"{data.name} test"
        )
    if "weights" in wanted:
        written["weights"] = plots.first_layer_weights(ckpt.model.fc1.weight, out / "weights.png")
    if "mistakes" in wanted:
        written["mistakes"] = plots.confident_mistakes(
            test.x, test.y, probs, classes, out / "mistakes.png"
        )
    return written


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(run_dir: str | Path, data: Dataset) -> Path:
    """RUN_DIR/report.html with config, metrics, per-class accuracy and every picture inline."""
    run_dir = Path(run_dir)
    pictures = plot_run(run_dir, data)
    info = json.loads((run_dir / "model.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    records = [r for r in read_metrics(run_dir) if r.get("kind") == "eval"]
    metric_rows = [
        [
            r["iteration"],
            r["epoch"],
            f"{r['train_loss']:.4f}",
            f"{r['test_loss']:.4f}",
            f"{r['test_accuracy']:.2f}",
            f"{r['val_accuracy']:.2f}" if "val_accuracy" in r else "",
        ]
        for r in records
    ]
    per_class = [
        [c, f"{a:.2f}"] for c, a in zip(info["classes"], info["per_class_accuracy"], strict=True)
    ]
    figures = []
    for name, path in pictures.items():
        b64 = base64.b64encode(path.read_bytes()).decode()
        figures.append(
            f'<figure><img alt="{html.escape(PICTURES[name])}" '
            f'src="data:image/png;base64,{b64}"><figcaption>'
            f"{html.escape(PICTURES[name])}</figcaption></figure>"
        )
    title = f"mlplab run {run_dir.name}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{STYLE}
.headline {{ font-size: 1.4em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="headline">{html.escape(info["spec"])} on {html.escape(info["dataset"])}:
test accuracy <b>{info["test_accuracy"]:.2f}%</b> (loss {info["test_loss"]:.4f}) after
{info["iterations"]} iterations, {info["seconds"]:.1f} s on {html.escape(info["device"])}.</p>
<h2>Configuration</h2>
{_table([[k, v] for k, v in config.items()], ["field", "value"])}
<h2>Metrics</h2>
{_table(metric_rows, ["iteration", "epoch", "train loss", "test loss", "test acc %", "val acc %"])}
<h2>Per-class test accuracy</h2>
{_table(per_class, ["class", "accuracy %"])}
<h2>Pictures</h2>
{"".join(figures)}
<p><small>mlplab {html.escape(info["versions"]["mlplab"])}, torch
{html.escape(info["versions"]["torch"])}, seed {info["seed"]}.</small></p>
</body></html>
"""
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    return path
