"""Batch augmentation: shifts move each image whole, affine jitter stays near the original."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlplab.config import TrainConfig
from mlplab.data.augment import _elastic_displacement, augment
from mlplab.errors import ConfigError
from mlplab.nn.normalization import Normalization
from mlplab.training.trainer import train

NORM = Normalization(0.1307, 0.3081)
BLANK = -NORM.mean / NORM.std


@pytest.fixture(scope="module")
def batch(mnist) -> torch.Tensor:
    return NORM.apply(mnist.train.x[:64])


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x (784,) moved dy rows down and dx columns right, blank where it uncovers."""
    padded = F.pad(x.view(28, 28), (2, 2, 2, 2), value=BLANK)
    return padded[2 - dy : 30 - dy, 2 - dx : 30 - dx].reshape(784)


def test_none_is_the_batch_itself(batch):
    assert augment(batch, "none", BLANK) is batch


def test_shift_moves_each_image_whole_by_at_most_two_pixels(batch):
    g = torch.Generator().manual_seed(0)
    out = augment(batch, "shift", BLANK, g)
    assert out.shape == batch.shape
    moves = set()
    for original, moved in zip(batch, out, strict=True):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(_shifted(original, dy, dx), moved)
        ]
        assert found, "an output image is not a shift of its input"
        moves.add(found[0])
    assert len(moves) > 5  # each image draws its own shift


def test_affine_keeps_blank_background_and_stays_close(batch):
    g = torch.Generator().manual_seed(0)
    out = augment(batch, "affine", BLANK, g)
    assert out.shape == batch.shape and torch.isfinite(out).all()
    blank = torch.full((4, 784), BLANK)
    torch.testing.assert_close(augment(blank, "affine", BLANK, g), blank)
    # small rotations, scalings and shifts: the image moves but keeps most of its ink
    ink_in = (batch - BLANK).sum(1)
    ink_out = (out - BLANK).sum(1)
    assert ((ink_out / ink_in - 1).abs() < 0.3).all()
    assert not torch.allclose(out, batch)
    corr = F.cosine_similarity(out - BLANK, batch - BLANK, dim=1)
    assert corr.median() > 0.5


KINDS = ("shift", "affine", "elastic", "affine-elastic")


@pytest.mark.parametrize("kind", KINDS)
def test_augmentation_is_seeded(batch, kind):
    a = augment(batch, kind, BLANK, torch.Generator().manual_seed(3))
    b = augment(batch, kind, BLANK, torch.Generator().manual_seed(3))
    c = augment(batch, kind, BLANK, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", KINDS)
def test_a_share_of_a_batch_is_jittered_as_in_the_whole_batch(batch, kind):
    whole = augment(batch, kind, BLANK, torch.Generator().manual_seed(5))
    share = augment(batch[20:40], kind, BLANK, torch.Generator().manual_seed(5), part=(20, 64))
    torch.testing.assert_close(share, whole[20:40], rtol=0, atol=1e-6)


def test_elastic_distortion_leaves_the_background_blank(batch):
    """A pixel can only take ink from within its displacement (plus one pixel of bilinear
    reach): every pixel farther than that from all ink of its image stays exactly blank."""
    out = augment(batch, "elastic", BLANK, torch.Generator().manual_seed(7))
    field = _elastic_displacement(torch.Generator().manual_seed(7), slice(0, 64), 64, batch)
    reach = int((field.abs().amax() * 28 / 2).ceil()) + 1  # grid units -> pixels
    assert 2 <= reach <= 10  # Simard's sigma 4, alpha 34 moves pixels by a few
    ink = (batch != BLANK).float().view(64, 1, 28, 28)
    near_ink = F.max_pool2d(ink, 2 * reach + 1, stride=1, padding=reach).view(64, 784) > 0
    far = ~near_ink
    assert far.sum() > 64 * 100  # the test has background to look at
    assert torch.equal(out[far], torch.full_like(out[far], BLANK))
    torch.testing.assert_close(
        augment(torch.full((4, 784), BLANK), "elastic", BLANK), torch.full((4, 784), BLANK)
    )


def test_elastic_distortion_moves_pixels_but_keeps_the_digit(batch):
    out = augment(batch, "elastic", BLANK, torch.Generator().manual_seed(8))
    assert not torch.allclose(out, batch)
    # strokes stretch and thin locally, so the ink moves more than under affine jitter
    change = ((out - BLANK).sum(1) / (batch - BLANK).sum(1) - 1).abs()
    assert change.median() < 0.2 and change.max() < 0.6
    corr = F.cosine_similarity(out - BLANK, batch - BLANK, dim=1)
    assert corr.median() > 0.6


def test_training_with_augmentation_still_learns(mnist):
    config = TrainConfig(
        preset="c", batch_size=128, iterations=400, normalization="dataset", augment="affine"
    )
    result = train(config, mnist, "cpu")
    assert result.test.accuracy > 94.0
    plain = train(config.replace(augment="none"), mnist, "cpu")
    # same seed and batches; only the jitter differs, so the runs must differ
    assert result.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_unknown_augmentation_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"^augment: must be one of none, shift, affine, elastic, affine-elastic"
    ):
        TrainConfig(augment="flip")
