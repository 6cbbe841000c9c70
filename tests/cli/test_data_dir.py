"""An explicit data folder is never silently passed over: every kind of corrupt file, made from
copies of the real MNIST test-set files, is an error that names the file and what is wrong,
through the API (locate, load_dataset) and the CLI (`mlplab data info`, `mlplab train`, fails
before training); mlplab's own sources fall through with one warning line each.

The untouched files of each corrupt folder are symlinks to the real cached ones, so a case
costs a 10k-image copy at most. CLI cases run in-process through cli.main (milliseconds); a
few run through `python -m mlplab` as well, to show the real entry point's one line.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlplab import cli
from mlplab.cli.common import ENV_DATA
from mlplab.data.dataset import load_dataset
from mlplab.data.idx import md5
from mlplab.data.registry import FILE_NAMES, get_info
from mlplab.data.sources import locate
from mlplab.errors import DataError

IMAGES, LABELS = FILE_NAMES["test_images"], FILE_NAMES["test_labels"]
TRAIN = ("train", "--preset", "c", "--iterations", "5", "--device", "cpu")


@pytest.fixture(scope="module")
def real() -> dict[str, Path]:
    """The real MNIST files, role -> path (make test fetches them before pytest runs)."""
    return locate("mnist", download=False)


def header(dims: tuple[int, ...], code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def raw(real, role: str) -> bytes:
    return gzip.open(real[role]).read() if real[role].suffix == ".gz" else real[role].read_bytes()


def corrupt(real, name: str) -> tuple[str, bytes]:
    """(file name to write, its bytes) for one corruption kind."""
    images, labels = raw(real, "test_images"), raw(real, "test_labels")
    body, label_body = images[16:], labels[8:]
    kinds = {
        "bad-magic": lambda: (IMAGES, b"\x12\x34" + images[2:]),
        "int32-dtype": lambda: (IMAGES, header((10000, 28, 28), 0x0C) + body),
        "wrong-dimensions": lambda: (IMAGES, header((10000, 56, 14)) + body),
        "dimensions-disagree-with-length": lambda: (IMAGES, header((10000, 28, 27)) + body),
        "truncated": lambda: (IMAGES, images[:-100]),
        "mismatched-counts": lambda: (LABELS, header((9999,)) + label_body[:-1]),
        "gzip-garbage": lambda: (f"{IMAGES}.gz", b"\x1f\x8bthis is not gzip at all"),
        "truncated-gzip": lambda: (
            f"{IMAGES}.gz",
            gzip.compress(images, compresslevel=1, mtime=0)[:-1000],
        ),
        "2^31-dimension": lambda: (IMAGES, header((1 << 31, 28, 28)) + body),
        "empty": lambda: (LABELS, b""),
        "label-out-of-range": lambda: (LABELS, labels[:8] + b"\x0a" + labels[9:]),
        "one-flipped-pixel": lambda: (
            IMAGES,
            images[:5000] + bytes([images[5000] ^ 1]) + images[5001:],
        ),
    }
    return kinds[name]()


def expected(name: str, path: Path) -> str:
    """The exact error for each kind: the file's path, then what is wrong."""
    flipped_md5 = None
    if name == "one-flipped-pixel":
        flipped_md5 = md5(path.read_bytes())
    return (
        f"{path}: "
        + {
            "bad-magic": "bad magic number 0x12340803: not an IDX file",
            "int32-dtype": "dtype code 0x0c (int32) is not supported; MNIST-family files are "
            "uint8 (0x08)",
            "wrong-dimensions": "images must be N x 28 x 28, got 10000x56x14",
            "dimensions-disagree-with-length": "has trailing bytes: dimensions 10000x28x27 need "
            "7560016 bytes, file has 7840016",
            "truncated": "truncated: dimensions 10000x28x28 need 7840016 bytes, file has 7839916",
            "mismatched-counts": f"{IMAGES} has 10000 images but {LABELS} has 9999 labels",
            "gzip-garbage": "corrupt gzip data: Unknown compression method",
            "truncated-gzip": "corrupt gzip data: Compressed file ended before the end-of-stream "
            "marker was reached",
            "2^31-dimension": f"truncated: dimensions 2147483648x28x28 need {16 + 784 * 2**31} "
            "bytes, file has 7840016",
            "empty": "too short for an IDX header (0 bytes)",
            "label-out-of-range": "label 10 is out of range for 10 classes",
            "one-flipped-pixel": f"md5 of the content is {flipped_md5}, expected "
            f"{get_info('mnist').files['test_images'].md5}",
        }[name]
    )


KINDS = (
    "bad-magic",
    "int32-dtype",
    "wrong-dimensions",
    "dimensions-disagree-with-length",
    "truncated",
    "mismatched-counts",
    "gzip-garbage",
    "truncated-gzip",
    "2^31-dimension",
    "empty",
    "label-out-of-range",
    "one-flipped-pixel",
)


def mnist_folder(folder: Path, real, replace: tuple[str, bytes] | None = None) -> Path:
    """folder with the four MNIST files (symlinks to the real ones), one of them replaced by
    a written file when asked; returns the path of the written file (or the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = folder
    for role, path in real.items():
        name = FILE_NAMES[role]
        if replace and replace[0].removesuffix(".gz") == name:
            written = folder / replace[0]
            written.write_bytes(replace[1])
        else:
            (folder / path.name).symlink_to(path)
    return written


@pytest.fixture(scope="module")
def folders(real, tmp_path_factory) -> dict[str, tuple[Path, Path, str]]:
    """kind -> (data folder, the corrupt file, the expected error), built once."""
    root = tmp_path_factory.mktemp("corrupt")
    made = {}
    for name in KINDS:
        data_dir = root / name.replace("^", "")
        bad = mnist_folder(data_dir / "mnist", real, corrupt(real, name))
        made[name] = (data_dir, bad, expected(name, bad))
    return made


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# The API


@pytest.mark.parametrize("kind", KINDS)
def test_locate_names_the_bad_file(folders, kind):
    data_dir, _, message = folders[kind]
    with pytest.raises(DataError) as e:
        locate("mnist", data_dir=data_dir, download=False)
    assert str(e.value) == message


@pytest.mark.parametrize("kind", ["bad-magic", "mismatched-counts", "2^31-dimension", "empty"])
def test_load_dataset_names_the_bad_file_even_when_downloads_are_allowed(folders, kind):
    # download=True: a download could "fix" the folder, and must not be tried.
    data_dir, bad, message = folders[kind]
    before = sorted(p.name for p in bad.parent.iterdir())
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=data_dir, download=True, mirrors=("http://127.0.0.1:9/",))
    assert str(e.value) == message
    assert sorted(p.name for p in bad.parent.iterdir()) == before


def test_a_good_explicit_folder_is_the_one_used(real, tmp_path):
    for layout in ("mnist", "MNIST/raw", "."):
        data_dir = tmp_path / layout.replace("/", "-")
        folder = mnist_folder(data_dir / layout, real)
        files = locate("mnist", data_dir=data_dir, download=False)
        assert {p.parent for p in files.values()} == {folder}


# The CLI, in-process


@pytest.mark.parametrize("kind", KINDS)
def test_data_info_fails_naming_the_file(folders, kind, capsys):
    data_dir, _, message = folders[kind]
    code, out, err = run_cli(capsys, "data", "info", "mnist", "--data-dir", data_dir)
    assert (code, out, err) == (1, "", f"mlplab: error: {message}\n")


@pytest.mark.parametrize("kind", KINDS)
def test_train_fails_before_training(folders, kind, capsys, tmp_path):
    data_dir, _, message = folders[kind]
    out_dir = tmp_path / "runs"
    code, out, err = run_cli(capsys, *TRAIN, "--data-dir", data_dir, "--out", out_dir)
    assert (code, out, err) == (1, "", f"mlplab: error: {message}\n")
    assert not out_dir.exists()  # no run directory: it stopped before training


def test_the_environment_variable_is_just_as_explicit(folders, capsys, monkeypatch, tmp_path):
    data_dir, _, message = folders["truncated"]
    monkeypatch.setenv(ENV_DATA, str(data_dir))
    code, out, err = run_cli(capsys, "data", "info", "mnist")
    assert (code, out, err) == (1, "", f"mlplab: error: {message}\n")
    code, out, err = run_cli(capsys, *TRAIN, "--out", tmp_path / "runs")
    assert (code, out, err) == (1, "", f"mlplab: error: {message}\n")


def test_a_data_dir_that_does_not_exist(capsys, monkeypatch, tmp_path):
    missing = tmp_path / "no-such-dir"
    code, out, err = run_cli(capsys, "data", "info", "mnist", "--data-dir", missing)
    assert (code, err) == (1, f"mlplab: error: --data-dir {missing}: no such folder\n")
    code, out, err = run_cli(capsys, *TRAIN, "--data-dir", missing, "--out", tmp_path / "r")
    assert (code, err) == (1, f"mlplab: error: data_dir {missing}: no such folder\n")
    monkeypatch.setenv(ENV_DATA, str(missing))
    code, out, err = run_cli(capsys, "data", "fetch", "mnist")
    assert (code, err) == (1, f"mlplab: error: {ENV_DATA} {missing}: no such folder\n")
    assert not missing.exists()


def test_data_info_reports_the_files_of_a_good_explicit_folder(real, capsys, tmp_path):
    folder = mnist_folder(tmp_path / "d" / "MNIST" / "raw", real)
    code, out, err = run_cli(
        capsys, "data", "info", "mnist", "--data-dir", tmp_path / "d", "--json", "--no-download"
    )
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert {Path(f["path"]).parent for f in report["files"].values()} == {folder}
    assert {f["checksum"] for f in report["files"].values()} == {"ok"}
    assert report["splits"]["test"]["count"] == 10000


# The real entry point


def test_python_m_mlplab_data_info_and_train(folders, cli, tmp_path):
    data_dir, _, message = folders["int32-dtype"]  # the example
    proc = cli("data", "info", "mnist", "--data-dir", str(data_dir), cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"mlplab: error: {message}\n")
    data_dir, _, message = folders["mismatched-counts"]
    out_dir = tmp_path / "runs"
    proc = cli(*TRAIN, "--data-dir", str(data_dir), "--out", str(out_dir), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"mlplab: error: {message}\n")
    assert not out_dir.exists()


def test_a_corrupt_cache_is_skipped_with_one_warning_line(folders, real, tmp_path):
    # HOME points the cache at a corrupt copy; ./data/MNIST/raw (torchvision's layout,
    # looked at next) holds a good one.
    _, bad, message = folders["bad-magic"]
    home = tmp_path / "home"
    cached = mnist_folder(home / ".cache/mlplab/mnist", real, (bad.name, bad.read_bytes()))
    good = mnist_folder(tmp_path / "data" / "MNIST" / "raw", real)
    proc = subprocess.run(
        [sys.executable, "-m", "mlplab", "data", "info", "mnist", "--json", "--no-download"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"mlplab: warning: {cached}: bad magic number 0x12340803: not an IDX file; "
        "skipped the cache\n"
    )
    files = json.loads(proc.stdout)["files"]
    assert {(tmp_path / f["path"]).parent for f in files.values()} == {good}
