"""TensorBoard: a run's scalars, histograms, images and hyperparameters, as it trains.

Written with torch.utils.tensorboard's SummaryWriter (the `tensorboard` extra), into the
run's tb/ folder, so that `tensorboard --logdir runs/` shows every run:

- scalars by iteration: the loss of every 10th training step, the learning rate, and at
  each evaluation the validation and test loss and accuracy (and each epoch's training
  accuracy);
- at each evaluation: every layer's weight and gradient histograms, the first layer's
  weights as an image (one tile a unit, for 28x28 inputs), and the confusion matrix;
- at the end: the config as hparams, with the final metrics.

A resumed run writes on into the same folder. At its start the event files are cut back to
what its saved state had seen: events up to the state's iteration stay, later ones (made
after that state was saved, and about to be made again) and the end-of-run summaries go,
each file rewritten whole to a temp file and renamed. The writer is flushed whenever the
state is saved, so that every event the state has seen is on disk.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.errors import MlplabError
from mlplab.io.atomic import atomic_write
from mlplab.tracking.scalars import (
    FINAL,
    StepLoss,
    epoch_scalars,
    evaluation_scalars,
    final_scalars,
    hparam_values,
)
from mlplab.training.callbacks import Callback, Evaluation, ResultView, TrainerView

TILES = 64  # first-layer units drawn in the weights image
BINS = 64  # histogram buckets
HPARAMS = "_hparams_/"  # the hparams plugin's summary tags


def summary_writer():
    """torch's SummaryWriter class, or the error that names the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MlplabError(
            "--log tensorboard needs the tensorboard package: pip install 'mlplab[tensorboard]'"
        ) from None
    return SummaryWriter


def check_writable(folder: Path) -> None:
    """Make the folder, and write a file in it: an error names the path, before training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise MlplabError(f"{folder}: cannot write TensorBoard logs: {e.strerror or e}") from None


class TensorBoardLog(Callback):
    """Logs a run to TensorBoard event files in `folder` (see the module docstring)."""

    name = "tensorboard"  # for state_dict(), called whenever the state is saved

    def __init__(self, folder: str | Path, config: TrainConfig, loss: StepLoss | None = None):
        self.SummaryWriter = summary_writer()
        self.folder, self.config = Path(folder), config
        check_writable(self.folder)
        self.writer = None
        self.loss = loss or StepLoss()  # another tracker's, to share its reads

    def on_train_begin(self, trainer: TrainerView) -> None:
        s = trainer.state
        trim_events(self.folder, s.iteration)
        self.writer = self.SummaryWriter(str(self.folder), max_queue=1000, flush_secs=60)
        self.loss.begin(s)
        if s.iteration == 0:
            text = json.dumps(self.config.to_dict(), indent=2)
            self.writer.add_text("config", f"```\n{text}\n```", 0)

    def on_step(self, trainer: TrainerView) -> None:
        self._scalars(self.loss.after_step(trainer.state), trainer.state.iteration)

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        step, w = evaluation.iteration, self.writer
        self._scalars(evaluation_scalars(evaluation), step)
        model = trainer.model()
        grads = trainer.last_grads()
        for i, (layer, grad) in enumerate(zip(model.linears(), grads, strict=True), 1):
            add_histogram(w, f"weights/fc{i}", layer.weight, step)
            if grad is not None:
                add_histogram(w, f"gradients/fc{i}", grad, step)
        add_png(w, "images/fc1_weights", first_layer_image(model.linears()[0].weight), step)
        shown = evaluation.test or evaluation.val
        if shown is not None:
            add_png(w, "images/confusion", confusion_image(shown.confusion), step)

    def on_epoch_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self._scalars(epoch_scalars(record), record["iteration"])

    def _scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def on_interrupt(self, trainer: TrainerView) -> None:
        self.writer.close()

    def on_train_end(self, trainer: TrainerView, result: ResultView) -> None:
        final = final_scalars(result)
        write_hparams(self.writer, hparam_values(self.config), final, result.iterations)
        self.writer.close()

    def state_dict(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.flush()
        return {}


@torch.no_grad()
def add_histogram(writer, tag: str, t: torch.Tensor, step: int) -> None:
    """A histogram of the finite values in BINS equal bins, binned by torch on the tensor's
    device (the writer's own add_histogram sorts them in numpy: 20x slower, measured)."""
    t = t.detach().float().reshape(-1)
    if t.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(t))  # NaN and inf show here, if any
    if not (math.isfinite(low) and math.isfinite(high)):  # a diverged run: bin what is finite
        t = t[torch.isfinite(t)]
        if t.numel() == 0:
            return
        low, high = (float(v) for v in torch.aminmax(t))
    if high <= low:
        high = low + 1e-12
    counts = torch.histc(t, bins=BINS, min=low, max=high)
    limits = torch.linspace(low, high, BINS + 1)[1:]
    writer.add_histogram_raw(
        tag,
        min=low,
        max=high,
        num=t.numel(),
        sum=float(t.sum()),
        sum_squares=float((t * t).sum()),
        bucket_limits=limits.tolist(),
        bucket_counts=counts.cpu().tolist(),
        global_step=step,
    )


def write_hparams(writer, hparams: dict[str, Any], final: dict[str, float], step: int) -> None:
    """The hparams plugin's three summaries, in this run's own folder (torch's add_hparams
    would make a folder of its own), and the final metrics as scalars beside them."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    for summary in hparams_summaries(hparams, final):
        writer.file_writer.add_summary(summary, step)
    for tag, value in final.items():
        writer.add_scalar(tag, value, step)


def add_png(writer, tag: str, image: torch.Tensor, step: int) -> None:
    """An image, (H, W) grey or (3, H, W) colour in [0, 1], as a PNG (the writer's own
    add_image resamples it with Lanczos first: 40 ms for a 233x233 picture, measured)."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    if pixels.dim() == 3:
        pixels = pixels.permute(1, 2, 0)
    array = pixels.contiguous().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    picture = Summary.Image(
        height=array.shape[0],
        width=array.shape[1],
        colorspace=1 if array.ndim == 2 else 3,
        encoded_image_string=buffer.getvalue(),
    )
    writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=picture)]), step)


def first_layer_image(weight: torch.Tensor) -> torch.Tensor:
    """(H, W) grey in [0, 1]: for 784 inputs, up to 64 units as 28x28 tiles in a grid, each
    scaled by its largest magnitude (mid grey is 0); else the weight matrix itself."""
    w = weight.detach().float().cpu()
    w = torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    w = 0.5 + 0.5 * w / scale  # (units, inputs)
    if w.shape[1] != 784:
        return w
    tiles = w[:TILES].reshape(-1, 28, 28)
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = torch.ones(rows * 29 + 1, cols * 29 + 1)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[1 + r * 29 : 29 + r * 29, 1 + c * 29 : 29 + c * 29] = tile
    return grid


def confusion_image(confusion: list[list[int]], cell: int = 12) -> torch.Tensor:
    """(3, H, W): the confusion matrix, true classes down, predicted across, each row as a
    share of its class; the diagonal in blue, mistakes in red, white for none."""
    m = torch.tensor(confusion, dtype=torch.float32)
    share = m / m.sum(1, keepdim=True).clamp(min=1)
    diagonal = torch.eye(len(m), dtype=torch.bool)
    # mistakes are small shares: a square root makes a 1% confusion visible
    strength = torch.where(diagonal, share, share.sqrt())
    red = torch.where(diagonal, 1 - strength, torch.ones_like(share))
    green = 1 - strength
    blue = torch.where(diagonal, torch.ones_like(share), 1 - strength)
    image = torch.stack([red, green, blue])
    return image.repeat_interleave(cell, 1).repeat_interleave(cell, 2)


def trim_events(folder: Path, iteration: int) -> None:
    """Cut the event files in `folder` back to the events of steps up to `iteration`,
    without the end-of-run summaries; each changed file is rewritten atomically."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    for path in sorted(folder.glob("events.out.tfevents.*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        raw = list(RawEventFileLoader(str(path)).Load())
        kept = [r for r in raw if _keep(Event.FromString(r), iteration)]
        if len(kept) == len(raw) and _whole(path, raw):
            continue
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for record in kept:
            writer.write(record)
        atomic_write(path, buffer.getvalue())


def _keep(event, iteration: int) -> bool:
    if event.HasField("file_version"):
        return True
    if event.step > iteration:
        return False
    tags = [v.tag for v in event.summary.value]
    return not any(t.startswith((HPARAMS, FINAL)) for t in tags)


def _whole(path: Path, records: list[bytes]) -> bool:
    """The file holds exactly these records (no torn last record after a kill)."""
    return os.path.getsize(path) == sum(len(r) + 16 for r in records)
