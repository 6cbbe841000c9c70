"""MkDocs hooks: the pages made from the code at every build, so they cannot drift from it.

- Reference: the CLI pages come from mlplab's own argparse parser (each command's --help),
  the config page from TrainConfig's fields (type, default, flag, help).
- Tutorials: each jupytext script in tutorials/ is turned into a notebook and executed with
  nbclient on real data (tools/lessons.py); the executed notebook is the page
  (mkdocs-jupyter renders it, and offers it as an .ipynb download). A cell that raises, an
  assert included, fails the build, and so does a picture without alt text. On the page,
  each picture gets its alt text and each exercise's solution is folded away.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import html
import os
import posixpath
import re
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mkdocs.plugins
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import lessons  # noqa: E402  (tools/lessons.py: execute and check the lessons)

BUILT = ROOT / "build" / "docs"  # generated pages live here, outside docs/, so that
# `mkdocs serve` does not see its own output as a change
ALT_TEXTS: dict[str, list[tuple[str, str]]] = {}  # lesson page -> (base64 PNG, alt), in order
LAST_SECONDS: dict[str, float] = {}  # a lesson's time at the last build (mkdocs serve)
SOURCES: set[str] = set()  # every page's source path, as lessons link to them


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """One section per command: its description and its --help, as the terminal shows it."""
    from mlplab.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps --help to the terminal's width
    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated at every docs build from `mlplab`'s own argument parser: each block is what",
        "`mlplab COMMAND --help` prints.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for name, sub in _subcommands(parser).items():
        lines += [f"## `mlplab {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
        for child, subsub in _subcommands(sub).items():
            lines += [f"### `mlplab {name} {child}`", "", "```text"]
            lines += [subsub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def config_reference() -> str:
    """TrainConfig's fields as a table: what a TOML file, a flag or the library sets."""
    from mlplab.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    lines = [
        "# Training config reference",
        "",
        "Every field of `mlplab.TrainConfig`, generated at every docs build from the class. A",
        "field is set the same way everywhere: `--batch-size 128` on the command line,",
        "`batch_size = 128` in the `[train]` table of a TOML file (`mlplab train --config`),",
        "`TrainConfig(batch_size=128)` in Python. Every run saves its whole config in",
        "`config.json`.",
        "",
        "| field | flag | type | default | what |",
        "|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(TrainConfig):
        kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "")
        kind = kind.replace("'>", "").replace("|", "or")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        what = f.metadata.get("help", "").replace("|", "\\|")
        choices = f.metadata.get("choices")
        if choices:
            what += " (" + ", ".join(f"`{c}`" for c in choices) + ")"
        flag = "--" + f.name.replace("_", "-")
        lines.append(f"| `{f.name}` | `{flag}` | {kind} | `{default!r}` | {what} |")
    return "\n".join(lines) + "\n"


def spec_reference() -> str:
    """The spec grammar, its options and bounds, and the presets, from mlplab.nn.spec."""
    from mlplab.nn import spec
    from mlplab.nn.presets import PRESETS

    lines = [
        "# Model specs",
        "",
        "Generated at every docs build from `mlplab.nn.spec` and `mlplab.nn.presets`.",
        "",
        spec.__doc__.strip(),
        "",
        "```text",
        "spec     := SIZES [ ':' OPTIONS ]  |  PRESET",
        "SIZES    := SIZE ( '-' SIZE )+        input first, classes last; ASCII digits",
        "OPTIONS  := OPTION ( ',' OPTION )*",
        "OPTION   := ACTIVATION | 'dropout=' P | 'input_dropout=' P | 'bn' | 'batch_norm'",
        "```",
        "",
        f"- Activations: {', '.join(f'`{a}`' for a in spec.ACTIVATIONS)} (default `relu`).",
        "- `dropout=P` and `input_dropout=P`: 0 <= P < 1.",
        f"- At most {spec.MAX_LAYERS} layers and {spec.MAX_PARAMETERS:,} parameters, checked",
        "  before anything is allocated.",
        "- The output is logits; softmax is applied only where probabilities are shown.",
        "",
        "Examples: `784-128-64-10:relu`, `784-100-10:sigmoid,dropout=0.2`,",
        "`784-256-256-10:gelu,bn`, `784-1024-1024-10:relu,dropout=0.5,input_dropout=0.2`.",
        "",
        "## Presets",
        "",
        "| preset | spec | what |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | `{text}` | {what} |" for name, (text, what) in PRESETS.items()]
    return "\n".join(lines) + "\n"


def lesson_key(source: Path) -> str:
    """What a lesson's output depends on: its text, mlplab's code, the lesson tooling and
    torch's version. The same key means the same executed notebook."""
    import torch

    digest = hashlib.sha256(torch.__version__.encode())
    files = [source, ROOT / "pyproject.toml", *sorted((ROOT / "tools").rglob("*.py"))]
    files += sorted((ROOT / "src" / "mlplab").rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def execute_lessons(sources: list[Path], into: Path, workers: int = 2) -> dict[str, float]:
    """Each lesson executed (tools/lessons.py: in a kernel limited to the lessons extra,
    its pictures given their alt text) and written to `into` as a notebook; returns each
    lesson's seconds. Two at a time: each kernel runs torch on one thread, and a 2-core
    machine has two. A lesson whose key (lesson_key) matches the last execution's is not run
    again: its notebook is kept, and its time is reported as 0."""
    import nbformat

    def one(source: Path) -> float:
        out, key = into / f"{source.stem}.ipynb", lesson_key(source)
        if out.is_file() and nbformat.read(out, as_version=4).metadata.get("mlplab_key") == key:
            notebook, seconds = nbformat.read(out, as_version=4), 0.0
        else:
            notebook = lessons.read(source)
            seconds = lessons.execute(notebook, f"tutorials/{source.name}")
            notebook.metadata["mlplab_key"] = key
            tmp = into / f"{source.stem}.tmp"
            nbformat.write(notebook, tmp)
            tmp.replace(out)
        ALT_TEXTS[f"tutorials/{source.stem}.ipynb"] = lessons.alt_texts(notebook)
        return seconds

    into.mkdir(parents=True, exist_ok=True)
    for stale in into.glob("*.ipynb"):  # a lesson renamed or removed since the last build
        if not (lessons.TUTORIALS / f"{stale.stem}.py").is_file():
            stale.unlink()
    # the longest first, so that the two workers finish together
    order = sorted(sources, key=lambda p: -LAST_SECONDS.get(p.name, 0.0))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        took = dict(zip((p.name for p in order), pool.map(one, order), strict=True))
    return {name: took[name] for name in sorted(took)}


def on_pre_build(config) -> None:
    BUILT.mkdir(parents=True, exist_ok=True)
    (BUILT / "reference").mkdir(exist_ok=True)
    (BUILT / "reference" / "cli.md").write_text(cli_reference(), encoding="utf-8")
    (BUILT / "reference" / "config.md").write_text(config_reference(), encoding="utf-8")
    (BUILT / "reference" / "spec.md").write_text(spec_reference(), encoding="utf-8")
    log = mkdocs.plugins.get_plugin_logger("mlplab")
    started = time.perf_counter()
    took = execute_lessons(lessons.lessons(), BUILT / "tutorials")
    for name, seconds in took.items():
        if seconds:
            log.info("tutorial %s executed in %.1f s", name, seconds)
        else:
            log.info("tutorial %s unchanged since its last execution: kept", name)
    log.info(
        "tutorials executed in %.1f s in all, %.1f s of wall time (two at a time)",
        sum(took.values()),
        time.perf_counter() - started,
    )
    LAST_SECONDS.update({name: seconds for name, seconds in took.items() if seconds})


@mkdocs.plugins.event_priority(100)  # before mkdocs-jupyter looks for notebooks
def on_files(files: Files, config) -> Files:
    for path in sorted(BUILT.rglob("*")):
        if path.suffix in (".md", ".ipynb"):
            uri = path.relative_to(BUILT).as_posix()
            files.append(File(uri, str(BUILT), config["site_dir"], config["use_directory_urls"]))
    SOURCES.clear()
    SOURCES.update(f.src_uri for f in files)
    return files


# --- math, rendered at build time ------------------------------------------------------------
# mkdocs-jupyter leaves $...$ for MathJax, which it loads from a CDN: offline, the pages showed
# raw TeX. The tutorials' math is turned into MathML here, which browsers draw themselves.
MATH = re.compile(r"\$\$(.+?)\$\$|\$(?=\S)([^$\n]+?)(?<=\S)\$", re.S)
RAW = re.compile(r"(<pre.*?</pre>|<code.*?</code>|<script.*?</script>|<style.*?</style>)", re.S)


def render_math(page_html: str, where: str) -> str:
    """Every $...$ and $$...$$ outside code, scripts and styles as MathML; TeX that
    latex2mathml cannot read fails the build, naming the page."""
    from latex2mathml.converter import convert

    def mathml(found: re.Match) -> str:
        display = found.group(1) is not None
        tex = html.unescape(found.group(1) if display else found.group(2)).strip()
        try:
            out = convert(tex, display="block" if display else "inline")
        except Exception as e:
            raise ValueError(f"{where}: cannot render ${tex}$: {type(e).__name__}") from None
        unknown = re.search(r">(\\[A-Za-z]+)<", out)  # a command it passed through as text
        if unknown:
            raise ValueError(f"{where}: cannot render ${tex}$: unknown {unknown.group(1)}")
        return out

    parts = RAW.split(page_html)
    parts[::2] = [MATH.sub(mathml, part) for part in parts[::2]]
    return "".join(parts)


def _page_link(href: str, where: str) -> str:
    """A lesson's link to another page of the site, as the built site names it: a notebook's
    `x.ipynb` or a page's `x.md` becomes `x.html`; ValueError when no such page exists."""
    target, _, anchor = href.partition("#")
    elsewhere = "://" in target or target.startswith(("/", "mailto:"))
    if elsewhere or not target.endswith((".ipynb", ".md")):
        return href
    source = posixpath.normpath(posixpath.join(posixpath.dirname(where), target))
    if source not in SOURCES:
        raise ValueError(f"{where}: a link to {href}, which is no page of the site")
    page = posixpath.splitext(target)[0] + ".html"
    return page + (f"#{anchor}" if anchor else "")


def lesson_page(page_html: str, where: str) -> str:
    """A lesson's page with each picture's alt text, its links to other pages made the
    site's, and each solution cell folded into a <details> block; ValueError for a picture
    the lesson gave no alt text, or a link to a page that does not exist."""
    from bs4 import BeautifulSoup

    known = ALT_TEXTS.get(where, [])
    soup = BeautifulSoup(page_html, "html.parser")
    for a in soup.select(".jp-Notebook a[href]"):
        a["href"] = _page_link(a["href"], where)
    pictures = soup.select(".jp-Notebook img[src^='data:image/png;base64,']")
    if len(pictures) != len(known):
        raise ValueError(
            f"{where}: {len(pictures)} pictures on the page, {len(known)} in its lesson"
        )
    for img, (png, alt) in zip(pictures, known, strict=True):
        if re.sub(r"\s+", "", img["src"].split(",", 1)[1]) != png:
            raise ValueError(f"{where}: the page's pictures are not the lesson's, in order")
        img["alt"] = alt
    for cell in soup.select("div.celltag_solution"):
        fold = soup.new_tag("details", attrs={"class": "solution"})
        summary = soup.new_tag("summary")
        summary.string = "Solution (run and checked at every build)"
        fold.append(summary)
        cell.wrap(fold)
    return str(soup)


def on_post_page(output: str, page, config) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        output = lesson_page(output, page.file.src_uri)
        return render_math(output, page.file.src_uri)
    return output
