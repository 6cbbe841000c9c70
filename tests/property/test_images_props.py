"""Image preprocessing on every PIL mode, size, content and container: a (28, 28) input in
[0, 1] that does not depend on how the same picture was stored, or an ImageError naming
the image; never another exception."""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlplab.use.predict import MAX_SIDE, ImageError, preprocess


def examples(n: int) -> settings:
    """n examples under the ci profile, as many times more as the profile in use asks."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(n * scale)))


NAME = "digit.png"
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"]
# What each container can hold, by Pillow's writers; None: the PIL image itself.
FORMATS = {
    "1": [None, "PNG", "TIFF", "BMP", "GIF"],
    "L": [None, "PNG", "TIFF", "BMP", "GIF", "JPEG", "WEBP"],
    "LA": [None, "PNG", "TIFF"],
    "P": [None, "PNG", "TIFF", "BMP", "GIF"],
    "RGB": [None, "PNG", "TIFF", "BMP", "JPEG", "WEBP"],
    "RGBA": [None, "PNG", "TIFF", "WEBP"],
    "I;16": [None, "PNG", "TIFF"],
    "I": [None, "TIFF"],
    "F": [None, "TIFF"],
}
LOSSLESS_SAME = ("L", "LA", "RGB", "RGBA", "I;16", "I", "F")  # store exactly what L holds


def mostly(usual, *others, weight: int = 3):
    return st.integers(0, weight).flatmap(lambda i: usual if i else st.one_of(*others))


SIDE = mostly(st.integers(1, 48), st.sampled_from([1, 2, 3, MAX_SIDE]))


@st.composite
def pictures(draw) -> np.ndarray:
    """A uint8 grayscale picture: blank white or black, noise, or a bar of ink, either
    dark on light or light on dark."""
    w, h = draw(SIDE), draw(SIDE)
    if w * h > 64 * 64:  # a strip along the limit: keep the other side thin
        w, h = (w, min(h, 3)) if w >= h else (min(w, 3), h)
    kind = draw(st.sampled_from(["white", "black", "noise", "bar", "bar"]))
    if kind == "noise":
        seed = draw(st.integers(0, 2**16))
        return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    light = kind == "white" or (kind == "bar" and draw(st.booleans()))
    img = np.full((h, w), 255 if light else 0, dtype=np.uint8)
    if kind == "bar":
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
        img[y0:y1, x0:x1] = draw(st.integers(0, 120)) if light else draw(st.integers(135, 255))
    return img


def as_mode(gray: np.ndarray, mode: str, alpha: str = "opaque") -> Image.Image:
    """The same picture in another mode; alpha modes get opaque, transparent or ink alpha."""
    base = Image.fromarray(gray, "L")
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(gray.astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(gray.astype(np.float32) / 255)
    image = base.convert(mode)
    if mode in ("LA", "RGBA") and alpha != "opaque":
        a = np.zeros_like(gray) if alpha == "transparent" else gray
        image.putalpha(Image.fromarray(a, "L"))
    return image


def stored(image: Image.Image, fmt: str | None):
    if fmt is None:
        return image
    out = io.BytesIO()
    image.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


def check_input(x: np.ndarray) -> None:
    assert x.shape == (28, 28) and x.dtype == np.float64
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0


@st.composite
def stored_pictures(draw):
    gray, mode = draw(pictures()), draw(st.sampled_from(MODES))
    alpha = draw(st.sampled_from(["opaque", "transparent", "ink"])) if "A" in mode else "opaque"
    fmt = draw(st.sampled_from(FORMATS[mode]))
    return gray, mode, alpha, fmt


@examples(200)
@given(stored_pictures())
@example((np.full((2, 1), 135, dtype=np.uint8), "1", "opaque", None))  # the deep run's find
def test_every_mode_and_container_gives_a_valid_input(clean, case):
    gray, mode, alpha, fmt = case
    source = stored(as_mode(gray, mode, alpha), fmt)
    x = clean(preprocess, source, NAME, names=(NAME,))
    assert x is not None, "a picture Pillow wrote was refused"
    check_input(x)
    # Mode 1 dithers a uniform grey into dots; only black or white stays uniform.
    uniform = gray.min() == gray.max() and (mode != "1" or gray.min() in (0, 255))
    blank = uniform or alpha == "transparent"
    if blank and gray.size > 1:
        assert not x.any(), "a blank picture gave ink"


@examples(150)
@given(pictures(), st.sampled_from(LOSSLESS_SAME), st.booleans())
def test_the_same_picture_in_any_lossless_mode_gives_the_same_input(gray, mode, as_file):
    fmt = ("PNG" if "PNG" in FORMATS[mode] else "TIFF") if as_file else None
    want = preprocess(Image.fromarray(gray, "L"))
    got = preprocess(stored(as_mode(gray, mode), fmt))
    # float32 pixels (mode F) may round the other way, by a step before and after the resize
    assert np.abs(got - want).max() <= 2 / 255 + 1e-9, f"mode {mode} changed the input"


@examples(100)
@given(pictures())
def test_alpha_ink_on_a_transparent_page_reads_as_light_ink_on_dark(gray):
    """Ink drawn as alpha (a canvas export) gives what the same ink as light pixels gives."""
    rgba = np.zeros((*gray.shape, 4), dtype=np.uint8)
    rgba[..., 3] = gray
    if gray.min() == 255:  # fully opaque: no transparency, so the colour (black) counts
        return
    want = preprocess(Image.fromarray(gray, "L").convert("L"))
    got = preprocess(Image.fromarray(rgba, "RGBA"))
    if np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])) <= 127:
        assert np.abs(got - want).max() <= 1e-6


@examples(60)
@given(st.lists(pictures(), min_size=2, max_size=3), st.sampled_from(["GIF", "PNG"]))
def test_animated_images_use_their_first_frame(frames, fmt):
    size = frames[0].shape[::-1]
    images = [Image.fromarray(f, "L").resize(size) for f in frames]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    first = Image.open(io.BytesIO(out.getvalue()))
    first.seek(0)
    want = preprocess(first.convert("L").copy())
    assert np.array_equal(preprocess(out.getvalue(), NAME), want)


def png(gray: np.ndarray) -> bytes:
    return stored(Image.fromarray(gray), "PNG")


@examples(200)
@given(st.one_of(st.binary(max_size=200), pictures().map(png)), st.data())
def test_damaged_or_random_bytes_are_image_errors(clean, raw, data):
    if raw[:4] == b"\x89PNG":
        cut = data.draw(st.integers(0, len(raw) - 1))
        flipped = raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1 :]
        raw = raw[:cut] if data.draw(st.booleans()) else flipped
    x = clean(preprocess, raw, NAME, names=(NAME,))
    if x is not None:
        check_input(x)


ARRAY_DTYPES = ["uint8", "uint16", "int32", "int64", "float32", "float64", "bool"]
ARRAY_DTYPES += ["complex64", "U1", "O"]
FILLS = {"zeros": 0, "ones": 1, "full-range": 255, "negative": -5, "huge": 1e30, "nan": np.nan}


@examples(200)
@given(
    st.sampled_from(ARRAY_DTYPES),
    st.lists(mostly(st.integers(1, 30), st.sampled_from([0, 3, 4, 784])), max_size=4),
    st.sampled_from(sorted(FILLS)),
)
@example("float64", [0, 0], "zeros")
@example("U1", [3, 3], "zeros")
def test_any_array_gives_a_valid_input_or_an_image_error(clean, dtype, shape, fill):
    while math.prod(shape) > 1 << 20:  # what the test itself can allocate quickly
        shape = [*shape[:-1], 1] if shape[-1] != 1 else shape[:-1]
    if dtype in ("U1", "O"):
        arr = np.full(shape, "a", dtype=dtype)
    else:
        with np.errstate(all="ignore"):
            arr = np.full(shape, FILLS[fill]).astype(dtype)
    x = clean(preprocess, arr, "image 0", names=("image 0",))
    if x is not None:
        check_input(x)


# Regression tests for what the properties found.


def test_a_16_bit_digit_is_not_clipped_to_white():
    gray = np.zeros((40, 40), dtype=np.uint8)
    gray[8:32, 17:23] = 255
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # convert("L") clipped it
    assert np.array_equal(preprocess(sixteen), preprocess(Image.fromarray(gray)))


@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.float64])
def test_wide_arrays_on_a_white_page_are_inverted_like_uint8(dtype):
    gray = np.full((40, 40), 255, dtype=np.uint8)
    gray[8:32, 17:23] = 0
    wide = gray.astype(dtype) * (257 if dtype == np.uint16 else 1)
    x = preprocess(wide)  # was blank: 1 - 255 is negative ink
    assert np.array_equal(x, preprocess(gray)) and x.max() > 0.9


def test_a_uniform_grey_picture_is_blank():
    # The deep profile's find: grey 135 was inverted to 0.47 everywhere, a solid ink box.
    assert not preprocess(np.full((1, 2), 135, dtype=np.uint8)).any()
    assert not preprocess(np.full((30, 30), 200, dtype=np.uint8)).any()


def test_grey_paper_is_background_like_white_paper():
    page = np.full((40, 40), 255, dtype=np.uint8)
    page[8:32, 17:23] = 0
    grey = np.where(page == 255, 200, 0).astype(np.uint8)  # a scan of off-white paper
    assert np.array_equal(preprocess(grey), preprocess(page))


def test_a_border_whose_median_is_exactly_half_decides_alike_in_float32():
    # The deep profile's find: noise whose border median is 127.5 / 255 was inverted as
    # float32 (mode F) pixels and not as the same 8-bit ones.
    gray = np.random.default_rng(9).integers(0, 256, (20, 40), dtype=np.uint8)
    gray[[0, -1], :] = np.arange(40) % 2 + 127  # 127, 128, 127, ... all round the border
    gray[:, [0, -1]] = np.arange(20)[:, None] % 2 + 127
    as_float = Image.fromarray(gray.astype(np.float32) / 255)
    assert np.abs(preprocess(as_float) - preprocess(Image.fromarray(gray))).max() <= 2 / 255


def test_a_lab_tiff_is_an_image_error():
    out = io.BytesIO()
    Image.new("LAB", (5, 5)).save(out, "TIFF")
    with pytest.raises(ImageError, match=f"^{NAME}: cannot read a LAB image as grayscale: "):
        preprocess(out.getvalue(), NAME)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.new("L", (0, 0)), "image is 0x0 px: it has no pixels"),
        (np.zeros((0, 5)), "image is 5x0 px: it has no pixels"),
        (np.full((3, 3), "a"), "array of dtype <U1 is not an image"),
        (np.zeros((3, 3), dtype=complex), "array of dtype complex128 is not an image"),
        (np.zeros((1, MAX_SIDE + 1)), f"image is {MAX_SIDE + 1}x1 px; the limit is"),
        (Image.new("La", (4, 4)), "cannot read a La image as grayscale"),
    ],
)
def test_found_in_memory_cases_are_image_errors(image, message):
    with pytest.raises(ImageError, match=f"^{NAME}: " + message.replace("(", r"\(")):
        preprocess(image, NAME)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels and holds none: Pillow opens it lazily."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b""))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_a_png_claiming_a_huge_size_is_refused_before_decoding():
    with pytest.raises(ImageError, match=f"^{NAME}: image is too large; the limit is 4096x4096$"):
        preprocess(png_header_only(100_000, 100_000), NAME)  # Pillow's bomb check
    with pytest.raises(ImageError, match=f"^{NAME}: image is 5000x5000 px; the limit is"):
        preprocess(png_header_only(5000, 5000), NAME)


def test_the_largest_image_allowed_is_prepared():
    gray = np.zeros((MAX_SIDE, MAX_SIDE), dtype=np.uint8)
    gray[1000:3000, 1900:2100] = 255
    x = preprocess(Image.fromarray(gray), NAME)
    check_input(x)
    assert x.max() > 0.9


def test_a_palette_image_with_a_transparent_index_uses_alpha_as_ink():
    gray = np.full((40, 40), 255, dtype=np.uint8)
    gray[8:32, 17:23] = 0
    p = Image.fromarray(gray).convert("P")
    p.info["transparency"] = p.getpixel((0, 0))  # the white page is see-through
    png = stored(p, "PNG")
    assert Image.open(io.BytesIO(png)).info.get("transparency") is not None
    x = preprocess(png, NAME)
    assert np.array_equal(x, preprocess(Image.fromarray(255 - gray))) and x.max() > 0.9
