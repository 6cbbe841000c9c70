"""Step 0 of the GPU check, on the lent machine: what .gpu/ carried (benchmarks/gpu_prepare.py)
installed for the machine's own Python and its CUDA torch, mlplab beside it without its
dependencies, MNIST unpacked into mlplab's cache; and what is still missing, in one line."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

from benchmarks.gpu_prepare import CARRIED
from benchmarks.gpu_runner import Context, Outcome, json_line, last_line
from benchmarks.processes import ROOT
from benchmarks.report import table

SITE = Path("/tmp/mlplab-gpu-site")  # where the setup step installs what was carried
# Modules each step imports that a bare CUDA image may lack (KINDS.md's package list).
NEEDS = {
    "tests": ["pytest", "safetensors", "onnx", "onnxscript", "onnxruntime", "PIL", "fastapi"]
    + ["uvicorn", "multipart", "swagger_ui_bundle"],
    "recipe": ["matplotlib"],
    "lesson": ["jupytext", "nbclient", "nbformat", "jupyter_client", "ipykernel"]
    + ["matplotlib_inline", "packaging", "PIL", "matplotlib"],
}

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


def children_env() -> dict[str, str]:
    """The steps' environment: this tree's src/ and root, then what setup installs."""
    paths = [str(ROOT / "src"), str(ROOT), str(SITE), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
