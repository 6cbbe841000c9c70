"""The facts about this machine and this tree that go beside the numbers: CPU, load, commit."""

from __future__ import annotations

import os
import platform
import time

from benchmarks.processes import run


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def cpu_model() -> str:
    try:
        out = run(["lscpu"], timeout=10).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    """The short commit of this tree, and whether tracked files have changed since."""
    try:
        rev = run(["git", "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"], timeout=30)
    except OSError:
        return "unknown"
    changed = " (with uncommitted changes)" if dirty.stdout.strip() else ""
    return f"{rev}{changed}" if rev else "unknown"


def machine_info() -> dict:
    """CPU, cores, memory and library versions, for the header of BENCHMARKS.md."""
    import numpy
    import psutil
    import sklearn
    import torch

    return {
        "cpu": cpu_model(),
        "cores": f"{psutil.cpu_count(logical=False)} physical, {psutil.cpu_count()} logical",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch threads (default)": str(torch.get_num_threads()),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "device": "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "commit": git_commit(),
    }


def python_loop_seconds(n: int = 10_000_000) -> tuple[float, float]:
    """A pure-Python loop of n additions, at module scope (as in a script) and in a function.

    How slow this machine is, in two numbers: global variables are dict lookups, locals are not.
    """
    code = compile("total = 0\nfor i in range(n):\n    total += i\n", "<loop>", "exec")
    start = time.perf_counter()
    exec(code, {"n": n})
    module_scope = time.perf_counter() - start
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return module_scope, time.perf_counter() - start
