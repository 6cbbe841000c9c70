"""MkDocs hooks: the pages made from the code at every build, so they cannot drift from it.

- Reference: the CLI pages come from mlplab's own argparse parser (each command's --help),
  the config page from TrainConfig's fields (type, default, flag, help).
- Tutorials: each jupytext script in tutorials/ is turned into a notebook and executed with
  nbclient on real data; the executed notebook is the page (mkdocs-jupyter renders it, and
  offers it as an .ipynb download). A cell that raises, an assert included, fails the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import os
import re
import tempfile
import time
import typing
from pathlib import Path

import mkdocs.plugins
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
BUILT = ROOT / "build" / "docs"  # generated pages live here, outside docs/, so that
# `mkdocs serve` does not see its own output as a change
CELL_TIMEOUT = 600


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


def execute_tutorial(source: Path, into: Path) -> float:
    """The jupytext script as an executed notebook at `into`; returns the seconds it took."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    started = time.perf_counter()
    # One intra-op thread, as the test suite runs: on a busy 2-core machine torch's two
    # spinning threads made the lessons 4-5x slower (240 s against 64 s for all five)
    os.environ["OMP_NUM_THREADS"] = "1"  # the kernel inherits it
    with tempfile.TemporaryDirectory() as work:  # runs and pictures land here, not in git
        NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": work}},
        ).execute()
    into.parent.mkdir(parents=True, exist_ok=True)
    tmp = into.with_suffix(".tmp")
    nbformat.write(notebook, tmp)
    tmp.replace(into)
    return time.perf_counter() - started


def on_pre_build(config) -> None:
    BUILT.mkdir(parents=True, exist_ok=True)
    (BUILT / "reference").mkdir(exist_ok=True)
    (BUILT / "reference" / "cli.md").write_text(cli_reference(), encoding="utf-8")
    (BUILT / "reference" / "config.md").write_text(config_reference(), encoding="utf-8")
    (BUILT / "reference" / "spec.md").write_text(spec_reference(), encoding="utf-8")
    log = mkdocs.plugins.get_plugin_logger("mlplab")
    total = 0.0
    for source in sorted(TUTORIALS.glob("[0-9]*.py")):
        seconds = execute_tutorial(source, BUILT / "tutorials" / f"{source.stem}.ipynb")
        total += seconds
        log.info("tutorial %s executed in %.1f s", source.name, seconds)
    log.info("tutorials executed in %.1f s in all", total)


@mkdocs.plugins.event_priority(100)  # before mkdocs-jupyter looks for notebooks
def on_files(files: Files, config) -> Files:
    for path in sorted(BUILT.rglob("*")):
        if path.suffix in (".md", ".ipynb"):
            uri = path.relative_to(BUILT).as_posix()
            files.append(File(uri, str(BUILT), config["site_dir"], config["use_directory_urls"]))
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


def on_post_page(output: str, page, config) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        return render_math(output, page.file.src_uri)
    return output
