"""The lessons in tutorials/: read, executed, checked and prepared for the site.

A lesson is a jupytext script (percent format). Its cells may carry metadata in their header:
- `alt="..."` (or a list, one per picture): the alt text of the pictures the cell draws;
- `tags=["plain"]`: plain PyTorch that a learner can copy into an empty notebook (with the
  cell tagged `data`, the one that loads MNIST's tensors);
- `tags=["solution"]`: an exercise's solution, collapsed on the page and in the notebook.

Executing a lesson runs it in a Jupyter kernel that can import only what the `lessons` extra
installs (with torch, numpy and the standard library): a module of any other installed
distribution fails to import, as it would in a fresh environment with that extra alone. Then
every picture must have its alt text, and every lesson at least two pictures and two
solutions, or the build fails naming the lesson.

    python tools/lessons.py tutorials/03_seven_steps.py   # execute one, print its time
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
CELL_TIMEOUT = 600
EXTRA = "lessons"
MIN_PICTURES, MIN_SOLUTIONS = 2, 2
# What a learner's Jupyter already has, whatever the extra: the kernel and its friends.
JUPYTER = ("ipykernel",)
BLOCKER = ROOT / "tools" / "only_extra"


class LessonError(Exception):
    """A lesson that breaks a rule of the lessons (a picture without alt text, ...)."""


def lessons() -> list[Path]:
    return sorted(TUTORIALS.glob("[0-9]*.py"))


def read(source: Path):
    """The lesson as a notebook, ready for a python3 kernel."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


# --- only the extra ---------------------------------------------------------------------


def _requirements(dist: str, extras: frozenset[str], seen: set[str]) -> None:
    """Add `dist` and everything it needs (with these extras) to `seen`."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    name = canonicalize_name(dist)
    key = f"{name}[{','.join(sorted(extras))}]"
    if key in seen:
        return
    seen.add(key)
    seen.add(name)
    try:
        requires = metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        return  # an optional dependency that is not installed: nothing can import it
    for text in requires:
        req = Requirement(text)
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            _requirements(req.name, frozenset(req.extras), seen)


def allowed_distributions(*roots: str) -> set[str]:
    """The distributions installed with `roots` (like "mlplab[lessons]"), by canonical name."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    for root in roots:
        req = Requirement(root)
        _requirements(req.name, frozenset(req.extras), seen)
    return {s for s in seen if "[" not in s}


def blocked_modules(allowed: set[str]) -> list[str]:
    """Top-level modules that belong only to installed distributions outside `allowed`."""
    from packaging.utils import canonicalize_name

    blocked = []
    for module, dists in metadata.packages_distributions().items():
        names = {canonicalize_name(d) for d in dists}
        if not names & allowed and not module.startswith("_"):
            blocked.append(module)
    return sorted(blocked)


def kernel_env(*roots: str) -> dict[str, str]:
    """The environment of a kernel that can import only what `roots` install."""
    blocked = blocked_modules(allowed_distributions(*roots))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BLOCKER), env.get("PYTHONPATH")]))
    env["MLPLAB_BLOCKED_MODULES"] = json.dumps(blocked)
    return env


# --- execute and check ------------------------------------------------------------------


def execute(notebook, where: str) -> float:
    """Run the notebook in a kernel limited to the lessons extra; returns its seconds."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    env = kernel_env(f"mlplab[{EXTRA}]", *JUPYTER)
    # One intra-op thread, as the test suite runs: on a busy 2-core machine torch's two
    # spinning threads made the lessons 4-5x slower
    env["OMP_NUM_THREADS"] = "1"
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:  # runs and pictures land here, not in git
        # over Unix sockets in the temp folder, not TCP on 127.0.0.1: nothing else can reach
        # the kernel, and it has no reason to warn that its traffic is unencrypted
        socket = str(Path(work) / "kernel")
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=socket)
        try:
            NotebookClient(
                notebook,
                km=manager,
                timeout=CELL_TIMEOUT,
                kernel_name="python3",
                resources={"metadata": {"path": work}},
            ).execute(env=env, cwd=work)
        finally:
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
    seconds = time.perf_counter() - started
    finish(notebook, where)
    return seconds


def _pictures(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def finish(notebook, where: str) -> None:
    """Give every picture its alt text and collapse the solutions; LessonError for a lesson
    that breaks the rules."""
    pictures = solutions = 0
    for number, cell in enumerate(notebook.cells, start=1):
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            solutions += 1
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        drawn = _pictures(cell)
        if not drawn:
            continue
        alt = cell.metadata.get("alt")
        texts = [alt] if isinstance(alt, str) else list(alt or [])
        if len(texts) != len(drawn) or not all(t and t.strip() for t in texts):
            raise LessonError(
                f"{where}: cell {number} draws {len(drawn)} picture(s) but gives "
                f"{len(texts)} alt text(s) (alt=... in the cell's header)"
            )
        for output, text in zip(drawn, texts, strict=True):
            output.setdefault("metadata", {}).setdefault("image/png", {})["alt"] = text
        pictures += len(drawn)
    if pictures < MIN_PICTURES:
        raise LessonError(f"{where}: {pictures} picture(s); a lesson has at least {MIN_PICTURES}")
    if solutions < MIN_SOLUTIONS:
        raise LessonError(
            f"{where}: {solutions} solution(s); a lesson ends with at least {MIN_SOLUTIONS} "
            "exercises, each with a cell tagged solution"
        )
    first = notebook.cells[0].source if notebook.cells else ""
    if f"[{EXTRA}]" not in first:
        raise LessonError(f"{where}: the first cell must say which extra runs it ({EXTRA})")


def alt_texts(notebook) -> list[tuple[str, str]]:
    """Each picture's base64 PNG (whitespace removed) and its alt text, in page order."""
    return [
        (re.sub(r"\s+", "", output["data"]["image/png"]), output["metadata"]["image/png"]["alt"])
        for cell in notebook.cells
        for output in _pictures(cell)
    ]


def plain_script(source: Path) -> str:
    """The cells tagged `data` and `plain`, in order, as one script."""
    notebook = read(source)
    cells = [
        c.source
        for c in notebook.cells
        if c.cell_type == "code" and {"data", "plain"} & set(c.metadata.get("tags", []))
    ]
    return "\n\n".join(cells) + "\n"


if __name__ == "__main__":
    import nbformat

    for arg in sys.argv[1:]:
        path = Path(arg)
        nb = read(path)
        out = ROOT / "build" / "docs" / "tutorials" / f"{path.stem}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            took = execute(nb, path.name)
        finally:  # what ran, outputs and all, also when a cell failed
            nbformat.write(nb, out)
        print(f"{path.name}: {took:.1f} s -> {out.relative_to(ROOT)}")
