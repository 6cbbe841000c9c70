"""mlplab sweep run: a hyperparameter search on Optuna; mlplab sweep show: what a study holds.

`mlplab sweep SPACE.toml ...` is short for `mlplab sweep run SPACE.toml ...`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from mlplab.cli.common import DATA_DIR_HELP, Parser, data_dir, without_flag
from mlplab.errors import ConfigError

ACTIONS = ("run", "show")
SHOW_USAGE = "STUDY_DIR|--storage URL --study NAME [--out DIR] [--json]"
SHORTHAND = (
    "`mlplab sweep SPACE.toml ...` is the same as `mlplab sweep run SPACE.toml ...`; a space "
    "file named run or show is `mlplab sweep run show` or `mlplab sweep ./show`."
)


def _with_action(args: list[str]) -> list[str]:
    """The words after `mlplab sweep`, with `run` put first where they name no action."""
    if args and args[0] not in (*ACTIONS, "-h", "--help"):
        return ["run", *args]
    return args


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="search hyperparameters on Optuna, or show a study",
        usage="%(prog)s run SPACE.toml [options]\n"
        "   or: %(prog)s SPACE.toml [options]\n"
        f"   or: %(prog)s show {SHOW_USAGE}",
        description=f"Search hyperparameters on Optuna, or show what a study holds. {SHORTHAND}",
        shorthand=_with_action,
    )
    actions = p.add_subparsers(
        dest="sweep_command", required=True, metavar="ACTION", parser_class=Parser, prog=p.prog
    )
    _add_run_parser(actions)
    _add_show_parser(actions)


def _add_run_parser(actions) -> None:
    p = actions.add_parser(
        "run",
        help="train one run directory per trial; resume by running it again",
        usage="%(prog)s SPACE.toml [--trials N] [--timeout SECONDS] [--workers K]\n"
        "       [--sampler tpe|random|grid] [--pruner median|hyperband|none]\n"
        "       [--storage URL] [--study NAME] [--out DIR] [--seed N] [--final] [--quiet]\n"
        "       [--log tensorboard[=DIR]] [--log mlflow[=TRACKING_URI]] [--data-dir DIR]",
        description="Train one run directory per trial, SWEEP_DIR/trials/NNNN-NAME/, chosen "
        "by validation accuracy (the test split is never used); prune hopeless trials; resume "
        "by running the same command again. SWEEP_DIR is OUT/sweep-STUDY/, with the study in "
        "study.db unless --storage names a PostgreSQL server, which workers on other machines "
        f"can share by running the same command. {SHORTHAND}",
    )
    p.add_argument("space", metavar="SPACE.toml", help="the space file")
    _add_search_options(p)
    _add_output_options(p)
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)  # set for children
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_sweep_run)


def _add_show_parser(actions) -> None:
    p = actions.add_parser(
        "show",
        help="a study's trials best first, its pictures and an HTML page",
        usage=f"%(prog)s {SHOW_USAGE}",
        description="List a study's trials best first, the best as a ready `mlplab train` "
        "command; draw Optuna's pictures into SWEEP_DIR/plots/ and write SWEEP_DIR/sweep.html. "
        "Give the sweep folder, or --storage URL and --study NAME (SWEEP_DIR is then "
        "OUT/sweep-STUDY/).",
    )
    p.add_argument("target", nargs="?", metavar="STUDY_DIR", help="the sweep folder")
    _add_storage_option(p, "STUDY_DIR")
    p.add_argument("--study", metavar="NAME", help="study name (default: the one in STUDY_DIR)")
    p.add_argument(
        "--out", default="runs", help="with --storage: parent folder of SWEEP_DIR (default: runs)"
    )
    p.add_argument("--json", action="store_true", help="print JSON, draw nothing")
    p.set_defaults(func=cmd_sweep_show)


def _add_storage_option(p, folder: str) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="sqlite:///FILE or postgresql://USER[:PASSWORD]@HOST:PORT/DB "
        f"(default: {folder}/study.db)",
    )


def _add_search_options(p) -> None:
    """How many trials, where they run, and how they are chosen and stopped."""
    p.add_argument(
        "--trials",
        type=int,
        help="finished trials in all, resumes included "
        "(default: 20; the grid's size with --sampler grid)",
    )
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="start no new trial after this long"
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="K",
        help="worker processes on this machine, each with cores/K threads (default 1)",
    )
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), help="default: tpe")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), help="default: median")
    _add_storage_option(p, "SWEEP_DIR")
    p.add_argument("--study", metavar="NAME", help="study name (default: the space file's stem)")
    p.add_argument("--seed", type=int, help="the sampler's seed (worker i of K adds i)")


def _add_output_options(p) -> None:
    """Where the sweep writes, what it prints, and what it does when done."""
    p.add_argument("--out", default="runs", help="parent folder of SWEEP_DIR (default: runs)")
    p.add_argument(
        "--final",
        action="store_true",
        help="then retrain the best configuration on the whole training set and "
        "report its test accuracy, once",
    )
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="TARGET",
        help="track each trial as `mlplab train --log` does; with mlflow[=TRACKING_URI], "
        "each trial is a run nested under one run for the study (repeatable)",
    )


def _quiet_optuna() -> None:
    """Optuna imported, or a one-line error naming the extra; its logging off, as we print
    our own line per trial."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("mlplab sweep needs Optuna: pip install 'mlplab[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def cmd_sweep_run(args) -> int:
    _quiet_optuna()
    plan = _plan(args)
    from mlplab.experiments.sweep import open_study, work

    if args.worker_threads:
        work(plan, args.worker_threads, None if args.quiet else _print_trial)
        return 0
    workers = args.workers or 1
    if workers < 1:
        raise ConfigError(f"--workers: must be at least 1, got {workers}")
    open_study(plan, heartbeat=False)  # a bad storage or space fails here, before any trial
    _write_sweep_json(plan)
    if workers == 1:
        work(plan, None, None if args.quiet else _print_trial)
    else:
        code = _run_workers(args, workers)
        if code:
            return code
    return _summary(plan, args)


def _plan(args):
    from mlplab.experiments.sweep import DEFAULT_TRIALS, SweepPlan, grid_size
    from mlplab.experiments.sweep_space import read_space
    from mlplab.experiments.sweep_storage import storage_url

    space = read_space(args.space)
    study = args.study or Path(args.space).stem
    sweep_dir = Path(args.out) / f"sweep-{study}"
    sampler = args.sampler or "tpe"
    trials = args.trials or (grid_size(space) if sampler == "grid" else DEFAULT_TRIALS)
    seed = None if args.seed is None else args.seed + args.worker_index
    return SweepPlan(
        space=space,
        study=study,
        sweep_dir=sweep_dir,
        storage=storage_url(args.storage, sweep_dir),
        trials=trials,
        timeout=args.timeout,
        sampler=sampler,
        pruner=args.pruner or "median",
        seed=seed,
        data_dir=data_dir(args),
        log=tuple(args.log),
    )


def _write_sweep_json(plan) -> None:
    from mlplab.config.targets import redact
    from mlplab.io.atomic import write_json

    write_json(
        plan.sweep_dir / "sweep.json",
        {"study": plan.study, "storage": redact(plan.storage), "space": plan.space.path},
    )


def _run_workers(args, workers: int) -> int:
    """This same command, K times as worker processes that share the cores."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    # `run` named before --workers goes, so `sweep --workers 2 show` stays a run of ./show.
    argv = ["sweep", *without_flag(_with_action(args.argv[1:]), "--workers")]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlplab",
                *argv,
                "--worker-threads",
                str(threads),
                "--worker-index",
                str(i),
            ],
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
        for i in range(workers)
    ]
    # A stopped parent stops its workers (SIGINT reaches them anyway: same process group).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        codes = [child.wait() for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=30)
    return next((c for c in codes if c), 0)


def _print_trial(row) -> None:
    params = " ".join(f"{k}={_short(v)}" for k, v in row.params.items())
    if row.state == "fail":
        line = f"trial {row.number} failed: {row.error or 'see the worker output'}"
    else:
        value = f"val {row.value:.2f}%" if row.value is not None else "no value"
        line = f"trial {row.number} {row.state}: {value} after {row.iterations} iterations"
        line += f", {row.seconds:.1f}s" if row.seconds is not None else ""
    print(f"{line}  {params}", flush=True)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _summary(plan, args) -> int:
    """The best trial, as a ready command line; with --final, its test accuracy, once."""
    from mlplab.config.targets import redact
    from mlplab.experiments.sweep import best_config, load_study, tally, train_final
    from mlplab.experiments.sweep_show import train_command

    study = load_study(plan.storage, plan.study)
    done, _ = tally(study)
    states = _state_counts(study)
    print(f"Study {plan.study!r}: {done} finished trials ({states})")
    try:
        best = study.best_trial
    except ValueError:
        print("No trial completed; nothing to recommend.")
        return 1
    print(f"Best: trial {best.number}, validation accuracy {best.value:.2f}%")
    print(f"  {train_command(best_config(study))}")
    if args.final:
        run_dir, result = train_final(study, plan.sweep_dir / "final", data_dir(args))
        print(
            f"Final (best configuration retrained on the whole training set, tested once): "
            f"test accuracy {result.test.accuracy:.2f}% - {run_dir}"
        )
    print(
        f"Sweep saved to {plan.sweep_dir} ({redact(plan.storage)}); "
        f"see: mlplab sweep show {plan.sweep_dir}"
    )
    return 0


def _state_counts(study) -> str:
    from collections import Counter

    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def cmd_sweep_show(args) -> int:
    _quiet_optuna()
    from mlplab.experiments.sweep import best_config, load_study
    from mlplab.experiments.sweep_show import (
        format_table,
        train_command,
        trial_rows,
        write_html,
        write_pictures,
    )
    from mlplab.experiments.sweep_storage import storage_url

    url, name, out = _show_source(args, storage_url)
    study = load_study(url, name)
    out = out or Path(args.out) / f"sweep-{study.study_name}"
    rows = trial_rows(study)
    names = sorted({k for r in rows for k in r.params})
    command = (
        train_command(best_config(study)) if any(r.state == "complete" for r in rows) else None
    )
    if args.json:
        _print_json(study.study_name, rows, command)
        return 0
    print(f"Study {study.study_name!r}: {len(rows)} trials")
    print(format_table(rows, names), end="")
    summary = "No trial completed yet."
    if command:
        best = rows[0]
        summary = f"Best: trial {best.number}, validation accuracy {best.value:.2f}%"
        print(f"{summary}\n  {command}")
    pictures = write_pictures(study, out)
    for path in pictures.values():
        print(f"Picture: {path}")
    page = write_html(
        f"mlplab sweep {study.study_name}", summary, command, rows, names, pictures, out
    )
    print(f"Report: {page}")
    return 0


def _print_json(name: str, rows, command: str | None) -> None:
    trials = [dataclasses.asdict(r) for r in rows]
    best = trials[0] if command else None
    print(json.dumps({"study": name, "trials": trials, "best": best, "command": command}, indent=2))


def _show_source(args, storage_url) -> tuple[str, str | None, Path | None]:
    """(storage URL, study name or None, folder for the pictures: STUDY_DIR, or None for
    OUT/sweep-STUDY) of a show command."""
    if args.target is not None:
        folder = Path(args.target)
        info = _read_sweep_json(folder)
        db = folder / "study.db"
        if args.storage:
            url = storage_url(args.storage, folder)
        elif db.is_file():
            url = storage_url(None, folder)
        else:
            raise ConfigError(f"{folder}: no study.db here; give --storage URL for this sweep")
        return url, args.study or info.get("study"), folder
    if not args.storage:
        raise ConfigError("show: give STUDY_DIR, or --storage URL and --study NAME")
    if args.storage.startswith("sqlite:///") and not Path(args.storage[10:]).is_file():
        raise ConfigError(f"{args.storage}: no such file")
    return storage_url(args.storage, Path(args.out)), args.study, None


def _read_sweep_json(folder: Path) -> dict:
    try:
        return json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    except OSError:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder") from None
        return {}
    except ValueError:
        raise ConfigError(f"{folder / 'sweep.json'}: not valid JSON") from None
