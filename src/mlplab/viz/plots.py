"""The pictures people look at, as PNGs. The only module that imports matplotlib (Agg).

Every figure has a fixed size in inches and a fixed dpi, and is saved without tight
bounding boxes, so its pixel size is known: width = w * DPI, height = h * DPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mlplab.errors import MlplabError

DPI = 100
SIZES = {  # inches; pixels are these times DPI
    "view_classify": (8, 4),
    "samples": (8, 8.6),
    "confusion": (8, 7),
    "curves": (10, 4),
    "weights": (8, 8.4),
    "mistakes": (10, 6.6),
}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MlplabError("plots need matplotlib: pip install 'mlplab[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image(x) -> np.ndarray:
    """A (28, 28) image as floats in [0, 1] from uint8, a tensor or an array."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.reshape(28, 28)
    return arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    _pyplot().close(fig)
    return path


def view_classify(
    image, probs, classes: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """The image beside a horizontal bar chart of its class probabilities."""
    plt = _pyplot()
    probs = np.asarray(
        probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64
    ).reshape(-1)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=SIZES["view_classify"], gridspec_kw={"width_ratios": [1, 1.3]}
    )
    ax1.imshow(_image(image), cmap="gray")
    ax1.axis("off")
    if title:
        ax1.set_title(title)
    pos = np.arange(len(probs))
    colors = ["tab:orange" if i == probs.argmax() else "tab:blue" for i in pos]
    ax2.barh(pos, probs, color=colors)
    ax2.set_yticks(pos, list(classes))
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1.1)
    ax2.set_xlabel("probability")
    ax2.set_title(f"{classes[int(probs.argmax())]}: {probs.max():.1%}")
    fig.tight_layout()
    return _save(fig, path)


def sample_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[str],
    path: str | Path,
    n: int = 64,
    title: str | None = None,
) -> Path:
    """An 8x8 (or smaller) grid of images with their labels."""
    plt = _pyplot()
    n = min(n, len(x))
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=SIZES["samples"], squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_image(x[i]), cmap="gray")
            ax.set_title(classes[int(y[i])], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def confusion_heatmap(
    confusion, classes: Sequence[str], path: str | Path, title: str = "Confusion matrix (test)"
) -> Path:
    """The confusion matrix as a heatmap with the counts written in each cell."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=np.int64)
    fig, ax = plt.subplots(figsize=SIZES["confusion"])
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, list(classes), rotation=45, ha="right")
    ax.set_yticks(ticks, list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = np.log1p(cm).max() / 2
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.log1p(cm[i, j]) > threshold else "black",
            )
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    return _save(fig, path)


def training_curves(history: list[dict], path: str | Path) -> Path:
    """Loss and accuracy against iteration, for training and test (and validation)."""
    plt = _pyplot()
    evals = [r for r in history if r.get("kind") == "eval"]
    epochs = [r for r in history if r.get("kind") == "epoch"]
    if not evals:
        raise MlplabError("no evaluation records to plot")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=SIZES["curves"])
    its = [r["iteration"] for r in evals]
    ax1.plot(its, [r["train_loss"] for r in evals], "o-", label="train (running)")
    ax1.plot(its, [r["test_loss"] for r in evals], "o-", label="test")
    if "val_loss" in evals[0]:
        ax1.plot(its, [r["val_loss"] for r in evals], "o-", label="validation")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("cross-entropy")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.plot(its, [r["test_accuracy"] for r in evals], "o-", label="test")
    if "val_accuracy" in evals[0]:
        ax2.plot(its, [r["val_accuracy"] for r in evals], "o-", label="validation")
    if epochs:
        ax2.plot(
            [r["iteration"] for r in epochs],
            [r["train_accuracy"] for r in epochs],
            "s--",
            label="train (running, per epoch)",
        )
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def first_layer_weights(weight: torch.Tensor, path: str | Path, n: int = 64) -> Path:
    """The first n rows of the first Linear layer, each as a 28x28 tile."""
    plt = _pyplot()
    w = weight.detach().cpu().double()
    if w.shape[1] != 784:
        raise MlplabError(f"first-layer weights must have 784 inputs, got {w.shape[1]}")
    n = min(n, len(w))
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=SIZES["weights"], squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            tile = w[i].reshape(28, 28).numpy()
            limit = np.abs(tile).max() or 1.0
            ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"unit {i}", fontsize=7)
    fig.suptitle("First-layer weights (red positive, blue negative)")
    fig.tight_layout()
    return _save(fig, path)


def confident_mistakes(
    x: torch.Tensor,
    y: torch.Tensor,
    probs: torch.Tensor,
    classes: Sequence[str],
    path: str | Path,
    n: int = 18,
) -> Path:
    """The misclassified images the model was surest about: true, predicted, probability."""
    plt = _pyplot()
    conf, pred = probs.max(1)
    wrong = torch.nonzero(pred != y).squeeze(1)
    order = wrong[conf[wrong].argsort(descending=True)][:n]
    cols = 6
    rows = max(1, -(-len(order) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=SIZES["mistakes"], squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order.tolist(), strict=False):
        ax.imshow(_image(x[i]), cmap="gray")
        ax.set_title(
            f"true {classes[int(y[i])]}\npred {classes[int(pred[i])]} {float(conf[i]):.0%}",
            fontsize=8,
        )
    fig.suptitle(f"Most confident mistakes ({len(wrong)} wrong of {len(y)})")
    fig.tight_layout()
    return _save(fig, path)
