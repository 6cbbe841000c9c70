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
        "ordinary run directories; Ctrl-C saves the state, as in mlplab train. "
        "--experiment NAME trains several runs side by side instead, a classic lesson's "
        "comparison (--list-experiments lists them).",
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
        "--experiment",
        metavar="NAME",
        help="start a built-in experiment, several runs side by side (see --list-experiments), "
        "or the one a lab's link holds (the part after '?', experiment=... or runs=...)",
    )
    p.add_argument(
        "--list-experiments",
        action="store_true",
        help="list the built-in experiments, a line each, and exit",
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file; flags override it"
    )
    add_config_flags(p)
    p.set_defaults(func=cmd_lab)


def cmd_lab(args) -> int:
    from mlplab.lab import experiments

    if args.list_experiments:
        width = max(len(name) for name in experiments.BUILTIN)
        for name, e in experiments.BUILTIN.items():
            print(f"{name:{width}}  {e.title}: {e.summary} ({len(e.runs)} runs)")
        return 0
    chosen = None
    if args.experiment:
        given = args.experiment.split("?", 1)[-1]
        chosen = experiments.from_link(given) if "=" in given else experiments.builtin(given)
    if chosen is not None:
        _check_experiment_flags(args)
    try:
        from mlplab.lab.server import lab
    except ImportError:
        raise MlplabError(
            "the lab needs fastapi, uvicorn, sse-starlette and plotly: pip install 'mlplab[lab]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise MlplabError(f"--port must be 0 to 65535, got {args.port}")
    config = None if args.run_dir or chosen else config_from_args(args)
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
        experiment=chosen,
    )
    for run in left["runs"]:
        if run["run_dir"] and not run["finished"]:
            print(
                f"{run['label']}: stopped at iteration {run['iteration']}; resume with: "
                f"mlplab train --resume {run['run_dir']} (or mlplab lab {run['run_dir']})",
                file=sys.stderr,
            )
        elif run["run_dir"]:
            print(f"{run['label']}: saved to {run['run_dir']}")
    return 128 + left["signal"] if left["signal"] else 0


def _given_fields(args) -> list[str]:
    """The TrainConfig flags given on the command line, but the lab's own."""
    from mlplab.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)} - set(RUN_FLAGS)
    given = [n for n in names if n in vars(args)]
    return given + [n for n in ("recipe", "config") if getattr(args, n)]


def _check_experiment_flags(args) -> None:
    """An experiment sets its own runs: a flag that would change them is an error."""
    given = _given_fields(args) + (["run_dir"] if args.run_dir else [])
    if given:
        flag = "RUN_DIR" if given == ["run_dir"] else "--" + sorted(given)[0].replace("_", "-")
        raise MlplabError(
            f"{flag}: --experiment {args.experiment} sets its own runs; change them on the page "
            "(vary one setting)"
        )


def _check_run_flags(args) -> None:
    """An opened run keeps its own settings: a flag that would change them is an error."""
    given = _given_fields(args)
    if given:
        flag = "--" + sorted(given)[0].replace("_", "-")
        raise MlplabError(
            f"{flag}: RUN_DIR keeps its own settings; build a new run on the page instead"
        )
