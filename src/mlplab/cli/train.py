"""mlplab train: flags (and a TOML file) -> TrainConfig -> a run directory."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mlplab.cli.common import add_config_flags, data_dir, download_bar, interactive


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model; writes <out>/<date-time>-<name>/ with "
        "config.json, metrics.jsonl, model.safetensors and model.json.",
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file; flags override it"
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped run from its newest valid state, with its own config; "
        "only --epochs, --iterations (to extend it), --eval-every, --checkpoint-every, "
        "--threads, --device, --data-dir and --quiet may be given",
    )
    add_config_flags(p)
    p.add_argument("--quiet", action="store_true", help="no per-evaluation lines or progress")
    p.set_defaults(func=cmd_train)


def config_from_args(args):
    """The TrainConfig of a command line: the TOML file, if any, then the flags over it."""
    from mlplab.config import TrainConfig, read_toml
    from mlplab.data.registry import REGISTRY
    from mlplab.errors import ConfigError

    values, source = {}, "config"
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
    if not values.get("data_dir"):
        values["data_dir"] = data_dir(args)
    config = TrainConfig.from_dict(values, source)
    if config.dataset not in REGISTRY:
        raise ConfigError(
            f"dataset: unknown {config.dataset!r}; choose one of: {', '.join(REGISTRY)}"
        )
    return config


def resume_config_from_args(args):
    """A resumed run's config: its config.json, with the few flags a resume may change."""
    from mlplab.config import TrainConfig
    from mlplab.errors import ConfigError
    from mlplab.training.runner import resume_with, resumed_config

    if args.config:
        raise ConfigError("--config: a resumed run takes its settings from RUN_DIR/config.json")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {k: v for k, v in vars(args).items() if k in names}
    saved = resumed_config(args.resume, None)
    if data_dir(args) and "data_dir" not in changes:
        changes["data_dir"] = data_dir(args)
    return resume_with(saved, {k: v for k, v in changes.items() if getattr(saved, k) != v})


def cmd_train(args) -> int:
    from mlplab.data.dataset import load_dataset
    from mlplab.training.engines import resolve_engine
    from mlplab.training.runner import run
    from mlplab.training.signals import StopOnSignal
    from mlplab.training.trainer import Interrupted

    config = resume_config_from_args(args) if args.resume else config_from_args(args)
    resolve_engine(config)  # an engine that cannot train the model fails before the data loads
    data = load_dataset(config.dataset, data_dir=config.data_dir, progress=download_bar())
    progress = _progress() if interactive(args) else None
    callbacks = [progress] if progress else []
    try:
        with StopOnSignal() as stopper:
            run_dir, result = run(
                config, data=data, callbacks=[*callbacks, stopper], resume_from=args.resume
            )
    except Interrupted as e:
        print(
            f"stopped at iteration {e.iteration}; resume with: mlplab train --resume {e.run_dir}",
            file=sys.stderr,
        )
        return stopper.exit_code
    finally:
        if progress is not None:
            progress.close()
    line = (
        f"Test accuracy: {result.test.accuracy:.2f}% (loss {result.test.loss:.4f}) "
        f"after {result.iterations} iterations in {result.seconds:.1f}s"
    )
    if result.val is not None:
        line += (
            f"; validation {result.val.accuracy:.2f}% (best at iteration {result.best_iteration})"
        )
    print(line)
    _train_pictures(run_dir, data)
    print(f"Run saved to {run_dir}")
    return 0


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


def _train_pictures(run_dir: Path, data) -> None:
    """The curves and the confusion matrix of a finished run, when matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    from mlplab.viz.report import plot_run

    plot_run(run_dir, data, only=("curves", "confusion"))
