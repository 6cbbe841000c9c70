"""Random jitter of a training batch, made where the batch lives (no per-image Python).

shift moves each image by up to 2 pixels each way; affine also rotates it by up to 10
degrees and scales it by 0.9-1.1, sampled bilinearly. Uncovered pixels take the value of
a blank pixel, so the background stays background after normalisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIDE = 28
MAX_SHIFT = 2
MAX_DEGREES = 10.0
MAX_SCALE = 0.1


def augment(
    x: torch.Tensor,
    kind: str,
    blank: float,
    generator: torch.Generator | None = None,
    part: tuple[int, int] | None = None,
) -> torch.Tensor:
    """x (B, 784) normalised images -> jittered images of the same shape, on x's device.

    blank is the normalised value of a 0 pixel, -mean / std. part=(start, total): x is rows
    start..start+B of a batch of `total` images (one process's share of a global batch);
    the jitter is drawn for the whole batch and this share's rows taken, so that several
    processes jitter each image as one process would, and their generators stay in step.
    """
    start, total = part or (0, len(x))
    rows = slice(start, start + len(x))
    if kind == "none":
        return x
    if kind == "shift":
        return _shift(x, blank, generator, rows, total)
    if kind == "affine":
        return _affine(x, blank, generator, rows, total)
    raise ValueError(f"augment: unknown kind {kind!r}")


def _shift(x: torch.Tensor, blank: float, generator, rows: slice, total: int) -> torch.Tensor:
    # Pad once, then gather each image's own 28x28 window of the padded image.
    n, device, pad = len(x), x.device, MAX_SHIFT
    padded = F.pad(x.view(n, SIDE, SIDE), (pad, pad, pad, pad), value=blank)
    offsets = torch.randint(0, 2 * pad + 1, (2, total, 1, 1), generator=generator, device=device)
    dy, dx = offsets[:, rows]
    rows = torch.arange(SIDE, device=device).view(1, SIDE, 1) + dy
    cols = torch.arange(SIDE, device=device).view(1, 1, SIDE) + dx
    images = torch.arange(n, device=device).view(n, 1, 1)
    return padded[images, rows, cols].reshape(n, SIDE * SIDE)


def _affine(x: torch.Tensor, blank: float, generator, rows: slice, total: int) -> torch.Tensor:
    n = len(x)
    u = torch.rand(total, 4, generator=generator, device=x.device)[rows] * 2 - 1  # in [-1, 1)
    angle = u[:, 0] * math.radians(MAX_DEGREES)
    scale = 1 + MAX_SCALE * u[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid's coordinates run from -1 to 1 across the image: one pixel is 2/28.
    shift_y, shift_x = u[:, 2] * MAX_SHIFT * 2 / SIDE, u[:, 3] * MAX_SHIFT * 2 / SIDE
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )  # (B, 2, 3): where each output pixel samples the input
    grid = F.affine_grid(theta, [n, 1, SIDE, SIDE], align_corners=False)
    # grid_sample pads with zeros; shifting by `blank` first makes the padding blank.
    images = x.view(n, 1, SIDE, SIDE) - blank
    return (F.grid_sample(images, grid, align_corners=False) + blank).reshape(n, SIDE * SIDE)
