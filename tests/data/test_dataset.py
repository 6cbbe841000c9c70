"""data.py: normalisation, pixel statistics, stratified splits, batches, and loading."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import mlplab.data.registry
from mlplab.data.dataset import Dataset, Split, load_dataset, stratified_split
from mlplab.data.idx import encode_idx, md5, write_idx
from mlplab.data.registry import FILE_NAMES, ROLES, DatasetInfo, FileInfo
from mlplab.errors import DataError
from mlplab.nn.normalization import TUTORIAL_NORM, Normalization
from mlplab.nn.normalization import value_stats as pixel_stats

# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, std", [(0.0, 1.0), TUTORIAL_NORM, (0.1307, 0.3081), (0.2860, 0.3530)]
)
def test_normalization_endpoints(mean, std):
    x = torch.zeros(3, 28, 28, dtype=torch.uint8)
    x[:, 0, 0] = 255
    out = Normalization(mean, std).apply(x)
    assert out.shape == (3, 784)
    assert out.dtype == torch.float32
    # The float64 value rounded once to float32.
    low = torch.tensor((0.0 - mean) / std, dtype=torch.float64).float()
    high = torch.tensor((1.0 - mean) / std, dtype=torch.float64).float()
    assert torch.equal(out[:, 1:], low.expand(3, 783))
    assert torch.equal(out[:, 0], high.expand(3))


def test_normalization_matches_float64_for_every_pixel_value():
    mean, std = 0.1307, 0.3081
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    out = Normalization(mean, std).apply(x).double()
    want = (torch.arange(256, dtype=torch.float64) / 255.0 - mean) / std
    torch.testing.assert_close(out[0], want, rtol=0, atol=4e-7)


def test_tutorial_normalization_spans_minus_one_to_one():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 256)
    out = Normalization(*TUTORIAL_NORM).apply(x)
    assert out.min().item() == -1.0
    assert out.max().item() == 1.0
    assert out[0, 0].item() == -1.0 and out[0, 255].item() == 1.0
    assert torch.all(out[0, 1:] > out[0, :-1])


def test_normalization_flattens_any_image_shape_and_keeps_input():
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    before = x.clone()
    out = Normalization(0.5, 0.25).apply(x)
    assert out.shape == (5, 784)
    assert torch.equal(x, before)
    torch.testing.assert_close(
        out.double(), (x.reshape(5, 784).double() / 255 - 0.5) / 0.25, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan")])
def test_normalization_rejects_bad_std(std):
    with pytest.raises(DataError, match="normalization std must be positive"):
        Normalization(0.5, std)


# --- pixel statistics ---------------------------------------------------------------------


def test_pixel_stats_on_mnist_train(mnist):
    mean, std = pixel_stats(mnist.train.x)
    assert round(mean, 4) == 0.1307
    assert round(std, 4) == 0.3081
    # Direct float64 reference, two-pass over the 256-bin histogram (exact counts).
    counts = np.bincount(mnist.train.x.numpy().ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    assert n == 60_000 * 784
    ref_mean = (counts * values).sum() / n
    ref_std = np.sqrt((counts * (values - ref_mean) ** 2).sum() / n)
    assert mean == pytest.approx(ref_mean, rel=1e-12, abs=0)
    assert std == pytest.approx(ref_std, rel=1e-12, abs=0)


def test_pixel_stats_small_exact():
    x = torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8)
    assert pixel_stats(x) == pytest.approx((0.5, 0.5), rel=1e-15)
    constant = torch.full((4, 3, 3), 51, dtype=torch.uint8)
    mean, std = pixel_stats(constant)
    assert mean == pytest.approx(0.2, rel=1e-15)
    assert std == 0.0


# --- stratified split ---------------------------------------------------------------------


def _check_split(y: torch.Tensor, size: int, seed: int):
    keep, held = stratified_split(y, size, seed)
    n = len(y)
    assert len(held) == size and len(keep) == n - size
    assert keep.dtype == torch.int64 and held.dtype == torch.int64
    both = torch.cat([keep, held])
    assert torch.equal(both.sort().values, torch.arange(n))  # disjoint, and covers all
    classes, counts = torch.unique(y, return_counts=True)
    held_counts = torch.stack([(y[held] == c).sum() for c in classes])
    quota = counts.double() * size / n
    assert torch.all((held_counts.double() - quota).abs() < 1.0)
    return keep, held


@pytest.mark.parametrize("size", [1, 5_000, 12_345, 59_999])
def test_stratified_split_on_mnist_labels(mnist, size):
    _check_split(mnist.train.y, size, seed=0)


def test_stratified_split_uneven_classes():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 15 + [3] * 4 + [4] * 1)
    y = y[torch.randperm(len(y))]
    for size in (1, 7, 33, 50, 99):
        _check_split(y, size, seed=size)


def test_stratified_split_is_seeded(mnist):
    y = mnist.train.y
    keep_a, held_a = stratified_split(y, 6_000, seed=1)
    keep_b, held_b = stratified_split(y, 6_000, seed=1)
    _, held_c = stratified_split(y, 6_000, seed=2)
    assert torch.equal(held_a, held_b) and torch.equal(keep_a, keep_b)
    assert not torch.equal(held_a, held_c)
    # A different seed draws a mostly different set, not a shuffle of the same one.
    overlap = np.intersect1d(held_a.numpy(), held_c.numpy()).size
    assert overlap < 6_000 * 0.3


@pytest.mark.parametrize("size", [0, -1, 100, 101])
def test_stratified_split_bad_sizes(size):
    y = torch.arange(100) % 10
    with pytest.raises(DataError, match=re.escape(f"between 1 and 99, got {size}")):
        stratified_split(y, size, seed=0)


# --- loading ------------------------------------------------------------------------------


def test_load_real_mnist(mnist):
    assert mnist.name == "mnist"
    assert mnist.num_classes == 10
    assert mnist.classes == tuple("0123456789")
    assert len(mnist.train) == 60_000 and len(mnist.test) == 10_000
    for split in (mnist.train, mnist.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (28, 28)
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split.x),)
        assert int(split.y.min()) == 0 and int(split.y.max()) == 9
        assert torch.equal(torch.unique(split.y), torch.arange(10))
    assert mnist.test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(mnist.train.x.max()) == 255 and int(mnist.train.x.min()) == 0
    assert set(mnist.files) == set(ROLES)


def test_split_subset_and_to():
    split = Split(torch.arange(20 * 784).reshape(20, 28, 28).to(torch.uint8), torch.arange(20))
    sub = split.subset(torch.tensor([3, 1, 4]))
    assert len(sub) == 3
    assert sub.y.tolist() == [3, 1, 4]
    assert torch.equal(sub.x, split.x[[3, 1, 4]])
    moved = split.to("cpu")
    assert torch.equal(moved.x, split.x) and torch.equal(moved.y, split.y)


def _fake_dataset(tmp_path, monkeypatch, arrays: dict[str, np.ndarray]) -> str:
    """Write four IDX files under tmp_path/fake and register them, checksums included."""
    folder = tmp_path / "fake"
    md5s = {}
    for role, values in arrays.items():
        write_idx(folder / FILE_NAMES[role], values)
        md5s[role] = md5(encode_idx(values))
    info = DatasetInfo(
        name="fake",
        classes=("zero", "one", "two"),
        files={r: FileInfo(FILE_NAMES[r], md5s[r]) for r in ROLES},
        mirrors=(),
        torchvision_dir="Fake",
    )
    monkeypatch.setitem(mlplab.data.registry.REGISTRY, "fake", info)
    return "fake"


def _load_fake(tmp_path):
    return load_dataset(
        "fake", cache_dir=tmp_path, download=False, torchvision_roots=(), system_roots=()
    )


def _arrays(n_train: int, n_train_labels: int, n_test: int = 4, n_test_labels: int = 4):
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 3, n_train_labels, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 3, n_test_labels, dtype=np.uint8),
    }


def test_load_fake_dataset(tmp_path, monkeypatch):
    arrays = _arrays(6, 6)
    _fake_dataset(tmp_path, monkeypatch, arrays)
    ds = _load_fake(tmp_path)
    assert ds.classes == ("zero", "one", "two") and ds.num_classes == 3
    assert torch.equal(ds.train.x, torch.from_numpy(arrays["train_images"]))
    assert torch.equal(ds.test.y, torch.from_numpy(arrays["test_labels"]).long())
    assert ds.train.y.dtype == torch.int64
    assert ds.files["train_images"] == tmp_path / "fake" / FILE_NAMES["train_images"]


def test_images_and_labels_of_different_lengths(tmp_path, monkeypatch):
    _fake_dataset(tmp_path, monkeypatch, _arrays(6, 5))
    message = (
        f"{FILE_NAMES['train_images']} has 6 images but {FILE_NAMES['train_labels']} has 5 labels"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        _load_fake(tmp_path)


def test_test_split_length_mismatch_names_test_files(tmp_path, monkeypatch):
    _fake_dataset(tmp_path, monkeypatch, _arrays(6, 6, n_test=3, n_test_labels=4))
    message = f"{FILE_NAMES['test_images']} has 3 images but {FILE_NAMES['test_labels']} has 4"
    with pytest.raises(DataError, match=re.escape(message)):
        _load_fake(tmp_path)


def test_label_out_of_range(tmp_path, monkeypatch):
    arrays = _arrays(6, 6)
    arrays["train_labels"][2] = 7
    _fake_dataset(tmp_path, monkeypatch, arrays)
    path = tmp_path / "fake" / FILE_NAMES["train_labels"]
    with pytest.raises(DataError, match=re.escape(f"{path}: label 7 is out of range for 3")):
        _load_fake(tmp_path)


def test_images_with_wrong_rank(tmp_path, monkeypatch):
    arrays = _arrays(6, 6)
    arrays["train_images"] = arrays["train_images"].reshape(6, 784)
    _fake_dataset(tmp_path, monkeypatch, arrays)
    path = tmp_path / "fake" / FILE_NAMES["train_images"]
    message = f"{path}: images must have 3 dimensions (N, H, W), got (6, 784)"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        _load_fake(tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="^unknown dataset 'cifar'; choose one of: mnist"):
        load_dataset("cifar", download=False)


# --- in-memory arrays ---------------------------------------------------------------------


def test_from_arrays_encodes_labels_by_sorted_class():
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    data = Dataset.from_arrays(x, ["b", "a", "c", "a"], x[:2], ["c", "b"])
    assert data.name == "arrays" and data.classes == ("a", "b", "c")
    assert data.train.y.tolist() == [1, 0, 2, 0] and data.test.y.tolist() == [2, 1]
    assert data.train.x.dtype == torch.float32 and data.num_features == 3
    assert data.stats is None and data.files == {}
    pixels = Dataset.from_arrays(np.zeros((2, 28, 28), np.uint8), [0, 1], classes=("0", "1"))
    assert pixels.train.x.dtype == torch.uint8 and pixels.num_features == 784


@pytest.mark.parametrize(
    "x, y, x_test, y_test, message",
    [
        (np.zeros(5), [0] * 5, None, None, r"^x: expected \(samples, features\), got shape \(5,\)"),
        (np.zeros((5, 2)), [0] * 4, None, None, r"^y: expected 5 labels"),
        (np.array([["a", "b"]]), [0], None, None, r"^x: expected numbers, got dtype <U1"),
        (np.full((2, 2), np.nan), [0, 1], None, None, r"^x: has NaN or infinite values"),
        (np.zeros((2, 2)), [0, 1], np.zeros((1, 3)), [0], r"^x_test: has 3 features but x has 2"),
        (np.zeros((2, 2)), [0, 1], np.zeros((1, 2)), [7], r"^y_test: label '7' is not one of"),
        (np.zeros((2, 2)), [0, 1], np.zeros((1, 2)), None, r"^x_test and y_test: give both"),
    ],
)
def test_from_arrays_names_what_is_wrong(x, y, x_test, y_test, message):
    with pytest.raises(DataError, match=message):
        Dataset.from_arrays(x, y, x_test, y_test)
