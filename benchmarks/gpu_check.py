"""One command that checks and measures mlplab on a CUDA device (issue 31).

Claim: on a lent H100 or H200, from a fresh checkout, within about 8 minutes (the budgets
in STEPS add up to 470 s), this tells whether mlplab is right on CUDA and how fast it is. Each
step runs in child processes with a time limit, in order:
  0. setup: the wheels and MNIST carried in .gpu/ (made here by --prepare) installed for the
     machine's own Python and its CUDA torch, mlplab beside them without its dependencies;
     what is still missing, in one line;
  1. the device's facts: name, memory, torch and CUDA versions, TF32 and bf16 support;
  2. the CUDA tests, pytest tests/cuda (on the CPU in --smoke mode, where they can run);
  3. the GPU speed table, python -m benchmarks.gpu;
  4. the recipe mnist-plain, its accuracy and time;
  5. one lesson executed on the device (tutorials/03_seven_steps.py).
Everything goes to one Markdown file, $OUT/gpu-check.md when OUT is set, else gpu-check.md
here, rewritten atomically after each step, so that a kill keeps the steps done. A step that
fails or runs out of time is recorded and the later steps still run; the exit code is 0 only
when every step passed.

    python -m benchmarks.gpu_check                       # on the GPU machine (docs/development.md)
    python -m benchmarks.gpu_check --device cpu --smoke  # the same steps on a CPU, 1-3 min
    python -m benchmarks.gpu_check --prepare             # here, online: fill .gpu/ to carry
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.gpu import DEVICES, OneLineParser, commit, run_bounded, table, write_atomic

ROOT = Path(__file__).resolve().parent.parent
CARRIED = ROOT / ".gpu"  # wheels/, mnist/, commit: what --prepare makes for the machine
SITE = Path("/tmp/mlplab-gpu-site")  # where the setup step installs what was carried
LESSON = {"cuda": "tutorials/03_seven_steps.py", "smoke": "tutorials/01_tensors_to_network.py"}
RECIPE_FLOOR = 98.0  # % test accuracy: the recipe's CPU runs gave 98.58 to 98.82
# Modules each step imports that a bare CUDA image may lack (KINDS.md's package list).
NEEDS = {
    "tests": ["pytest", "safetensors", "onnx", "onnxscript", "onnxruntime", "PIL", "fastapi"]
    + ["uvicorn", "multipart", "swagger_ui_bundle"],
    "recipe": ["matplotlib"],
    "lesson": ["jupytext", "nbclient", "nbformat", "jupyter_client", "ipykernel"]
    + ["matplotlib_inline", "packaging", "PIL", "matplotlib"],
}
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


class StepTimeout(Exception):
    """A step ran past its budget; `partial` is what it had to say by then."""

    def __init__(self, budget: float, partial: str = ""):
        super().__init__(f"timed out after {budget:.0f} s")
        self.partial = partial


@dataclass
class Context:
    """What every step gets: the arguments, the children's environment, a scratch folder."""

    device: str
    smoke: bool
    work: Path
    log: Path | None
    env: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # module -> why it cannot import
    budget: float = 0.0  # the current step's
    deadline: float = 0.0  # time.monotonic() when the current step's budget runs out

    def run(self, command: list[str], limit: float | None = None, **more) -> tuple[int, str]:
        """A child of this step, bounded by `limit` and by what is left of the step's budget:
        (exit code, stdout then stderr). Raises StepTimeout, with the output so far, when
        the step's budget runs out."""
        left = self.deadline - time.monotonic()
        limit = left if limit is None else min(limit, left)
        if limit <= 0:
            raise StepTimeout(self.budget)
        env = {**self.env, **more.pop("env", {})}
        rc, out, err, timed_out = run_bounded(command, limit, cwd=ROOT, env=env, **more)
        text = out + ("\n" + err if err.strip() else "")
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"\n$ {' '.join(command)}\n{text}")
        if timed_out:
            raise StepTimeout(self.budget if limit == left else limit, text)
        return rc, text


@dataclass
class Outcome:
    """What a step found: passed or not, a one-line result, and its section's Markdown."""

    ok: bool
    result: str
    body: str = ""


# --- 0. setup ------------------------------------------------------------------------------

PROBE = """import importlib, importlib.util, json, sys
failed = {}
for module in sys.argv[2:]:
    try:
        if sys.argv[1] == "find" and importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}")
        if sys.argv[1] == "import":
            importlib.import_module(module)
    except Exception as e:
        failed[module] = str(e).splitlines()[0] if str(e) else type(e).__name__
print(json.dumps(failed))"""
READY = """import json, sys
from importlib import metadata
facts = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    facts["mlplab"] = metadata.version("mlplab")
except metadata.PackageNotFoundError:
    facts["mlplab"] = None
import torch
facts["torch"] = torch.__version__
try:
    from mlplab.data.sources import locate
    facts["mnist"] = str(locate("mnist", download=False)["train_images"].parent)
except Exception as e:
    facts["mnist"] = None
    facts["mnist_error"] = str(e).splitlines()[0]
print(json.dumps(facts))"""


def probe(ctx: Context, how: str) -> dict[str, str]:
    """module -> why the children cannot import it, for the modules the steps need: found
    at all (how="find", quick), or imported with what they import in turn ("import")."""
    modules = sorted({m for ms in NEEDS.values() for m in ms})
    rc, text = ctx.run([sys.executable, "-c", PROBE, how, *modules], 120)
    return json_line(text) if rc == 0 else dict.fromkeys(modules, last_line(text))


def pip_install(ctx: Context, *what: str) -> str | None:
    """pip install, offline, into SITE: None, or why it failed (one line)."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    command += ["--no-cache-dir", "--upgrade", "--target", str(SITE), *what]
    rc, text = ctx.run(command, env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    lines = [line for line in text.splitlines() if line.strip()]
    return None if rc == 0 else (lines[-1] if lines else f"pip exited {rc}")


def unpack_mnist() -> str | None:
    """The carried MNIST files into mlplab's cache, where they are not yet."""
    carried = sorted((CARRIED / "mnist").glob("*.gz"))
    if not carried:
        return None
    cache = Path.home() / ".cache" / "mlplab" / "mnist"
    cache.mkdir(parents=True, exist_ok=True)
    placed = [gz for gz in carried if not (cache / gz.stem).exists()]
    for gz in placed:
        temp = cache / f".{gz.stem}.part"
        temp.write_bytes(gzip.decompress(gz.read_bytes()))
        os.replace(temp, cache / gz.stem)
    return f"{len(placed)} carried MNIST file(s) unpacked into {cache}" if placed else None


def setup(ctx: Context) -> Outcome:
    """Install what was carried and the children lack; say what is still missing."""
    done, problems = [], []
    wheels = sorted((CARRIED / "wheels").glob("*.whl"))
    if probe(ctx, "find") and wheels:
        why = pip_install(ctx, "--no-compile", *map(str, wheels))
        done.append(f"{len(wheels)} carried wheels installed into {SITE}")
        problems += [f"the carried wheels: {why}"] if why else []
    ctx.missing = probe(ctx, "import")
    rc, text = ctx.run([sys.executable, "-c", READY], 120)
    facts = json_line(text) if rc == 0 else {}
    if rc == 0 and facts["mlplab"] is None:  # the lessons read mlplab's requirements
        why = pip_install(ctx, "--no-build-isolation", str(ROOT))
        done.append(f"mlplab installed into {SITE} (its code is read from src/)")
        problems += [f"mlplab: {why}"] if why else []
    unpacked = unpack_mnist()
    if unpacked:
        done.append(unpacked)
        rc, text = ctx.run([sys.executable, "-c", READY], 120)
        facts = json_line(text) if rc == 0 else {}
    if rc != 0:
        problems.append(f"python cannot import torch and mlplab: {text.strip()[-300:]}")
    elif facts["mnist"] is None:
        problems.append(f"MNIST: {facts['mnist_error']}")
    if ctx.missing:
        steps = [step for step, ms in NEEDS.items() if set(ms) & set(ctx.missing)]
        gone = ", ".join(f"{m} ({why})" for m, why in sorted(ctx.missing.items()))
        problems.append(f"missing: {gone}; steps {', '.join(steps)} need them")
    rows = [[k, f"`{v}`"] for k, v in facts.items() if k != "mnist_error"]
    rows.append(["PYTHONPATH of the steps", f"`{ctx.env.get('PYTHONPATH', '')}`"])
    body = table(["", ""], rows) + "".join(f"\n- {line}" for line in done + problems)
    result = "; ".join(problems) if problems else "ready: " + (", ".join(done) or "nothing to do")
    return Outcome(not problems, result, body)


# --- 1. the device's facts -------------------------------------------------------------------


def child_facts(device: str) -> None:
    """Print the device's facts as JSON (a child: it imports torch and starts CUDA)."""
    import platform

    import torch

    facts = {"torch": torch.__version__, "CUDA (torch built with)": torch.version.cuda}
    facts["python"] = platform.python_version()
    facts["host CPU cores"] = os.cpu_count()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit(f"CUDA is not available to torch {torch.__version__}: no GPU is visible")
        p = torch.cuda.get_device_properties(device)
        facts["device"] = p.name
        facts["memory (GiB)"] = round(p.total_memory / 2**30, 1)
        facts["compute capability"] = f"{p.major}.{p.minor}"
        facts["multiprocessors"] = p.multi_processor_count
        facts["cuDNN"] = torch.backends.cudnn.version()
        facts["TF32 supported (compute capability >= 8.0)"] = p.major >= 8
        facts["TF32 on for matmuls (torch's default: off)"] = torch.backends.cuda.matmul.allow_tf32
        facts["TF32 on for cuDNN convolutions"] = torch.backends.cudnn.allow_tf32
        facts["bf16 supported"] = torch.cuda.is_bf16_supported()
        x = torch.ones(64, 64, device=device, dtype=torch.bfloat16)
        facts["bf16 matmul runs"] = bool((x @ x).float().eq(64).all())
    else:
        facts["device"] = f"CPU ({platform.machine()})"
        mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        facts["bf16 in hardware (oneDNN)"] = bool(mkldnn()) if mkldnn else "unknown"
        facts["TF32 supported"] = "no (a GPU feature)"
    print(json.dumps(facts))


def nvidia_smi() -> str | None:
    """The driver's view of the GPU, one line, or None without nvidia-smi."""
    query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        done = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None


def facts(ctx: Context) -> Outcome:
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--child", "facts"]
    rc, text = ctx.run([*command, "--device", ctx.device])
    if rc != 0:
        return Outcome(False, last_line(text), fenced(text))
    found = json_line(text)
    found["commit"] = commit()
    smi = nvidia_smi() if ctx.device.startswith("cuda") else None
    if smi:
        found["nvidia-smi (name, driver, memory, max SM clock, power limit)"] = smi
    rows = [[k, v] for k, v in found.items()]
    memory = f", {found['memory (GiB)']} GiB" if "memory (GiB)" in found else ""
    return Outcome(
        True, f"{found['device']}{memory}, torch {found['torch']}", table(["", ""], rows)
    )


def json_line(text: str):
    """The last line of a child's output that is JSON (its answer; warnings may follow)."""
    for line in reversed(text.splitlines()):
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON in the output: {last_line(text)}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def fenced(text: str, lines: int = 60) -> str:
    """The last `lines` lines of a child's output, as a code block."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return f"```\n{tail}\n```" if tail else ""


# --- 2. the CUDA tests, 3. the speed table -----------------------------------------------


CLOSING = re.compile(r"(\d+ [a-z]+)(, \d+ [a-z]+)* in [0-9.]+s")


def pytest_counts(text: str) -> tuple[str, dict[str, int]]:
    """pytest's closing line, and its counts: {"passed": 12, "skipped": 1, ...}."""
    found = [m.group(0) for m in map(CLOSING.search, text.splitlines()) if m]
    closing = found[-1] if found else ""
    counts = {}
    for part in closing.split(" in ")[0].split(", "):
        number, _, kind = part.partition(" ")
        counts[kind] = int(number) if number.isdigit() else 0
    return closing, counts


def cuda_tests(ctx: Context) -> Outcome:
    """pytest tests/cuda; on a GPU none may be skipped, on the CPU (--smoke) what can run."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cuda"]
    env = {"MLPLAB_CUDA_TESTS_ON_CPU": "1"} if ctx.smoke else {}
    rc, text = ctx.run(command, env=env)
    closing, counts = pytest_counts(text)
    ok = rc == 0 and counts.get("passed", 0) > 0 and (ctx.smoke or not counts.get("skipped"))
    why = "" if ok or rc != 0 else "; tests were skipped: CUDA was not seen"
    start = text.find("short test summary info")
    report = text[text.rfind("\n", 0, start) + 1 :] if start >= 0 else text
    return Outcome(ok, (closing or last_line(text)) + why, fenced(report, 80))


def speed(ctx: Context) -> Outcome:
    """python -m benchmarks.gpu, its table written as it goes (kept when cut short)."""
    out = ctx.work / "gpu-speed.md"
    command = [sys.executable, "-m", "benchmarks.gpu", "--device", ctx.device, "--out", str(out)]
    command += ["--budget", f"{max(ctx.budget - 15, 10):.0f}"] + ["--smoke"] * ctx.smoke
    try:
        rc, text = ctx.run(command)
    except StepTimeout as e:
        e.partial = out.read_text() if out.is_file() else e.partial
        raise
    if not out.is_file():
        return Outcome(False, last_line(text), fenced(text))
    body = out.read_text()
    goals = [line for line in body.splitlines() if line.startswith("| 9") and "of training" in line]
    verdicts = "; ".join(" ".join(c.strip() for c in g.strip("|").split("|")[::2]) for g in goals)
    return Outcome(rc == 0, verdicts if rc == 0 else f"{verdicts}; {last_line(text)}", body)


# --- 4. the recipe, 5. a lesson ------------------------------------------------------------


def recipe_progress(out: Path) -> str:
    """How far a recipe run cut short got: its last evaluation, from metrics.jsonl."""
    for run in sorted(out.glob("*/metrics.jsonl")):
        evals = [json.loads(x) for x in run.read_text().splitlines() if '"eval"' in x]
        if evals:
            last = evals[-1]
            return (
                f"cut short at iteration {last['iteration']} (epoch {last.get('epoch')}): "
                f"test {last.get('test_accuracy')}%, validation {last.get('val_accuracy')}%, "
                f"{last.get('seconds', 0):.1f} s of training"
            )
    return "no evaluation yet"


def recipe(ctx: Context) -> Outcome:
    """mlplab train --recipe mnist-plain on the device: accuracy and time."""
    out = ctx.work / "recipe"
    command = [sys.executable, "-m", "mlplab", "train", "--recipe", "mnist-plain"]
    command += ["--device", ctx.device, "--out", str(out), "--quiet"]
    command += ["--iterations", "10"] if ctx.smoke else []
    start = time.monotonic()
    try:
        rc, text = ctx.run(command, env={"MPLBACKEND": "Agg"})
    except StepTimeout as e:
        e.partial = recipe_progress(out)
        raise
    wall = time.monotonic() - start
    models = sorted(out.glob("*/model.json"))
    if rc != 0 or not models:
        return Outcome(False, last_line(text), fenced(text))
    info = json.loads(models[0].read_text())
    rows = [["command", f"`{' '.join(['mlplab', *command[3:]])}`"]]
    rows += [[k, info.get(k)] for k in ("test_accuracy", "val_accuracy", "iterations")]
    rows += [[k, info.get(k)] for k in ("best_iteration", "engine", "device")]
    rows += [["training seconds", f"{info['seconds']:.1f}"], ["wall seconds", f"{wall:.1f}"]]
    floor = ctx.smoke or info["test_accuracy"] >= RECIPE_FLOOR
    result = (
        f"test {info['test_accuracy']}% in {info['seconds']:.1f} s of training ({wall:.0f} s wall)"
    )
    if not floor:
        result += f"; below the floor of {RECIPE_FLOOR}% (its CPU runs: 98.58 to 98.82%)"
    return Outcome(floor, result, table(["", ""], rows))


def child_lesson(path: str) -> None:
    """Execute one lesson as the docs build does (tools/lessons.py); print its device."""
    sys.path.insert(0, str(ROOT / "tools"))
    import lessons

    notebook = lessons.read(ROOT / path)
    seconds = lessons.execute(notebook, Path(path).name)
    printed = [
        o.get("text", "") for c in notebook.cells for o in c.get("outputs", []) if "text" in o
    ]
    device = next((t.split("device:")[1].split()[0] for t in printed if "device:" in t), None)
    print(json.dumps({"seconds": seconds, "device": device, "cells": len(notebook.cells)}))


def lesson(ctx: Context) -> Outcome:
    path = LESSON["smoke" if ctx.smoke else "cuda"]
    rc, text = ctx.run([sys.executable, "-m", "benchmarks.gpu_check", "--child", "lesson", path])
    if rc != 0:
        return Outcome(False, f"{path}: {last_line(text)}", fenced(text))
    ran = json_line(text)
    want = ctx.device.split(":")[0]
    ok = ran["device"] == want
    result = f"{path}: {ran['cells']} cells in {ran['seconds']:.1f} s, on {ran['device']}"
    return Outcome(ok, result + ("" if ok else f", not {want}"), "")


# --- the steps, in order, and how one runs -------------------------------------------------


@dataclass(frozen=True)
class Step:
    title: str
    budget: float  # seconds on a GPU machine
    smoke_budget: float  # seconds with --smoke on 2 CPU cores
    check: Callable[[Context], Outcome]


# The budgets on a GPU add up to 470 s, so that a second run fits in a 15-minute lending;
# the smoke budgets are ceilings for a 2-core machine shared with others: idle, the whole
# smoke run took 60 s; at a load average of 4 to 5, 157 s (2026-12-06).
STEPS = {
    "setup": Step("Setup", 50, 45, setup),
    "facts": Step("The device's facts", 15, 30, facts),
    "tests": Step("The CUDA tests (pytest tests/cuda)", 130, 150, cuda_tests),
    "speed": Step("The GPU speed table (python -m benchmarks.gpu)", 160, 150, speed),
    "recipe": Step("The recipe mnist-plain", 70, 60, recipe),
    "lesson": Step("A lesson executed on the device", 45, 60, lesson),
}
FORCED = {  # --force STEP=KIND, to check that a failure or a timeout is recorded
    "fail": "import sys; sys.exit('forced failure (--force)')",
    "timeout": "import time; time.sleep(3600)",
}


def run_step(key: str, ctx: Context, force: str | None) -> dict:
    """One step within its budget; what happened, whatever happened."""
    step, start = STEPS[key], time.monotonic()
    ctx.budget = 2.0 if force == "timeout" else step.smoke_budget if ctx.smoke else step.budget
    ctx.deadline = start + ctx.budget
    try:
        if force:
            rc, text = ctx.run([sys.executable, "-c", FORCED[force]])
            outcome = Outcome(rc == 0, last_line(text), fenced(text))
        else:
            outcome = step.check(ctx)
        status = "passed" if outcome.ok else "failed"
    except StepTimeout as e:
        body = e.partial if key == "speed" else fenced(e.partial)
        outcome, status = Outcome(False, f"{e} (its budget)", body), "timed out"
    except Exception as e:  # a bug in the step itself: recorded, and the next step runs
        import traceback

        first = f"{type(e).__name__}: {e}".splitlines()[0]
        outcome, status = Outcome(False, first, fenced(traceback.format_exc())), "failed"
    return {"status": status, "seconds": time.monotonic() - start, "outcome": outcome}


def render(args, done: dict[str, dict], started: str, seconds: float) -> str:
    """The whole file: what ran where, a summary line per step, then each step's section."""
    keys = [k for k in STEPS if k in args.steps]
    budget = sum(STEPS[k].smoke_budget if args.smoke else STEPS[k].budget for k in keys)
    passed = sum(d["status"] == "passed" for d in done.values())
    state = (
        f"done: {passed} of {len(keys)} steps passed"
        if len(done) == len(keys)
        else (f"running: {len(done)} of {len(keys)} steps done")
    )
    facts = [
        ["command", f"`{' '.join(['python -m benchmarks.gpu_check', *args.argv])}`"],
        ["device", args.device + (" (smoke: short budgets)" if args.smoke else "")],
        ["commit", commit()],
        ["started (UTC)", started],
        ["status", state],
        ["wall time", f"{seconds:.0f} s of a {budget:.0f} s budget"],
    ]
    rows = []
    for key in keys:
        i, d, step = list(STEPS).index(key), done.get(key), STEPS[key]
        cap = step.smoke_budget if args.smoke else step.budget
        took = f"{d['seconds']:.1f}" if d else ""
        result = f"**{d['status']}**: {d['outcome'].result}" if d else "not yet run"
        rows.append([f"{i}. {step.title}", f"{cap:.0f}", took, result])
    parts = ["# GPU check", table(["", ""], facts)]
    parts.append(table(["step", "budget (s)", "took (s)", "result"], rows))
    for key in keys:
        if key in done:
            i, d = list(STEPS).index(key), done[key]
            body = d["outcome"].body
            parts.append(f"## {i}. {STEPS[key].title}\n\n**{d['status']}**: {d['outcome'].result}")
            parts += [body] if body else []
    return "\n\n".join(parts) + "\n"


def children_env() -> dict[str, str]:
    """The steps' environment: this tree's src/ and root, then what setup installs."""
    paths = [str(ROOT / "src"), str(ROOT), str(SITE), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def check(args) -> int:
    """Every step in order, the file rewritten after each; 0 when all passed."""
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path.cwd()
    out = out_dir / "gpu-check.md"
    log = out_dir / "gpu-check.log" if os.environ.get("OUT") else None
    work = Path(tempfile.mkdtemp(prefix="mlplab-gpu-check-"))
    env = {**children_env(), "PYTHONUNBUFFERED": "1"}
    ctx = Context(args.device, args.smoke, work, log, env)
    started, start = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), time.monotonic()
    done: dict[str, dict] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        write_atomic(out, render(args, done, started, 0))
        for key in (k for k in STEPS if k in args.steps):
            print(f"{key}: running...", flush=True)
            done[key] = run_step(key, ctx, args.force.get(key))
            d = done[key]
            print(
                f"{key}: {d['status']} in {d['seconds']:.1f} s: {d['outcome'].result}", flush=True
            )
            write_atomic(out, render(args, done, started, time.monotonic() - start))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")
    return 0 if all(d["status"] == "passed" for d in done.values()) else 1


# --- here, before a lending: what the machine lacks, carried in .gpu/ ---------------------


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


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def prepare() -> int:
    """Fill .gpu/: the wheels the machine lacks, at this environment's versions, for its
    Python 3.12; MNIST, gzipped; this commit. git ignores .gpu/ (info/exclude)."""
    from importlib import metadata

    from mlplab.data.sources import locate

    exclude = ROOT / git("rev-parse", "--git-path", "info/exclude")
    if "/.gpu/" not in (exclude.read_text() if exclude.is_file() else "").split():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as f:
            f.write("/.gpu/\n")
    shutil.rmtree(CARRIED, ignore_errors=True)
    (CARRIED / "mnist").mkdir(parents=True)
    pins = [f"{name}=={metadata.version(name)}" for name in carried_distributions()]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "-d", str(CARRIED / "wheels")]
    command += [f"--platform={p}" for p in PLATFORMS]
    subprocess.run([*command, *pins], check=True)
    for path in locate("mnist").values():
        data = path.read_bytes()
        gz = data if data[:2] == b"\x1f\x8b" else gzip.compress(data, 9, mtime=0)
        (CARRIED / "mnist" / f"{path.name.removesuffix('.gz')}.gz").write_bytes(gz)
    dirty = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    (CARRIED / "commit").write_text(git("rev-parse", "--short", "HEAD") + dirty + "\n")
    size = sum(p.stat().st_size for p in CARRIED.rglob("*") if p.is_file()) / 2**20
    print(f"{CARRIED}: {len(pins)} wheels, MNIST and the commit, {size:.1f} MiB to carry")
    return 0


# --- the command ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None):
    parser = OneLineParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--smoke", action="store_true", help="short budgets, for a CPU")
    parser.add_argument("--steps", default=",".join(STEPS), help="a comma-separated subset")
    parser.add_argument("--force", action="append", default=[], metavar="STEP=fail|timeout")
    parser.add_argument("--prepare", action="store_true", help="fill .gpu/ here, online")
    parser.add_argument("--child", choices=("facts", "lesson"), help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not DEVICES.fullmatch(args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    args.steps = args.steps.split(",")
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"--steps: unknown {unknown[0]!r}; the steps are {', '.join(STEPS)}")
    forced = [f.partition("=") for f in args.force]
    bad = [f"{s}={k}" for s, _, k in forced if s not in STEPS or k not in FORCED]
    if bad:
        parser.error(f"--force: {bad[0]!r} is not STEP=fail or STEP=timeout")
    args.force = {s: k for s, _, k in forced}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "facts":
        child_facts(args.device)
        return 0
    if args.child == "lesson":
        child_lesson(args.path)
        return 0
    return prepare() if args.prepare else check(args)


if __name__ == "__main__":
    sys.exit(main())
