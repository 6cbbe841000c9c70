"""Predict on images from anywhere: files, PIL images, arrays. Needs Pillow for files.

Images are prepared the way MNIST itself was made: grayscale, light-on-dark, cropped to the
ink, the longer side scaled to 20 px, pasted into 28x28 so that the centre of mass sits at
the centre, then normalised as the checkpoint says.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.errors import MlplabError

MAX_SIDE = 4096
INK_THRESHOLD = 0.1  # of the brightest pixel: fainter pixels are not ink when cropping


class ImageError(MlplabError):
    """A file or array that cannot be read as an image."""


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise MlplabError("reading images needs Pillow: pip install 'mlplab[images]'") from None
    return Image


def open_image(source: str | Path | bytes, name: str | None = None):
    """A PIL image (first frame) from a path or bytes, checked for emptiness and size."""
    Image = _pil()
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ImageError(f"{name}: cannot read: {e.strerror or e}") from None
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageError(
            f"{name}: image is too large; the limit is {MAX_SIDE}x{MAX_SIDE}"
        ) from None
    except Exception:  # Pillow raises several types for undecodable data
        raise ImageError(f"{name}: not an image (PNG, JPEG, BMP or GIF expected)") from None
    _check_size(image.size, name)
    try:
        image.seek(0)
        image.load()
    except Exception as e:
        raise ImageError(f"{name}: corrupt image data: {_one_line(e)}") from None
    return image


def _check_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if max(w, h) > MAX_SIDE:
        raise ImageError(f"{name}: image is {w}x{h} px; the limit is {MAX_SIDE}x{MAX_SIDE}")
    if min(w, h) < 1:
        raise ImageError(f"{name}: image is {w}x{h} px: it has no pixels")


def _one_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def to_gray(image: Any, name: str = "<image>") -> np.ndarray:
    """Ink intensity in [0, 1], light ink on dark, as float64 (H, W).

    A transparent image's alpha is its ink; otherwise luminance, inverted when the
    background (the median of the border) is light, less the background's level.
    """
    if isinstance(image, (str, Path, bytes)):
        image = open_image(image, name)
    arr = _pil_gray(image, name) if hasattr(image, "mode") else _array_gray(image, name)
    if not np.isfinite(arr).all():
        raise ImageError(f"{name}: image contains NaN or infinite values")
    background = np.median(np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]))
    # The margin lets float32 pixels (mode F) decide as the 8-bit picture they hold does.
    if background > 0.5 + 1e-6:
        arr, background = 1.0 - arr, 1.0 - background
    # Paper that is not pure white (or a uniform grey picture) is background, not ink.
    return np.clip(arr - background, 0.0, 1.0)


_WIDE_MODES = ("I", "F")  # 32-bit pixels; "I;16*" are 16-bit


def _pil_gray(image, name: str) -> np.ndarray:
    """A PIL image -> its ink or luminance in [0, 1], (H, W)."""
    _check_size(image.size, name)
    mode = image.mode
    try:
        if mode.startswith("I;16") or mode in _WIDE_MODES:
            # convert("L") clips these at 255: a 16-bit digit would come out all white.
            return _scaled(np.asarray(image, dtype=np.float64), mode.startswith("I;16"))
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
            if rgba[..., 3].min() < 1.0:
                return rgba[..., 3]
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    except (ValueError, OSError) as e:  # modes Pillow cannot convert, such as LAB or La
        raise ImageError(
            f"{name}: cannot read a {mode} image as grayscale: {_one_line(e)}"
        ) from None


def _scaled(arr: np.ndarray, sixteen_bit: bool = False) -> np.ndarray:
    """Pixels of any range -> [0, 1]: divided by 65535 when 16-bit, else by the smallest of
    1 (pixels already in [0, 1]), 255 and 65535 that holds them, then clipped."""
    top = arr.max()
    if not np.isfinite(top):
        return arr  # to_gray names the NaN
    scale = 65535.0 if sixteen_bit or top > 255 else 255.0 if top > 1 else 1.0
    return np.clip(arr / scale, 0.0, 1.0)


def _array_gray(image, name: str) -> np.ndarray:
    """An array or tensor -> its luminance: uint8 pixels are in 0-255, booleans in 0-1, and
    other numbers are scaled as _scaled says (floats in [0, 1] stay as they are)."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise ImageError(f"{name}: array of dtype {arr.dtype} is not an image")
    eight_bit, boolean = arr.dtype == np.uint8, arr.dtype.kind == "b"
    # The shape is checked before any conversion: float64 is 8x the memory of uint8.
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        _check_size(arr.shape[1::-1], name)
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif arr.ndim != 2 and arr.size == 784:
        arr = arr.reshape(28, 28).astype(np.float64)
    elif arr.ndim != 2:
        raise ImageError(f"{name}: array of shape {arr.shape} is not an image")
    _check_size(arr.shape[::-1], name)
    arr = arr.astype(np.float64)
    return arr / 255.0 if eight_bit else arr if boolean else _scaled(arr)


def mnistify(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale the longer side to 20 px, centre the mass in 28x28 -> [0, 1]."""
    Image = _pil()
    peak = ink.max()
    out = np.zeros((28, 28))
    if peak <= 0:
        return out
    rows = np.nonzero((ink > INK_THRESHOLD * peak).any(1))[0]
    cols = np.nonzero((ink > INK_THRESHOLD * peak).any(0))[0]
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / peak
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # rint, not a cast: truncation makes every pixel up to one step darker
    small = Image.fromarray(np.rint(crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS)
    small = np.asarray(small, dtype=np.float64) / 255.0
    mass = small.sum()
    if mass <= 0:
        return out
    ys, xs = np.indices(small.shape)
    cy, cx = (ys * small).sum() / mass, (xs * small).sum() / mass
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(out, 0.0, 1.0)


def preprocess(image: Any, name: str = "<image>") -> np.ndarray:
    """Any image -> a (28, 28) float array in [0, 1], as MNIST digits are."""
    return mnistify(to_gray(image, name))


class Predictor:
    """Class probabilities for prepared (N, 28, 28) images in [0, 1], from any model format."""

    def __init__(
        self,
        logits_fn,
        classes: list[str],
        mean: float,
        std: float,
        info: dict,
        path: Path | None = None,
    ):
        self._logits, self.classes, self.mean, self.std = logits_fn, list(classes), mean, std
        self.info, self.path = info, path

    @classmethod
    def from_checkpoint(cls, ckpt) -> Predictor:
        import torch

        model = ckpt.model.eval()
        device = next(model.parameters()).device

        def logits(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

        n = ckpt.norm
        return cls(logits, ckpt.classes, n.mean, n.std, ckpt.info, ckpt.path)

    @classmethod
    def from_onnx(cls, path: str | Path) -> Predictor:
        from mlplab.use.export import OnnxModel

        onnx = OnnxModel(path)
        return cls(onnx, onnx.classes, onnx.mean, onnx.std, onnx.info, onnx.path)

    @classmethod
    def from_pt2(cls, path: str | Path) -> Predictor:
        from mlplab.use.export import Pt2Model

        program = Pt2Model(path)
        return cls(program, program.classes, program.mean, program.std, program.info, program.path)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) floats in [0, 1] -> (N, classes) probabilities, float64."""
        x = ((np.asarray(images, dtype=np.float32) - self.mean) / self.std).reshape(-1, 1, 28, 28)
        logits = np.asarray(self._logits(x.astype(np.float32)), dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


def load_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    """A run directory, a .safetensors checkpoint, or an exported .onnx or .pt2 file -> a
    Predictor."""
    if str(path).endswith(".onnx"):
        return Predictor.from_onnx(path)
    if str(path).endswith(".pt2"):
        return Predictor.from_pt2(path)
    from mlplab.io.checkpoint import load_checkpoint

    return Predictor.from_checkpoint(load_checkpoint(path, device))


@dataclass(frozen=True)
class Prediction:
    """The class probabilities for one image, best first in `top`."""

    name: str
    probs: list[float]
    top: list[tuple[str, float]]
    input: np.ndarray  # (28, 28) in [0, 1]: what the model saw

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "top": [{"class": c, "probability": p} for c, p in self.top],
            "probabilities": self.probs,
        }


def predict(
    model, images: list, top_k: int = 3, names: list[str] | None = None
) -> list[Prediction]:
    """Class probabilities for images (paths, bytes, PIL images or arrays).

    Args:
        model: a Predictor, a Checkpoint (from load_checkpoint), or a path to a run
            directory, a .safetensors checkpoint, or an exported .onnx or .pt2 model.
        images: the images; each is prepared as MNIST digits were.
        top_k: how many classes to list in each prediction's `top`.
        names: how to call each image in errors and results (default: its path or index).
    Returns:
        One Prediction per image, in order. A bad image raises ImageError naming it.
    """
    if isinstance(model, (str, Path)):
        model = load_predictor(model)
    elif not isinstance(model, Predictor):
        model = Predictor.from_checkpoint(model)
    names = names or [
        str(img) if isinstance(img, (str, Path)) else f"image {i}" for i, img in enumerate(images)
    ]
    inputs = np.stack([preprocess(img, n) for img, n in zip(images, names, strict=True)])
    probs = model.probabilities(inputs)
    k = min(top_k, probs.shape[1])
    out = []
    for name, p, inp in zip(names, probs, inputs, strict=True):
        best = np.argsort(-p, kind="stable")[:k]
        out.append(
            Prediction(name, p.tolist(), [(model.classes[i], float(p[i])) for i in best], inp)
        )
    return out
