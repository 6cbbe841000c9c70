"""The lessons' rules (tools/lessons.py) and their promises to a learner.

- Every picture has alt text; every lesson has two pictures and two solutions, and says which
  extra runs it: the docs build fails otherwise, naming the lesson and the cell.
- A lesson's kernel can import only what the `lessons` extra installs.
- The plain-PyTorch cells of the A-E lesson, with the one cell that loads MNIST's tensors, run
  on their own in a fresh process that can import only torch and matplotlib.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import lessons  # noqa: E402

PNG = (  # a 1x1 picture
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _notebook(pictures_alt: list, solutions: int = 2, first: str = "# T\n\nRun: `.[lessons]`"):
    """A lesson as the kernel leaves it: one code cell per entry of pictures_alt (n pictures,
    alt metadata), then `solutions` solution cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(first))
    for n, alt in pictures_alt:
        cell = nbformat.v4.new_code_cell("plot()")
        cell.outputs = [
            nbformat.v4.new_output("display_data", data={"image/png": PNG}) for _ in range(n)
        ]
        if alt is not None:
            cell.metadata["alt"] = alt
        nb.cells.append(cell)
    for _ in range(solutions):
        nb.cells.append(nbformat.v4.new_code_cell("assert True", metadata={"tags": ["solution"]}))
    return nb


def test_every_picture_gets_its_alt_text_and_solutions_fold():
    nb = _notebook([(1, "A digit."), (2, ["Left.", "Right."])])
    lessons.finish(nb, "tutorials/09_x.py")
    alts = [o.metadata["image/png"]["alt"] for c in nb.cells[1:3] for o in c.outputs]
    assert alts == ["A digit.", "Left.", "Right."]
    assert all(c.metadata["jupyter"]["source_hidden"] for c in nb.cells[3:])
    assert [alt for _, alt in lessons.alt_texts(nb)] == ["A digit.", "Left.", "Right."]


@pytest.mark.parametrize(
    "cells, solutions, first, message",
    [
        ([(1, None), (1, "B.")], 2, None, r"cell 2 draws 1 picture\(s\) but gives 0 alt text"),
        ([(2, "Only one."), (1, "B.")], 2, None, r"cell 2 draws 2 picture\(s\) but gives 1"),
        ([(1, " "), (1, "B.")], 2, None, r"cell 2 draws 1 picture\(s\) but gives 1 alt"),
        ([(1, "A.")], 2, None, r"1 picture\(s\); a lesson has at least 2"),
        ([(1, "A."), (1, "B.")], 1, None, r"1 solution\(s\); a lesson ends with at least 2"),
        ([(1, "A."), (1, "B.")], 2, "# T", r"the first cell must say which extra runs it"),
    ],
)
def test_a_lesson_that_breaks_a_rule_fails_the_build_naming_it(cells, solutions, first, message):
    nb = _notebook(cells, solutions, **({"first": first} if first else {}))
    with pytest.raises(lessons.LessonError, match=rf"^tutorials/09_x.py: {message}"):
        lessons.finish(nb, "tutorials/09_x.py")


def test_every_lesson_says_which_extra_runs_it_and_tags_its_solutions():
    for source in lessons.lessons():
        nb = lessons.read(source)
        assert "pip install -e '.[lessons]'" in nb.cells[0].source, source.name
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert tags.count("solution") >= 2 and "plain" in tags, source.name
        assert tags.count("data") <= 1, source.name  # one cell loads the tensors, at most


def _probe(env: dict, code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_lessons_kernel_can_import_only_what_the_extra_installs():
    env = lessons.kernel_env("mlplab[lessons]", *lessons.JUPYTER)
    found = _probe(
        env,
        textwrap.dedent(
            """
            import importlib.util, json
            def importable(name):
                try:
                    __import__(name)
                    return True
                except ModuleNotFoundError:
                    return False
            names = ["torch", "matplotlib", "PIL", "ipykernel", "mlplab",
                     "fastapi", "optuna", "sklearn", "pytest", "mkdocs"]
            print(json.dumps({n: [importable(n), importlib.util.find_spec(n) is not None]
                              for n in names}))
            """
        ),
    )
    for name in ("torch", "matplotlib", "PIL", "ipykernel", "mlplab"):
        assert found[name] == [True, True], name
    for name in ("fastapi", "optuna", "sklearn", "pytest", "mkdocs"):  # other extras, dev
        assert found[name] == [False, False], name


PLAIN_RUNNER = """
import sys
sys.path.insert(0, {blocker!r})
import sitecustomize as only

cells = {cells!r}
namespace = {{"__name__": "__main__"}}
for tags, source in cells:
    if "data" in tags:
        only.unhide()  # the one cell that loads MNIST's tensors may use mlplab
        exec(compile(source, "data cell", "exec"), namespace)
        namespace.pop("mlplab", None)
    only.hide({blocked!r})  # from here on, and for the data cell's mlplab too
    if "plain" in tags:
        exec(compile(source, "plain cell", "exec"), namespace)
print("RAN", sum("plain" in t for t, _ in cells), "plain cells")
"""


@pytest.mark.slow
def test_the_plain_cells_of_the_a_to_e_lesson_run_alone_with_torch_and_matplotlib(tmp_path):
    """The issue's promise: copied into an empty notebook with the data cell, the plain-PyTorch
    cells run; here in a fresh process that can import only torch, matplotlib (and what they
    need) and the standard library, mlplab included only while the data cell runs."""
    nb = lessons.read(lessons.TUTORIALS / "04_models_a_to_e.py")
    cells = [
        (c.metadata.get("tags", []), c.source)
        for c in nb.cells
        if c.cell_type == "code" and {"data", "plain"} & set(c.metadata.get("tags", []))
    ]
    assert sum("data" in t for t, _ in cells) == 1 and len(cells) >= 8
    blocked = lessons.blocked_modules(lessons.allowed_distributions("torch", "matplotlib"))
    blocked.append("mlplab")
    assert "IPython" in blocked and "torch" not in blocked and "matplotlib" not in blocked
    script = tmp_path / "plain.py"
    script.write_text(
        PLAIN_RUNNER.format(blocker=str(lessons.BLOCKER), cells=cells, blocked=sorted(set(blocked)))
    )
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"RAN {len(cells) - 1} plain cells" in out.stdout
    assert "model E: test accuracy every 500 iterations" in out.stdout
