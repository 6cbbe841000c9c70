"""mlplab train: flags (and a TOML file) -> TrainConfig -> a run directory."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from mlplab.cli.common import (
    add_config_flags,
    config_from_args,
    data_dir,
    download_bar,
    interactive,
    torchrun_safe,
    without_flag,
)


def add_parsers(sub) -> None:
    from mlplab.training import resume

    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model; writes <out>/<date-time>-<name>/ with "
        "config.json, metrics.jsonl, model.safetensors and model.json.",
    )
    p.add_argument(
        "--recipe",
        metavar="NAME",
        help="start from a named recipe (mlplab recipes lists them); --config and flags "
        "override it",
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file; flags override it"
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help=resume.help_text(also="--quiet"),
    )
    add_config_flags(p)
    p.add_argument("--quiet", action="store_true", help="no per-evaluation lines or progress")
    p.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="train data-parallel in N processes on this machine: starts "
        "`torchrun --standalone --nproc-per-node N -m mlplab train ...` (for several machines, "
        "run torchrun yourself); --batch-size is the global batch",
    )
    p.add_argument(
        "--dist-backend",
        choices=("gloo", "nccl"),
        help="under torchrun: the process group's backend (default: nccl for GPUs, gloo for CPUs)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="under torchrun: how long a process waits for the others at any step (default 300)",
    )
    p.set_defaults(func=cmd_train)


def resume_changes(args) -> dict:
    """The fields a resume command line gives again (run() checks which it may change)."""
    from mlplab.config import TrainConfig
    from mlplab.errors import ConfigError

    if args.config or args.recipe:
        flag = "--config" if args.config else "--recipe"
        raise ConfigError(f"{flag}: a resumed run takes its settings from RUN_DIR/config.json")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {k: v for k, v in vars(args).items() if k in names}
    if data_dir(args) and "data_dir" not in changes:
        changes["data_dir"] = data_dir(args)
    return changes


def cmd_train(args) -> int:
    from mlplab.training.distributed import from_environment

    if args.nproc_per_node:
        return _torchrun(args)
    job = from_environment(os.environ, args.dist_backend, args.dist_timeout)
    if job is None:
        return _train(args, None)
    from mlplab.training.distributed import process_group

    with process_group(job):
        return _train(args, job)


def _train(args, job) -> int:
    """Train (one process, or one rank of a torchrun job); rank 0 alone prints."""
    from mlplab.data.dataset import load_dataset
    from mlplab.runner import run
    from mlplab.tracking.trackers import check_targets
    from mlplab.training.engines import resolve_engine
    from mlplab.training.signals import StopOnSignal
    from mlplab.training.trainer import Interrupted

    main = job is None or job.main
    config, data = None, None
    if not args.resume:
        config = config_from_args(args)
        resolve_engine(config)  # an engine that cannot train the model fails before the data
        check_targets(config)  # ... and so does a tracking server that does not answer
        data = load_dataset(config.dataset, data_dir=config.data_dir, progress=download_bar())
    progress = _progress() if main and interactive(args) else None
    changes = resume_changes(args) if args.resume else None
    pictures = _pictures()
    try:
        with StopOnSignal() as stopper:
            run_dir, result = run(
                config,
                data=data,
                # pictures before the trackers (run() adds them after these), which send them
                callbacks=[progress, stopper, pictures] if progress else [stopper, pictures],
                resume_from=args.resume,
                changes=changes,
                dist=job,
                download_progress=download_bar(),
            )
    except Interrupted as e:
        if main:
            print(
                f"stopped at iteration {e.iteration}; resume with: "
                f"mlplab train --resume {e.run_dir}",
                file=sys.stderr,
            )
        return stopper.exit_code
    finally:
        if progress is not None:
            progress.close()
    if main:
        _report(result, run_dir)
    return 0


def _report(result, run_dir: Path) -> None:
    """The final line and where the run is; and, for a finished run resumed, that it was."""
    from mlplab.training.resume import already_finished

    if already_finished(result):
        print(
            f"{run_dir}: the run was already finished at iteration {result.iterations}; "
            "wrote what was missing of it",
            file=sys.stderr,
        )
    line = (
        f"Test accuracy: {result.test.accuracy:.2f}% (loss {result.test.loss:.4f}) "
        f"after {result.iterations} iterations in {result.seconds:.1f}s"
    )
    if result.val is not None:
        line += (
            f"; validation {result.val.accuracy:.2f}% (best at iteration {result.best_iteration})"
        )
    print(line)
    print(f"Run saved to {run_dir}")


def _torchrun(args) -> int:
    """Start this same command under torchrun, in N processes on this machine."""
    if args.nproc_per_node < 1:
        from mlplab.errors import ConfigError

        raise ConfigError(f"--nproc-per-node: must be at least 1, got {args.nproc_per_node}")
    argv = torchrun_safe(without_flag(args.argv, "--nproc-per-node"))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc_per_node}",
        "-m",
        "mlplab",
        *argv,
    ]
    # torchrun would set OMP_NUM_THREADS=1 itself, with a banner; each rank sets its own
    # threads anyway (cores / processes on this machine, or --threads).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.stdout.flush()
    os.execv(sys.executable, command)  # torchrun takes this process over, signals included


def _progress():
    """A callback that prints the tutorials' lines, and a progress bar when tqdm is there."""
    from mlplab.training.callbacks import Callback

    class Progress(Callback):
        def __init__(self):
            try:
                from tqdm import tqdm
            except ImportError:
                self.bar = None
            else:
                self.bar = tqdm(total=1, unit="it", leave=False, dynamic_ncols=True)
            self.write = self.bar.write if self.bar is not None else print

        def on_train_begin(self, trainer):
            if trainer.state.iteration:
                self.write(f"Resuming at iteration {trainer.state.iteration} of {trainer.total}")

        def on_step(self, trainer):
            it, total = trainer.state.iteration, trainer.total
            if self.bar is not None and (it % 10 == 0 or it == total):
                if self.bar.total != total:
                    self.bar.reset(total=total)
                self.bar.update(it - self.bar.n)

        def on_evaluate(self, trainer, evaluation):
            r = evaluation.record
            accuracy = r.get("test_accuracy", r.get("val_accuracy", float("nan")))
            self.write(
                f"Iteration: {r['iteration']}. Loss: {r['train_loss']:.4f}. "
                f"Accuracy: {accuracy:.2f}"
            )

        def on_epoch_end(self, trainer, r):
            self.write(
                f"Epoch {r['epoch']}: train loss {r['train_loss']:.4f}, "
                f"train accuracy {r['train_accuracy']:.2f}"
            )

        def close(self):
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _pictures():
    """A callback that draws the curves and the confusion matrix of a finished run once its
    model is written (when matplotlib is installed)."""
    from mlplab.training.callbacks import Callback

    class Pictures(Callback):
        def on_saved(self, trainer, run_dir: Path) -> None:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                return
            from mlplab.viz.report import plot_run

            plot_run(run_dir, trainer.data, only=("curves", "confusion"))

    return Pictures()
