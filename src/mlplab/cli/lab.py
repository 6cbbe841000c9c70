"""mlplab lab: the live lab in the browser."""

from __future__ import annotations

import dataclasses
import sys

from mlplab.cli.common import add_config_flags, config_from_args, data_dir
from mlplab.errors import MlplabError

# the flags that still apply when the lab opens a run: where it lives and how it trains
RUN_FLAGS = ("out", "data_dir", "threads")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "lab",
        help="build a network, watch it learn and look inside it, in the browser",
        description="Start the lab, a local web page on mlplab's own Trainer: build a network, "
        "train it live (play, pause, step, change the learning rate), look inside it layer by "
        "layer, and check the backward pass by hand. The first run is the default job, or "
        "what --recipe, --config and the flags say; the page builds others. Its runs are "
        "ordinary run directories; Ctrl-C saves the state, as in mlplab train.",
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        nargs="?",
        help="a run to open and continue (finished or stopped)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8008, help="port (default 8008; 0: any free one)")
    p.add_argument(
        "--recipe", metavar="NAME", help="start from a named recipe (mlplab recipes lists them)"
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file; flags override it"
    )
    add_config_flags(p)
    p.set_defaults(func=cmd_lab)


def cmd_lab(args) -> int:
    try:
        from mlplab.lab.server import lab
    except ImportError:
        raise MlplabError(
            "the lab needs fastapi, uvicorn, sse-starlette and plotly: pip install 'mlplab[lab]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise MlplabError(f"--port must be 0 to 65535, got {args.port}")
    config = None if args.run_dir else config_from_args(args)
    if args.run_dir:
        _check_run_flags(args)

    def ready(url: str) -> None:
        print(f"mlplab lab: {url} (Ctrl-C saves the run and stops)", flush=True)

    left = lab(
        args.run_dir,
        host=args.host,
        port=args.port,
        out=config.out if config else getattr(args, "out", "runs"),
        data_dir=config.data_dir if config else data_dir(args),
        threads=config.threads if config else getattr(args, "threads", None),
        config=config,
        on_ready=ready,
    )
    if left["run_dir"] and not left["finished"]:
        print(
            f"stopped at iteration {left['iteration']}; resume with: "
            f"mlplab train --resume {left['run_dir']} (or mlplab lab {left['run_dir']})",
            file=sys.stderr,
        )
    elif left["run_dir"]:
        print(f"Run saved to {left['run_dir']}")
    return 128 + left["signal"] if left["signal"] else 0


def _check_run_flags(args) -> None:
    """An opened run keeps its own settings: a flag that would change them is an error."""
    from mlplab.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)} - set(RUN_FLAGS)
    given = [n for n in names if n in vars(args)]
    given += [n for n in ("recipe", "config") if getattr(args, n)]
    if given:
        flag = "--" + sorted(given)[0].replace("_", "-")
        raise MlplabError(
            f"{flag}: RUN_DIR keeps its own settings; build a new run on the page instead"
        )
