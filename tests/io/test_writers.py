"""Every writer, on a full disk and on a read-only folder: a one-line error naming the path the
user asked for, no half-written file under that name (an old one stays as it was), and no
temp file left behind.

The faults are injected at the os level, and only for paths under the test's folder:
- a full disk: os.write on a file there writes half of what it was given, then fails with
  ENOSPC (as a disk that fills up mid-file does);
- a read-only folder: creating anything there (os.open with O_CREAT, os.mkdir, os.replace)
  fails with EROFS. The tests run as root, and root writes into a chmod 0555 folder all the
  same, so the folder's mode cannot stand in for it.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import head
from mlplab import cli
from mlplab.config import TrainConfig
from mlplab.data.idx import encode_idx, md5
from mlplab.data.registry import FILE_NAMES, REGISTRY, ROLES, DatasetInfo, FileInfo
from mlplab.data.sources import locate
from mlplab.errors import CheckpointError, DataError
from mlplab.io import atomic
from mlplab.io.checkpoint import load_checkpoint, model_info, save_checkpoint
from mlplab.io.rundir import read_config, read_metrics
from mlplab.io.states import list_states, load_state, save_state
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from mlplab.runner import run
from mlplab.use.export import export
from mlplab.viz import plots
from mlplab.viz.report import write_report

FAULTS = ("disk-full", "read-only")


class Faults:
    """Injects one fault into the os functions writers use, for the paths `hit` selects."""

    def __init__(self, monkeypatch, kind: str, hit: Callable[[Path], bool], dirs: bool = False):
        self.kind, self.hit, self.fired = kind, hit, []
        self.code = errno.ENOSPC if kind == "disk-full" else errno.EROFS
        self.real = {name: getattr(os, name) for name in ("write", "open", "mkdir", "replace")}
        if kind == "disk-full":
            monkeypatch.setattr(os, "write", self.write)
            if dirs:  # a new folder needs a block too
                monkeypatch.setattr(os, "mkdir", self.mkdir)
        else:
            for name in ("open", "mkdir", "replace"):
                monkeypatch.setattr(os, name, getattr(self, name))

    def _fail(self, code: int, path) -> None:
        self.fired.append(Path(path))
        raise OSError(code, os.strerror(code), str(path))

    def write(self, fd, data):
        try:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            path = None
        if path is None or not self.hit(path):
            return self.real["write"](fd, data)
        if path not in self.fired and len(data) > 1:
            self.fired.append(path)  # the first write gets half through, the next fails
            return self.real["write"](fd, memoryview(data)[: len(data) // 2])
        self.fired.append(path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # write() names no file

    def open(self, path, flags, *args, **kwargs):
        if flags & os.O_CREAT and self.hit(Path(os.fsdecode(path))):
            self._fail(errno.EROFS, path)
        return self.real["open"](path, flags, *args, **kwargs)

    def mkdir(self, path, *args, **kwargs):
        if self.hit(Path(os.fsdecode(path))):
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            self._fail(self.code, path)
        return self.real["mkdir"](path, *args, **kwargs)

    def replace(self, src, dst, *args, **kwargs):
        if self.hit(Path(os.fsdecode(dst))):
            self._fail(errno.EROFS, dst)
        return self.real["replace"](src, dst, *args, **kwargs)


REASON = {"disk-full": "No space left on device", "read-only": "Read-only file system"}


def inject(monkeypatch, kind: str, name: str | None = None, folder: Path | None = None, **kw):
    """The fault for paths that contain `name` (a temp file's included), or for everything
    made in `folder` (everything written under it, for a full disk)."""

    def hit(path: Path) -> bool:
        if folder is not None:
            return path.parent == folder or (kind == "disk-full" and folder in path.parents)
        return name in str(path)

    return Faults(monkeypatch, kind, hit, **kw)


def litter(folder: Path) -> list[Path]:
    """Temp files or folders of an unfinished write, anywhere under folder."""
    return sorted(p for p in folder.rglob(".*") if p.name.endswith(".part"))


def assert_names(error: BaseException, path: Path, kind: str) -> None:
    """The error names the path the user asked for, and why, in one line."""
    if isinstance(error, OSError):
        assert (error.filename, error.strerror) == (str(path), REASON[kind])
    else:
        assert str(error).startswith(f"{path}: "), str(error)
        assert REASON[kind] in str(error)
    assert "\n" not in str(error)


# Small things to write


def tiny_model():
    model = build_model("784-16-10:relu")
    info = model_info(model, "mnist", tuple("0123456789"), Normalization(0.5, 0.5))
    return model, info


@pytest.fixture
def checkpoint(tmp_path):
    model, info = tiny_model()
    return load_checkpoint(save_checkpoint(tmp_path / "given" / "model.safetensors", model, info))


@pytest.fixture(scope="module")
def small(mnist):
    return head(mnist, 1000, 300)


def config(out: Path, **kw) -> TrainConfig:
    base = dict(preset="c", batch_size=64, iterations=20, eval_every=10, device="cpu")
    return TrainConfig(**{**base, "out": str(out), "name": "w", **kw})


@pytest.fixture(scope="module")
def finished_run(small, tmp_path_factory) -> Path:
    run_dir, _ = run(config(tmp_path_factory.mktemp("runs")), small)
    return run_dir


# The writers that replace one file: an old file under the name stays whole


@pytest.mark.parametrize("kind", FAULTS)
def test_checkpoint(kind, tmp_path, monkeypatch):
    path = tmp_path / "out" / "model.safetensors"
    model, info = tiny_model()
    save_checkpoint(path, model, info)
    old = path.read_bytes()
    faults = inject(monkeypatch, kind, folder=path.parent)
    with pytest.raises(OSError) as e:
        save_checkpoint(path, build_model("784-16-10:relu"), info)
    assert faults.fired
    assert_names(e.value, path, kind)
    assert path.read_bytes() == old
    assert litter(tmp_path) == []


@pytest.mark.parametrize("kind", FAULTS)
def test_state(kind, tmp_path, monkeypatch):
    path = tmp_path / "state" / "000000010"
    save_state(path, {"w": torch.arange(10_000.0), "loop": {"iteration": 10}})
    faults = inject(monkeypatch, kind, name="000000010")
    with pytest.raises(OSError) as e:
        save_state(path, {"w": torch.zeros(10_000), "loop": {"iteration": 10}})
    assert faults.fired
    assert_names(e.value, path, kind)
    monkeypatch.undo()
    assert torch.equal(load_state(path)["w"], torch.arange(10_000.0))  # the old one, whole
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["000000010"]


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
@pytest.mark.filterwarnings("ignore:torchscript is deprecated")
@pytest.mark.parametrize("kind", FAULTS)
def test_export(kind, fmt, checkpoint, tmp_path, monkeypatch):
    path = tmp_path / "out" / f"model.{fmt}"
    path.parent.mkdir()
    faults = inject(monkeypatch, kind, folder=path.parent)
    with pytest.raises(OSError) as e:
        export(checkpoint, fmt, path)
    assert faults.fired
    assert_names(e.value, path, kind)
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("kind", FAULTS)
def test_plot(kind, tmp_path, monkeypatch):
    path = tmp_path / "plots" / "samples.png"
    x = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    y = torch.arange(16) % 10
    plots.sample_grid(x, y, tuple("0123456789"), path)
    old = path.read_bytes()
    faults = inject(monkeypatch, kind, folder=path.parent)
    with pytest.raises(OSError) as e:
        plots.sample_grid(x.flip(0), y.flip(0), tuple("0123456789"), path)
    assert faults.fired
    assert_names(e.value, path, kind)
    assert path.read_bytes() == old
    assert litter(tmp_path) == []


@pytest.mark.parametrize("kind", FAULTS)
def test_report(kind, finished_run, small, tmp_path, monkeypatch):
    run_dir = Path(shutil.copytree(finished_run, tmp_path / finished_run.name))
    path = run_dir / "report.html"
    path.write_text("the old report\n")
    faults = inject(monkeypatch, kind, name="report.html")  # the pictures go through
    with pytest.raises(OSError) as e:
        write_report(run_dir, small)
    assert faults.fired
    assert_names(e.value, path, kind)
    assert path.read_text() == "the old report\n"
    assert litter(tmp_path) == []


# Downloads, from a file:// mirror into the cache


def fake_dataset(monkeypatch) -> tuple[DatasetInfo, dict[str, bytes]]:
    g = np.random.default_rng(0)
    raw = {
        "train_images": encode_idx(g.integers(0, 256, (50, 28, 28), dtype=np.uint8)),
        "train_labels": encode_idx(g.integers(0, 10, 50, dtype=np.uint8)),
        "test_images": encode_idx(g.integers(0, 256, (10, 28, 28), dtype=np.uint8)),
        "test_labels": encode_idx(g.integers(0, 10, 10, dtype=np.uint8)),
    }
    info = DatasetInfo(
        "fake-writes",
        tuple("abcdefghij"),
        {r: FileInfo(FILE_NAMES[r], md5(raw[r])) for r in ROLES},
        (),
        "FakeWrites",
    )
    monkeypatch.setitem(REGISTRY, info.name, info)
    return info, raw


@pytest.mark.parametrize("kind", FAULTS)
def test_download(kind, tmp_path, monkeypatch):
    info, raw = fake_dataset(monkeypatch)
    www = tmp_path / "www"
    www.mkdir()
    for role, data in raw.items():
        (www / f"{FILE_NAMES[role]}.gz").write_bytes(gzip.compress(data, mtime=0))
    cache = tmp_path / "cache"
    target = cache / info.name
    target.mkdir(parents=True)
    faults = inject(monkeypatch, kind, folder=target)
    with pytest.raises(DataError) as e:
        locate(
            info.name,
            cache_dir=cache,
            mirrors=(www.as_uri() + "/",),
            use_npm=False,
            torchvision_roots=(),
            system_roots=(),
        )
    assert faults.fired
    message = str(e.value)
    first = target / f"{FILE_NAMES['train_images']}.gz"
    assert f"{first}: cannot write: {REASON[kind]}" == message
    assert list(target.iterdir()) == []


# A run directory: config, metrics, states and model, with the fault at each in turn


@pytest.mark.parametrize(
    "name",
    ["config.json", "metrics.jsonl", "tensors.safetensors", "model.safetensors", "model.json"],
)
@pytest.mark.parametrize("kind", FAULTS)
def test_run_directory(kind, name, small, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    faults = inject(monkeypatch, kind, name=name)
    with pytest.raises((OSError, CheckpointError)) as e:
        run(config(out), small)
    assert faults.fired
    monkeypatch.undo()
    (run_dir,) = out.iterdir()
    failed = faults.fired[0]
    if name == "tensors.safetensors":  # the callback names the state folder
        state = run_dir / "state" / "000000010"
        assert isinstance(e.value, CheckpointError)
        assert str(e.value) == f"{state}: cannot write the training state: {REASON[kind]}"
    else:
        assert_names(e.value, run_dir / name, kind)
        assert failed.name.startswith(f".{name}.") or failed == run_dir / name
    assert_complete(run_dir)
    assert not (run_dir / name).exists() or name == "metrics.jsonl"


def assert_complete(run_dir: Path) -> None:
    """Whatever the run directory holds is whole: no temp file, no cut line, no torn state."""
    assert litter(run_dir) == []
    if (run_dir / "config.json").exists():
        read_config(run_dir)
    if (run_dir / "metrics.jsonl").exists():
        text = (run_dir / "metrics.jsonl").read_text()
        assert text == "" or text.endswith("\n")
        assert len(read_metrics(run_dir)) == text.count("\n")
    for state in list_states(run_dir / "state"):
        load_state(state)
    if (run_dir / "model.safetensors").exists():
        load_checkpoint(run_dir)
    if (run_dir / "model.json").exists():
        json.loads((run_dir / "model.json").read_text())


@pytest.mark.parametrize("kind", FAULTS)
def test_a_run_directory_in_a_folder_that_cannot_take_one(kind, small, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    out.mkdir()
    faults = inject(monkeypatch, kind, folder=out, dirs=True)
    with pytest.raises(OSError) as e:
        run(config(out), small)
    assert faults.fired
    (run_dir,) = faults.fired
    assert run_dir.parent == out and run_dir.name.endswith("-w")
    assert_names(e.value, run_dir, kind)
    assert list(out.iterdir()) == []


def test_a_failed_append_leaves_no_cut_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    atomic.append_line(path, '{"kind": "eval", "iteration": 10}\n')
    before = path.read_bytes()
    inject(monkeypatch, "disk-full", name="metrics.jsonl")
    with pytest.raises(OSError) as e:
        atomic.append_line(path, '{"kind": "eval", "iteration": 20, "train_loss": 0.5}\n')
    assert_names(e.value, path, "disk-full")
    monkeypatch.undo()
    assert path.read_bytes() == before  # the half line that got through is cut back off
    atomic.append_line(path, '{"kind": "eval", "iteration": 20}\n')
    assert len(read_metrics(tmp_path)) == 2


def test_a_full_disk_at_fsync_is_caught_too(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    monkeypatch.setattr(
        os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left"))
    )
    with pytest.raises(OSError) as e:
        atomic.atomic_write(path, b"x" * 100)
    assert (e.value.filename, e.value.errno) == (str(path), errno.ENOSPC)
    assert list(tmp_path.iterdir()) == []


# Permissions: the umask decides, for exports as for everything else


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
@pytest.mark.filterwarnings("ignore:torchscript is deprecated")
def test_exported_files_are_readable_by_others(fmt, checkpoint, tmp_path):
    old = os.umask(0o022)
    try:
        path = export(checkpoint, fmt, tmp_path / f"model.{fmt}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


# The CLI: one line, `mlplab: error: PATH: reason`


def one_line(capsys, argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


@pytest.mark.parametrize("kind", FAULTS)
def test_cli_export(kind, checkpoint, tmp_path, monkeypatch, capsys):
    path = tmp_path / "out" / "model.pt2"
    path.parent.mkdir()
    inject(monkeypatch, kind, folder=path.parent)
    argv = ["export", checkpoint.path, "--format", "pt2", "-o", path]
    assert one_line(capsys, argv) == (1, f"mlplab: error: {path}: {REASON[kind]}\n")


@pytest.mark.parametrize("kind", FAULTS)
def test_cli_train(kind, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    inject(monkeypatch, kind, name="model.safetensors")
    argv = ["train", "--preset", "c", "--iterations", "10", "--device", "cpu", "--out", out]
    argv += ["--batch-size", "64", "--name", "w"]
    code, err = one_line(capsys, argv)
    (run_dir,) = out.iterdir()
    assert (code, err) == (1, f"mlplab: error: {run_dir / 'model.safetensors'}: {REASON[kind]}\n")
    monkeypatch.undo()
    assert_complete(run_dir)
