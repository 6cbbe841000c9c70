"""mlplab plot|report: every picture of a run, and its self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from mlplab.cli.common import DATA_DIR_HELP, load
from mlplab.errors import MlplabError


def add_parsers(sub) -> None:
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
        p.add_argument("--data-dir", help=DATA_DIR_HELP)
        p.set_defaults(func=func)


def _run_dataset(args):
    from mlplab.io.checkpoint import load_checkpoint

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise MlplabError(f"{run_dir}: not a run directory (no metrics.jsonl)")
    return run_dir, load(args, load_checkpoint(run_dir).info["dataset"])


def cmd_plot(args) -> int:
    from mlplab.viz.report import plot_run

    run_dir, data = _run_dataset(args)
    for path in plot_run(run_dir, data).values():
        print(path)
    return 0


def cmd_report(args) -> int:
    from mlplab.viz.report import write_report

    run_dir, data = _run_dataset(args)
    print(write_report(run_dir, data))
    return 0
