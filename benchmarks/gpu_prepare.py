"""What a lent GPU machine lacks, carried to it in .gpu/ (git ignores it): made here, online,
by `python -m benchmarks.gpu_check --prepare`, installed there by the check's setup step.

  .gpu/wheels/  the wheels that mlplab's tests, server and lessons need beyond the machine's
                image, at this environment's versions, for CPython 3.12 on x86-64 Linux
  .gpu/mnist/   MNIST, gzipped
  .gpu/commit   this tree's commit: the machine gets a copy of the tree without git
"""

from __future__ import annotations

import gzip
import shutil
import sys

from benchmarks.machine import git_commit
from benchmarks.processes import ROOT, run

CARRIED = ROOT / ".gpu"
# The distributions the lent machines' image holds (KINDS.md, read on 2026-11-17): --prepare
# carries what mlplab's tests, server and lessons need beyond these.
DEVICE_HAS = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio
attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax
e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp""".split()
# What the steps need, as requirements: the package with its extras, and the lessons' runner.
ROOTS = ("mlplab[serve,export,lessons]", "jupytext", "nbclient", "nbformat")
# ... and, though the image has it, a newer one: pydantic needs typing-extensions >= 4.16.
NEWER = ("typing-extensions",)
# pip download's tags for the machine: Python 3.12 (KINDS.md), x86-64 Linux.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64"]
PLATFORMS += ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
DOWNLOAD_TIMEOUT = 1800  # seconds for pip to fetch every wheel


def commit() -> str:
    """This tree's commit: from git, else the one --prepare wrote into .gpu/commit."""
    found = git_commit()
    if found != "unknown":
        return found
    carried = CARRIED / "commit"
    return carried.read_text().strip() if carried.is_file() else "unknown"


def carried_distributions() -> list[str]:
    """The distributions that ROOTS need, down their requirements, that the machine lacks."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    device = {canonicalize_name(n) for n in DEVICE_HAS}
    wanted, seen, todo = set(), set(), [Requirement(r) for r in ROOTS]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen or name in device:
            continue
        seen.add((name, frozenset(req.extras)))
        wanted |= {name} - {"mlplab"}
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here
        for dep in map(Requirement, requires):
            envs = [{"extra": e, "python_version": "3.12"} for e in req.extras or [""]]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                todo.append(dep)
    return sorted(wanted | set(NEWER))


def exclude_carried() -> None:
    """Add /.gpu/ to git's info/exclude, where it is not there yet."""
    where = run(["git", "rev-parse", "--git-path", "info/exclude"], 30, check=True)
    exclude = ROOT / where.stdout.strip()
    if "/.gpu/" not in (exclude.read_text() if exclude.is_file() else "").split():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as f:
            f.write("/.gpu/\n")


def prepare() -> int:
    """Fill .gpu/: the wheels the machine lacks, at this environment's versions, for its
    Python 3.12; MNIST, gzipped; this commit."""
    from importlib import metadata

    from mlplab.data.sources import locate

    exclude_carried()
    shutil.rmtree(CARRIED, ignore_errors=True)
    (CARRIED / "mnist").mkdir(parents=True)
    pins = [f"{name}=={metadata.version(name)}" for name in carried_distributions()]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "-d", str(CARRIED / "wheels")]
    command += [f"--platform={p}" for p in PLATFORMS]
    run([*command, *pins], DOWNLOAD_TIMEOUT, check=True)
    for path in locate("mnist").values():
        data = path.read_bytes()
        gz = data if data[:2] == b"\x1f\x8b" else gzip.compress(data, 9, mtime=0)
        (CARRIED / "mnist" / f"{path.name.removesuffix('.gz')}.gz").write_bytes(gz)
    (CARRIED / "commit").write_text(git_commit() + "\n")
    size = sum(p.stat().st_size for p in CARRIED.rglob("*") if p.is_file()) / 2**20
    print(f"{CARRIED}: {len(pins)} wheels, MNIST and the commit, {size:.1f} MiB to carry")
    return 0
