"""Random jitter of a training batch, made where the batch lives (no per-image Python).

shift moves each image by up to 2 pixels each way; affine also rotates it by up to 10
degrees and scales it by 0.9-1.1, sampled bilinearly. elastic is Simard et al. (2003)'s
distortion: a displacement field of uniform noise, smoothed by a Gaussian of sigma 4 pixels
and scaled by alpha 34, moves every pixel on its own; affine-elastic composes both into one
resampling (Ciresan et al. 2010 trained their MLPs with both). Uncovered pixels take the
value of a blank pixel, so the background stays background after normalisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIDE = 28
MAX_SHIFT = 2
MAX_DEGREES = 10.0
MAX_SCALE = 0.1
ELASTIC_SIGMA = 4.0  # pixels: Simard et al. 2003, section 2
ELASTIC_ALPHA = 34.0


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
    if kind in ("affine", "elastic", "affine-elastic"):
        if kind == "elastic":
            grid = _identity_grid(x).expand(len(x), -1, -1, -1)
        else:
            grid = _affine_grid(len(x), generator, rows, total, x)
        if kind != "affine":
            grid = grid + _elastic_displacement(generator, rows, total, x)
        return _resample(x, grid, blank)
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


def _affine_grid(n: int, generator, rows: slice, total: int, x: torch.Tensor) -> torch.Tensor:
    """(n, 28, 28, 2): where each output pixel samples its input, in affine_grid's units."""
    u = torch.rand(total, 4, generator=generator, device=x.device, dtype=x.dtype)[rows] * 2 - 1
    angle = u[:, 0] * math.radians(MAX_DEGREES)
    scale = 1 + MAX_SCALE * u[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid's coordinates run from -1 to 1 across the image: one pixel is 2/28.
    shift_y, shift_x = u[:, 2] * MAX_SHIFT * 2 / SIDE, u[:, 3] * MAX_SHIFT * 2 / SIDE
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )  # (B, 2, 3)
    return F.affine_grid(theta, [n, 1, SIDE, SIDE], align_corners=False)


def _identity_grid(x: torch.Tensor) -> torch.Tensor:
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)  # made there: no copy from the host
    return F.affine_grid(theta[None], [1, 1, SIDE, SIDE], align_corners=False)


def _elastic_displacement(generator, rows: slice, total: int, x: torch.Tensor) -> torch.Tensor:
    """(n, 28, 28, 2): a smooth random field of displacements, in affine_grid's units."""
    noise = torch.rand(total, 2, SIDE, SIDE, generator=generator, device=x.device, dtype=x.dtype)
    field = noise[rows] * 2 - 1
    radius = int(3 * ELASTIC_SIGMA)
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * ELASTIC_SIGMA**2))
    kernel = kernel / kernel.sum()
    # A separable Gaussian: one pass along rows, one along columns, each channel alone.
    # Zero padding beyond the border, as Simard's convolution of a field that is zero outside.
    field = F.conv2d(
        field, kernel.view(1, 1, 1, -1).expand(2, 1, 1, -1), padding=(0, radius), groups=2
    )
    field = F.conv2d(
        field, kernel.view(1, 1, -1, 1).expand(2, 1, -1, 1), padding=(radius, 0), groups=2
    )
    return (field * ELASTIC_ALPHA * 2 / SIDE).permute(0, 2, 3, 1)  # pixels -> grid units


def _resample(x: torch.Tensor, grid: torch.Tensor, blank: float) -> torch.Tensor:
    n = len(x)
    # grid_sample pads with zeros; shifting by `blank` first makes the padding blank.
    images = x.view(n, 1, SIDE, SIDE) - blank
    return (F.grid_sample(images, grid, align_corners=False) + blank).reshape(n, SIDE * SIDE)
