"""What the command modules share: one-line errors, the data folder, progress bars, and
the flags that map onto TrainConfig's fields."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from mlplab.errors import MlplabError

ENV_DATA = "MLPLAB_DATA"
DATA_DIR_HELP = f"data folder (default: ${ENV_DATA})"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors; `shorthand`, when given, rewrites this parser's words
    before they are parsed (`mlplab sweep SPACE` is `mlplab sweep run SPACE`)."""

    def __init__(self, *args, shorthand: Callable[[list[str]], list[str]] | None = None, **kw):
        super().__init__(*args, **kw)
        self.shorthand = shorthand

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and self.shorthand is not None:
            args = self.shorthand(list(args))
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _type_of(hint) -> type:
    """The base type of a config field's type hint (int for `int | None`)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field: --batch-size sets batch_size."""
    from mlplab.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        base = _type_of(hints[f.name])
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if f.metadata.get("repeat"):
            parser.add_argument(
                flag,
                action="append",
                default=argparse.SUPPRESS,
                help=help_text.replace("(default: ())", "(default: none)"),
                metavar="TARGET",
            )
            # the same under torchrun, whose own parser takes --log for an abbreviation of
            # its --log-dir and --logs-specs and stops there
            parser.add_argument(
                f"{flag}-target",
                action="append",
                dest=f.name,
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )
        elif base is bool:
            parser.add_argument(
                flag, action="store_true", default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=base,
                choices=f.metadata.get("choices"),
                default=argparse.SUPPRESS,
                help=help_text,
                metavar=None if f.metadata.get("choices") else f.name.upper(),
            )


def config_from_args(args):
    """The TrainConfig of a command line: the TOML file, if any, then the flags over it."""
    from mlplab.config import TrainConfig, read_toml
    from mlplab.data.registry import REGISTRY
    from mlplab.errors import ConfigError

    values, source = {}, "config"
    if args.recipe:
        from mlplab.experiments.recipes import load_recipe

        recipe = load_recipe(args.recipe)
        values.update(recipe.train, name=recipe.name)
        source = f"recipe {recipe.name}"
    if args.config:
        # Merge, then validate once: the file may leave a field for a flag to complete.
        values.update(read_toml(args.config))
        source = args.config
    given = vars(args)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in given.items() if k in names})
    # A preset on the command line replaces a model from the file, and the other way round.
    for flag, other in (("preset", "model"), ("model", "preset")):
        if flag in given and other not in given:
            values[other] = None
    if values.get("data_dir") in (None, ""):  # not [] or false: the type check names those
        values["data_dir"] = data_dir(args)
    config = TrainConfig.from_dict(values, source)
    if config.dataset not in REGISTRY:
        raise ConfigError(
            f"dataset: unknown {config.dataset!r}; choose one of: {', '.join(REGISTRY)}",
            field="dataset",
        )
    return config


def data_dir(args) -> str | None:
    """--data-dir, else $MLPLAB_DATA, else None; a folder named but missing is an error that
    says where the name came from (mlplab does not create it: a typo would hide the data)."""
    given, source = getattr(args, "data_dir", None), "--data-dir"
    if not given:
        given, source = os.environ.get(ENV_DATA) or None, ENV_DATA
    if given and not Path(given).expanduser().is_dir():
        what = "not a folder" if Path(given).expanduser().exists() else "no such folder"
        raise MlplabError(f"{source} {given}: {what}")
    return given


def interactive(args) -> bool:
    return sys.stdout.isatty() and not getattr(args, "quiet", False)


def load(args, name: str):
    """A registered dataset, from --data-dir or $MLPLAB_DATA first, with a download bar."""
    from mlplab.data.dataset import load_dataset

    return load_dataset(name, data_dir=data_dir(args), progress=download_bar())


def download_bar():
    """A byte progress bar for downloads on a terminal; None elsewhere or without tqdm."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bars: dict[str, tqdm] = {}

    def progress(url: str, done: int, total: int | None):
        bar = bars.get(url)
        if bar is None:
            bar = bars[url] = tqdm(
                total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False
            )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return progress


def torchrun_safe(argv: list[str]) -> list[str]:
    """argv with --log spelled --log-target, which torchrun's parser leaves alone."""
    out = []
    for arg in argv:
        if arg == "--log" or arg.startswith("--log="):
            arg = "--log-target" + arg[len("--log") :]
        out.append(arg)
    return out


def without_flag(argv: list[str], flag: str) -> list[str]:
    """argv without `flag VALUE` or `flag=VALUE` (to re-run a command line without it)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out
