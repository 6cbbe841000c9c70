"""Predicting on image files and in-memory images, prepared the way MNIST was made."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mlplab.io.checkpoint import load_checkpoint
from mlplab.use.predict import ImageError, Predictor, mnistify, predict, preprocess


def as_photo(digit: np.ndarray, size=(300, 260), box=(40, 30, 240, 230), mode="RGB"):
    """An MNIST digit as a scanned photo: dark ink on white, enlarged, off centre, in colour."""
    ink = Image.fromarray(255 - digit).resize((box[2] - box[0], box[3] - box[1]), Image.BILINEAR)
    page = Image.new("L", size, 255)
    page.paste(ink, box[:2])
    return page.convert(mode)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(img.shape)
    return (ys * img).sum() / img.sum(), (xs * img).sum() / img.sum()


def test_preprocess_matches_mnist_geometry(mnist):
    digit = mnist.test.x[0].numpy()
    x = preprocess(as_photo(digit))
    assert x.shape == (28, 28) and x.dtype == np.float64
    assert 0.0 <= x.min() and x.max() <= 1.0
    rows, cols = np.nonzero(x > 0.1)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)  # longer side scaled to 20 px
    cy, cx = centre_of_mass(x)
    assert abs(cy - 14) < 0.6 and abs(cx - 14) < 0.6
    # the prepared photo looks like the original MNIST digit
    original = digit / 255.0
    assert np.corrcoef(x.ravel(), original.ravel())[0, 1] > 0.8


def test_light_on_dark_and_dark_on_light_give_the_same_input(mnist):
    digit = mnist.test.x[1].numpy()
    light = preprocess(Image.fromarray(digit).resize((112, 112)))
    dark = preprocess(Image.fromarray(255 - digit).resize((112, 112)))
    assert np.abs(light - dark).max() <= 1 / 255 + 1e-9  # one uint8 step in the resize


def test_transparent_background_uses_alpha_as_ink():
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)
    rgba[20:80, 45:55] = (30, 30, 200, 255)  # a blue "1" on a transparent page
    x = preprocess(Image.fromarray(rgba, "RGBA"))
    assert x.max() == pytest.approx(1.0, abs=0.05)
    rows, cols = np.nonzero(x > 0.5)
    assert np.ptp(rows) + 1 >= 19 and np.ptp(cols) + 1 <= 6  # tall and thin, as drawn


def test_blank_image_gives_an_empty_input():
    assert not mnistify(np.zeros((50, 50))).any()


def test_array_inputs():
    img = np.zeros((28, 28), dtype=np.uint8)
    img[5:23, 12:16] = 255
    for form in (img, img.astype(np.float32) / 255, img.reshape(784), np.stack([img] * 3, axis=-1)):
        x = preprocess(form)
        assert x.shape == (28, 28) and x.max() > 0.9
    with pytest.raises(ImageError, match=r"array of shape \(3, 4, 5, 6\) is not an image"):
        preprocess(np.zeros((3, 4, 5, 6)))
    with pytest.raises(ImageError, match="NaN"):
        preprocess(np.full((28, 28), np.nan))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_predicts_real_digits_from_files(fmt, mnist, trained_run, tmp_path):
    paths, labels = [], []
    for i in range(30):
        path = tmp_path / f"digit{i}.{fmt.lower()}"
        as_photo(mnist.test.x[i].numpy(), mode="L" if fmt == "GIF" else "RGB").save(path, fmt)
        paths.append(path)
        labels.append(str(int(mnist.test.y[i])))
    results = predict(trained_run, paths, top_k=3)
    assert [r.name for r in results] == [str(p) for p in paths]
    correct = sum(r.top[0][0] == label for r, label in zip(results, labels, strict=True))
    assert correct >= 26  # a ~96% model on re-photographed digits
    for r in results:
        assert sum(r.probs) == pytest.approx(1.0)
        assert len(r.top) == 3 and r.top[0][1] >= r.top[1][1] >= r.top[2][1]


def test_gif_uses_the_first_frame(mnist, trained_run, tmp_path):
    first = as_photo(mnist.test.x[0].numpy(), mode="L")  # a 7
    second = as_photo(mnist.test.x[1].numpy(), mode="L")  # a 2
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100)
    assert predict(trained_run, [path])[0].top[0][0] == "7"


def test_api_accepts_pil_arrays_paths_and_a_checkpoint(mnist, trained_run, tmp_path):
    digit = mnist.test.x[0].numpy()
    path = tmp_path / "seven.png"
    as_photo(digit).save(path)
    ckpt = load_checkpoint(trained_run)
    for model in (trained_run, ckpt, Predictor.from_checkpoint(ckpt)):
        results = predict(model, [as_photo(digit), digit, path])
        assert [r.top[0][0] for r in results] == ["7", "7", "7"]
    # the prepared MNIST digit itself is (nearly) what the model saw
    assert np.abs(results[1].input - preprocess(digit)).max() == 0


def test_bad_files_are_named(trained_run, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("L", (4097, 8)).save(huge)
    with pytest.raises(ImageError, match=r"empty\.png: empty file"):
        predict(trained_run, [empty])
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        predict(trained_run, [text])
    with pytest.raises(ImageError, match=r"huge\.png: image is 4097x8 px; the limit is 4096"):
        predict(trained_run, [huge])
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        predict(trained_run, [tmp_path / "missing.png"])
