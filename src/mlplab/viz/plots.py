"""The pictures people look at, as PNGs. The only module that imports matplotlib.

It uses matplotlib's object API (a Figure on an Agg canvas), never pyplot: pyplot costs
import time and keeps a global registry of figures that every picture would have to leave.

Every figure has a fixed size in inches and a fixed dpi, and is saved without tight
bounding boxes, so its pixel size is known: width = w * DPI, height = h * DPI. Margins are
set by hand (fixed, or from the measured width of the class names) instead of by
tight_layout, which lays every tick label out once more before the real drawing.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from mlplab.errors import MlplabError
from mlplab.io.atomic import atomic_write

DPI = 100
SIZES = {  # inches; pixels are these times DPI
    "view_classify": (8, 4),
    "samples": (8, 8.6),
    "confusion": (8, 7),
    "curves": (10, 4),
    "weights": (8, 8.4),
    "mistakes": (10, 6.6),
}


@contextmanager
def _gc_paused():
    # Importing matplotlib and drawing allocate so many objects that the collector runs
    # full passes, which also walk everything torch made: measured, 0.3 s of the 1.8 s
    # the end-of-run pictures took. A figure's garbage is collected once we resume.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _matplotlib():
    """matplotlib's Figure and Agg canvas classes; MlplabError when it is not installed."""
    with _gc_paused():
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise MlplabError("plots need matplotlib: pip install 'mlplab[plots]'") from None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    return Figure, FigureCanvasAgg


def _figure(name: str):
    """A Figure of SIZES[name] at DPI on its own Agg canvas."""
    figure, canvas = _matplotlib()
    fig = figure(figsize=SIZES[name], dpi=DPI)
    canvas(fig)
    return fig


def _image(x) -> np.ndarray:
    """A (28, 28) image as floats in [0, 1] from uint8, a tensor or an array."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.reshape(28, 28)
    return arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)


def _save(fig, path: str | Path) -> Path:
    # Rendered in memory first, so a crash never leaves a half-written PNG behind.
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    return atomic_write(path, buf.getvalue())


def _text_inches(fig, texts: Sequence[str], size="medium") -> float:
    """The width in inches of the widest of `texts` at font `size`."""
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()  # the one savefig reuses: same size and dpi
    prop = FontProperties(size=size)
    widths = [renderer.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts]
    return max(widths, default=0.0) / fig.dpi


def _margins(fig, left=0.0, right=0.0, bottom=0.0, top=0.0, wspace=0.0, hspace=0.0):
    """subplots_adjust with the margins and gaps in inches, not fractions of the figure."""
    w, h = fig.get_size_inches()
    cols, rows = _grid_shape(fig)
    axes_w = (w - left - right - wspace * (cols - 1)) / cols
    axes_h = (h - bottom - top - hspace * (rows - 1)) / rows
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        wspace=wspace / axes_w,
        hspace=hspace / axes_h,
    )


def _grid_shape(fig) -> tuple[int, int]:
    """(columns, rows) of the figure's subplot grid."""
    spec = fig.axes[0].get_subplotspec().get_gridspec()
    rows, cols = spec.get_geometry()
    return cols, rows


def view_classify(
    image, probs, classes: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """The image beside a horizontal bar chart of its class probabilities."""
    fig = _figure("view_classify")
    with _gc_paused():
        probs = np.asarray(
            probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64
        ).reshape(-1)
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
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
        # The gap before the bars holds the class names, as wide as the widest one.
        gap = _text_inches(fig, classes) + 0.3
        _margins(fig, left=0.15, right=0.25, bottom=0.55, top=0.4, wspace=gap)
        return _save(fig, path)


def _tile_grid(fig, n: int, cols: int):
    """rows x cols axes without frames; the first n are returned, the rest stay blank."""
    rows = -(-n // cols)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes:
        ax.axis("off")
    return axes[:n]


def sample_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[str],
    path: str | Path,
    n: int = 64,
    title: str | None = None,
) -> Path:
    """An 8x8 (or smaller) grid of images with their labels."""
    fig = _figure("samples")
    with _gc_paused():
        n = min(n, len(x))
        for i, ax in enumerate(_tile_grid(fig, n, min(8, n))):
            ax.imshow(_image(x[i]), cmap="gray")
            ax.set_title(classes[int(y[i])], fontsize=8)
        if title:
            fig.suptitle(title)
        _margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.6, wspace=0.15, hspace=0.3)
        return _save(fig, path)


def confusion_heatmap(
    confusion, classes: Sequence[str], path: str | Path, title: str = "Confusion matrix (test)"
) -> Path:
    """The confusion matrix as a heatmap with the counts written in each cell."""
    fig = _figure("confusion")
    with _gc_paused():
        cm = np.asarray(confusion, dtype=np.int64)
        ax = fig.subplots()
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
        # Room for the class names: beside the rows, and below the columns at 45 degrees.
        name = _text_inches(fig, classes)
        _margins(fig, left=name + 0.45, right=0.1, bottom=0.75 * name + 0.6, top=0.4)
        fig.colorbar(im, ax=ax, label="log(1 + count)")
        return _save(fig, path)


def _log_labels(ax) -> None:
    """Plain numbers (0.2, 1) as the log axis's tick labels."""
    # The default labels (10^-1) are mathtext, whose parser takes longer to build than
    # the rest of the picture takes to draw.
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def training_curves(history: list[dict], path: str | Path) -> Path:
    """Loss and accuracy against iteration, for training and test (and validation)."""
    evals = [r for r in history if r.get("kind") == "eval"]
    epochs = [r for r in history if r.get("kind") == "epoch"]
    if not evals:
        raise MlplabError("no evaluation records to plot")
    fig = _figure("curves")
    with _gc_paused():
        ax1, ax2 = fig.subplots(1, 2)
        its = [r["iteration"] for r in evals]
        ax1.plot(its, [r["train_loss"] for r in evals], "o-", label="train (running)")
        ax1.plot(its, [r["test_loss"] for r in evals], "o-", label="test")
        if "val_loss" in evals[0]:
            ax1.plot(its, [r["val_loss"] for r in evals], "o-", label="validation")
        ax1.set_xlabel("iteration")
        ax1.set_ylabel("cross-entropy")
        ax1.set_yscale("log")
        _log_labels(ax1)
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
        # Tick labels are at most six characters ("0.0001", "99.95").
        _margins(fig, left=0.85, right=0.15, bottom=0.55, top=0.15, wspace=0.95)
        return _save(fig, path)


def first_layer_weights(weight: torch.Tensor, path: str | Path, n: int = 64) -> Path:
    """The first n rows of the first Linear layer, each as a 28x28 tile."""
    w = weight.detach().cpu().double()
    if w.shape[1] != 784:
        raise MlplabError(f"first-layer weights must have 784 inputs, got {w.shape[1]}")
    fig = _figure("weights")
    with _gc_paused():
        n = min(n, len(w))
        for i, ax in enumerate(_tile_grid(fig, n, min(8, n))):
            tile = w[i].reshape(28, 28).numpy()
            limit = np.abs(tile).max() or 1.0
            ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"unit {i}", fontsize=7)
        fig.suptitle("First-layer weights (red positive, blue negative)")
        _margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.6, wspace=0.15, hspace=0.3)
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
    conf, pred = probs.max(1)
    wrong = torch.nonzero(pred != y).squeeze(1)
    order = wrong[conf[wrong].argsort(descending=True)][:n]
    fig = _figure("mistakes")
    with _gc_paused():
        fig.subplots(max(1, -(-len(order) // 6)), 6, squeeze=False)
        for ax in fig.axes:
            ax.axis("off")
        for ax, i in zip(fig.axes, order.tolist(), strict=False):
            ax.imshow(_image(x[i]), cmap="gray")
            ax.set_title(
                f"true {classes[int(y[i])]}\npred {classes[int(pred[i])]} {float(conf[i]):.0%}",
                fontsize=8,
            )
        fig.suptitle(f"Most confident mistakes ({len(wrong)} wrong of {len(y)})")
        _margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.6, wspace=0.3, hspace=0.5)
        return _save(fig, path)
