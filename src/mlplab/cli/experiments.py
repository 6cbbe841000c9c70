"""mlplab reproduce: the classic tutorials' experiments beside their published numbers."""

from __future__ import annotations

import sys

from mlplab.cli.common import DATA_DIR_HELP, load
from mlplab.errors import MlplabError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the tutorials' experiments beside their numbers",
        description="Run the classic tutorials' experiments with their own "
        "hyperparameters over several seeds and print a table of our test "
        "accuracy beside the published numbers; writes "
        "<out>/<date-time>-reproduce/reproduce.md.",
    )
    p.add_argument("--quick", action="store_true", help="a tiny budget, for tests")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--only", help="comma-separated experiment keys (default: all)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", default="runs", help="parent folder of the run directory")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> int:
    from mlplab.experiments.reproduce import EXPERIMENTS, format_table, reproduce
    from mlplab.io.rundir import create_run_dir
    from mlplab.training.device import pick_device

    if args.list:
        for exp in EXPERIMENTS:
            print(f"{exp.key:20} {exp.title}: {exp.source}")
        return 0
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise MlplabError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    keys = tuple(k.strip() for k in args.only.split(",")) if args.only else None
    known = {e.key for e in EXPERIMENTS}
    for key in keys or ():
        if key not in known:
            raise MlplabError(f"--only: unknown experiment {key!r}; see --list")
    device = pick_device(args.device)
    cache: dict = {}

    def cached(name: str):
        if name not in cache:
            cache[name] = load(args, name)
        return cache[name]

    def progress(exp, seed, result):
        print(
            f"{exp.key} seed {seed}: {result.test.accuracy:.2f}% in {result.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    rows = reproduce(
        cached, seeds=seeds, quick=args.quick, keys=keys, device=device, on_result=progress
    )
    table = format_table(rows, quick=args.quick)
    run_dir = create_run_dir(args.out, "reproduce")
    _save(run_dir, rows, table, device, seeds, args.quick)
    print(table, end="")
    print(f"Table saved to {run_dir / 'reproduce.md'}")
    return 0


def _save(run_dir, rows, table: str, device, seeds: tuple[int, ...], quick: bool) -> None:
    """reproduce.md (the command and the table) and reproduce.json (every number)."""
    from mlplab.io.atomic import atomic_write_text, write_json

    command = "mlplab " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mlplab reproduce"
    atomic_write_text(
        run_dir / "reproduce.md",
        f"# mlplab reproduce\n\nCommand: `{command}`, device {device}, seeds "
        f"{', '.join(map(str, seeds))}{', quick budget' if quick else ''}.\n\n{table}",
    )
    write_json(
        run_dir / "reproduce.json",
        [
            {
                "key": r.experiment.key,
                "accuracies": r.accuracies,
                "seconds": r.seconds,
                "mean": r.mean,
                "std": r.std,
                "published": r.experiment.published,
            }
            for r in rows
        ],
    )
