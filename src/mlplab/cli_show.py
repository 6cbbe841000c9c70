"""Commands that show things: plot, report, data show, reproduce. Registered by mlplab.cli."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlplab.errors import MlplabError


def add_parsers(sub, data_sub, data_dir_help: str) -> None:
    for name, func, text, description in (
        (
            "plot",
            cmd_plot,
            "write every picture of a run",
            "Write the training curves, confusion matrix, an image with its class "
            "probabilities, sample images, first-layer weights and the most confident "
            "mistakes to RUN_DIR/plots/.",
        ),
        (
            "report",
            cmd_report,
            "write a self-contained report.html for a run",
            "Write RUN_DIR/report.html: config, metrics, per-class accuracy and every "
            "picture embedded; it opens offline.",
        ),
    ):
        p = sub.add_parser(name, help=text, description=description)
        p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
        p.add_argument("--data-dir", help=data_dir_help)
        p.set_defaults(func=func)

    q = data_sub.add_parser(
        "show",
        help="a grid of sample images with their labels",
        description="Write a PNG grid of sample images with their labels.",
    )
    q.add_argument("name", metavar="NAME", help="mnist, fashion-mnist or kmnist")
    q.add_argument("--split", choices=("train", "test"), default="train")
    q.add_argument("--count", type=int, default=64, help="images to show, up to 64")
    q.add_argument("-o", "--output", help="PNG to write (default: NAME-samples.png)")
    q.add_argument("--data-dir", help=data_dir_help)
    q.set_defaults(func=cmd_data_show)

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
    p.add_argument("--data-dir", help=data_dir_help)
    p.set_defaults(func=cmd_reproduce)


def _load(args, name: str):
    from mlplab.cli import _data_dir, _download_bar
    from mlplab.data import load_dataset

    return load_dataset(name, data_dir=_data_dir(args), progress=_download_bar())


def _run_dataset(args):
    from mlplab.checkpoint import load_checkpoint

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise MlplabError(f"{run_dir}: not a run directory (no metrics.jsonl)")
    return run_dir, _load(args, load_checkpoint(run_dir).info["dataset"])


def cmd_plot(args) -> int:
    from mlplab.report import plot_run

    run_dir, data = _run_dataset(args)
    for path in plot_run(run_dir, data).values():
        print(path)
    return 0


def cmd_report(args) -> int:
    from mlplab.report import write_report

    run_dir, data = _run_dataset(args)
    print(write_report(run_dir, data))
    return 0


def cmd_data_show(args) -> int:
    from mlplab.plots import sample_grid

    if not 1 <= args.count <= 64:
        raise MlplabError(f"--count must be between 1 and 64, got {args.count}")
    data = _load(args, args.name)
    split = getattr(data, args.split)
    out = args.output or f"{args.name}-samples.png"
    print(
        sample_grid(
            split.x, split.y, data.classes, out, n=args.count, title=f"{args.name} {args.split}"
        )
    )
    return 0


def cmd_reproduce(args) -> int:
    from mlplab.reproduce import EXPERIMENTS, format_table, reproduce
    from mlplab.runs import create_run_dir
    from mlplab.train import pick_device

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

    def load(name: str):
        if name not in cache:
            cache[name] = _load(args, name)
        return cache[name]

    def progress(exp, seed, result):
        print(
            f"{exp.key} seed {seed}: {result.test.accuracy:.2f}% in {result.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    rows = reproduce(
        load, seeds=seeds, quick=args.quick, keys=keys, device=device, on_result=progress
    )
    table = format_table(rows, quick=args.quick)
    run_dir = create_run_dir(args.out, "reproduce")
    command = "mlplab " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mlplab reproduce"
    (run_dir / "reproduce.md").write_text(
        f"# mlplab reproduce\n\nCommand: `{command}`, device {device}, seeds "
        f"{', '.join(map(str, seeds))}{', quick budget' if args.quick else ''}.\n\n{table}"
    )
    (run_dir / "reproduce.json").write_text(
        json.dumps(
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
            indent=2,
        )
    )
    print(table, end="")
    print(f"Table saved to {run_dir / 'reproduce.md'}")
    return 0
