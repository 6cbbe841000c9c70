"""The mlplab command: flags -> config -> library call. Errors print as one line.

Each command group lives in its own module with an add_parsers(sub) and its cmd_*
functions; this module only assembles the parser and runs the chosen command.
"""

from __future__ import annotations

import sys
import warnings

from mlplab.cli import data, experiments, lab, models, recipes, runs, sweep, train, use, viz
from mlplab.cli.common import Parser
from mlplab.errors import MlplabError, MlplabWarning

GROUPS = (train, runs, models, data, viz, experiments, recipes, sweep, use, lab)  # --help order


def build_parser() -> Parser:
    parser = Parser(
        prog="mlplab",
        description="Build, train, inspect and use MLP classifiers on MNIST-family images.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def _version() -> str:
    from mlplab.version import __version__

    return f"mlplab {__version__}"


_python_showwarning = warnings.showwarning


def _show_warning(message, category, *rest) -> None:
    """mlplab's own warnings as one line, `mlplab: warning: ...`; others as Python shows them."""
    if issubclass(category, MlplabWarning):
        print(f"mlplab: warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, *rest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given (mlplab train --nproc-per-node re-runs it)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except MlplabError as e:
        print(f"mlplab: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as e:
        # An unwritable --out or a vanished file: the OS's reason, on one line.
        where = f"{e.filename}: " if e.filename else ""
        print(f"mlplab: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlplab: interrupted", file=sys.stderr)
        return 130
