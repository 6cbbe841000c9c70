"""The Trainer: the seven-step recipe as small named steps over an explicit, saveable state.

Load data, batch it, build the model, the loss, the optimizer, train, and test every N
iterations. One iteration is: take a batch, step, account, and when due evaluate and
record; what varies (early stopping, the best checkpoint, logs, progress bars) hooks in
through callbacks. The whole split stays on the device; the host waits for it only at
evaluations (float() and int() are sync points), never per step.

Every random stream has its own seeded generator, saved with the state: shuffling (the
sampler's), augmentation, dropout and mixup. state_dict() holds everything needed to continue
a run exactly; load_state_dict() continues it, and the result is identical to a run that
never stopped.

After each optimizer step the max-norm constraint rescales the weights and the weight
average (ema) takes them in, on every rank alike after a data-parallel step's all-reduce.
With a weight average, evaluations, the best-by-validation choice and the final model all
use the average's weights; training goes on from the live ones
(mlplab.training.techniques).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlplab.config import TrainConfig
from mlplab.data.augment import augment
from mlplab.data.dataset import Dataset, Split, stratified_split
from mlplab.data.sampler import BatchSampler
from mlplab.data.streams import restore
from mlplab.errors import CheckpointError, ConfigError, MlplabError
from mlplab.io.states import load_state, save_state
from mlplab.nn.init import init_weights
from mlplab.nn.model import MLP, build_model
from mlplab.nn.normalization import Normalization, make_normalization
from mlplab.training import resume
from mlplab.training.callbacks import BestByValidation, Callback, EarlyStopping, Evaluation
from mlplab.training.device import pick_device, torch_threads
from mlplab.training.distributed import Distributed, StepReducer, all_reduce
from mlplab.training.engines import make_engine, resolve_engine
from mlplab.training.evaluate import Metrics, evaluate
from mlplab.training.optim import Schedule
from mlplab.training.state import TrainState
from mlplab.training.techniques import Mix, WeightAverage, mixup

Record = dict[str, Any]


@dataclass
class TrainResult:
    """The trained model (best by validation when there is one) and what happened."""

    model: MLP
    norm: Normalization
    test: Metrics | None
    val: Metrics | None
    history: list[Record] = field(default_factory=list)
    iterations: int = 0
    best_iteration: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    engine: str = "autograd"  # the engine that trained it (config "auto" resolved)
    stop_reason: str | None = None  # why it ended before its planned length, if it did
    resumed_from: int | None = None  # the iteration of the state it resumed from, if any


class Interrupted(Exception):
    """Training paused at a step's end on request (a signal); its state can be resumed."""

    def __init__(self, iteration: int, reason: str):
        super().__init__(f"stopped at iteration {iteration} ({reason})")
        self.iteration, self.reason = iteration, reason
        self.run_dir: Path | None = None  # set by run() when there is a run directory


class Clock:
    """A run's training time in this process: it runs from the Trainer's start (or resume)
    but while stopped. `mlplab train` never stops it but to set up a tracker; the lab, which
    steps several runs in turn, runs each one's clock only during that run's own steps."""

    def __init__(self):
        self._since: float | None = time.perf_counter()
        self._total = 0.0

    @property
    def elapsed(self) -> float:
        now = time.perf_counter()
        return self._total + (now - self._since if self._since is not None else 0.0)

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self._total += time.perf_counter() - self._since
            self._since = None

    def reset(self) -> None:
        """Zero, and running (a resumed run counts its earlier time in its state)."""
        self._total, self._since = 0.0, time.perf_counter()

    @contextlib.contextmanager
    def stopped(self):
        """Time spent inside is not training time."""
        running = self._since is not None
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()


def stream_seed(seed: int, stream: str) -> int:
    """A seed for one named random stream of a run, independent of the others."""
    digest = hashlib.sha256(f"mlplab:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class Trainer:
    """Trains one model on one dataset as the config says; see the module docstring.

    Args:
        config: the run's hyperparameters.
        data: a registered dataset or in-memory arrays (Dataset.from_arrays), on any device;
            with per-row weights (Dataset.from_arrays(weights=...)) the loss is their
            weighted mean (mlplab.training.engines).
        device: where to train; default: config.device.
        callbacks: hooks called through the run (see mlplab.training.callbacks).
        norm: the input normalisation; default: from config.normalization and the data.
        dist: this process's place in a data-parallel job (mlplab.training.distributed),
            whose process group is already up; None for a process on its own.
        initial: the model to start from (trained in place), built from the config's spec;
            default: a fresh one, initialised as config.init says.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: Dataset,
        device: torch.device | str | None = None,
        callbacks: Sequence[Callback] = (),
        norm: Normalization | None = None,
        dist: Distributed | None = None,
        initial: MLP | None = None,
    ):
        self.clock = Clock()
        self.config, self.data, self.dist = config, data, dist
        self.engine_name = resolve_engine(config)
        check_data(config, data)
        check_parallel(config, self.engine_name, dist)
        check_weights(self.engine_name, data, dist)
        self.device = torch.device(device) if device is not None else self._pick_device()
        self.train_split, self.val_split = self._splits(config, data)
        self.test_split = data.test.to(self.device) if data.test is not None else None
        self.norm = norm or make_normalization(config.normalization, self.train_split.x, data.stats)
        self.sampler = self._sampler(config, dist)
        self.total = config.iterations or config.epochs * self.sampler.batches_per_epoch
        self.eval_every = config.eval_every or self.sampler.batches_per_epoch
        self.schedule = Schedule(
            config.schedule, config.lr, self.total, config.step_size, config.gamma
        )
        self.generators = self._generators(config)
        model = self._initial_model(initial)
        self.engine = make_engine(config, model, self.generators["dropout"])
        self.reducer = StepReducer(self.engine.flat_grads()) if dist else None
        self.average = WeightAverage(config.ema, self.engine.averaged()) if config.ema else None
        self.state = TrainState.start(self.device)
        self.interrupted: str | None = None  # agreed by every rank: training pauses
        self._interrupt_asked: str | None = None  # asked of this rank
        self.resumed_from: int | None = None  # the iteration of the state loaded, if any
        self.best = BestByValidation() if self.val_split is not None else None
        own = [self.best] if self.best else []
        if config.patience:
            own.append(EarlyStopping(config.patience))
        self.callbacks: list[Callback] = [*own, *callbacks]

    def _sampler(self, config: TrainConfig, dist: Distributed | None) -> BatchSampler:
        """The batches of the training split; in a data-parallel run, this rank's share."""
        rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
        size = len(self.train_split)
        if dist and 0 < size % config.batch_size < world:
            raise ConfigError(
                f"batch_size: each epoch's last batch would hold {size % config.batch_size} "
                f"images for {world} processes; choose a batch size that leaves every "
                "process some",
                field="batch_size",
            )
        return BatchSampler(
            size,
            config.batch_size,
            config.seed,
            self.device,
            shuffle=config.shuffle,
            rank=rank,
            world_size=world,
        )

    def _generators(self, config: TrainConfig) -> dict[str, torch.Generator]:
        """One seeded generator per random stream, saved with the state."""
        generators = {
            name: torch.Generator(device=self.device).manual_seed(stream_seed(config.seed, name))
            for name in ("augment", "dropout")
        }
        if config.mixup:  # on the host: its one number a batch is read without a device sync
            generators["mixup"] = torch.Generator().manual_seed(stream_seed(config.seed, "mixup"))
        return generators

    def _pick_device(self) -> torch.device:
        return (
            self.dist.device(self.config.device) if self.dist else pick_device(self.config.device)
        )

    def _splits(self, config: TrainConfig, data: Dataset) -> tuple[Split, Split | None]:
        """The training split and the validation split held out of it, on the device; with
        train_size, a stratified sample of the rest is the training split."""
        train, val = data.train, None
        if config.val_size:
            keep, held = stratified_split(train.y, config.val_size, config.seed)
            train, val = train.subset(keep), train.subset(held)
        if config.train_size:
            seed = stream_seed(config.seed, "train_size")
            train = train.subset(stratified_split(train.y, config.train_size, seed)[1])
        return train.to(self.device), val.to(self.device) if val is not None else None

    def _initial_model(self, initial: MLP | None = None) -> MLP:
        if initial is None:
            # The init draws from torch's default CPU generator, seeded here and then put
            # back, so a run starts from the same weights whatever the caller's RNG has done.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                model = init_weights(build_model(self.config.model_spec), self.config.init)
        elif initial.spec != self.config.parsed_spec:
            spec = self.config.parsed_spec
            raise ConfigError(
                f"model: the initial model is {initial.spec}, the config's {spec}", field="model"
            )
        else:
            model = initial
        if self.dist and model.spec.batch_norm:  # check_parallel allowed it: CUDA
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model.to(self.device)

    # --- the loop ------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state.iteration >= self.total or self.state.stop_reason is not None

    def run(self) -> TrainResult:
        """Train to the end of the run (or until a callback stops it) and return the result.

        Raises Interrupted, after the on_interrupt callbacks (which save the state), when
        interrupt() was called: the run can then continue from that state.
        """
        threads = self.config.threads or (self.dist.threads() if self.dist else None)
        with torch_threads(threads):
            self.begin()
            while not self.finished and self.interrupted is None:
                self.step()
            if not self.finished:
                self.pause()
                raise Interrupted(self.state.iteration, self.interrupted)
            return self.finish()

    def begin(self) -> None:
        """Before the first step that this process takes: the callbacks' on_train_begin.
        run() calls it; a loop of its own (the lab's) calls it, then step() and finish()."""
        self._call("on_train_begin")

    def pause(self) -> None:
        """Training stops here for now: the callbacks' on_interrupt (which save the state, so
        that the run can continue exactly)."""
        self._call("on_interrupt")

    def step(self) -> None:
        """One iteration: take a batch, step, account, evaluate and end the epoch when due.

        Nothing here depends on the run's length, so a run extended later takes the same
        steps; the closing evaluation belongs to finish().
        """
        x, y, mix, weights = self._take_batch()
        lr = self.schedule(self.state.iteration)
        if weights is not None:
            loss, logits = self.engine.forward_backward(x, y, mix, weights)
        elif mix is None:
            loss, logits = self.engine.forward_backward(x, y)
        else:
            loss, logits = self.engine.forward_backward(x, y, mix)
        if self.reducer is None:
            self._account(loss, logits, y, lr)
        else:
            self._reduce_step(loss, logits, y, lr)
        self.engine.update(lr)
        self._after_update()
        self._call("on_step")
        if self.state.iteration % self.eval_every == 0:
            self.evaluate()
        if self.sampler.epoch_done:
            self._end_epoch()
        self._call("on_iteration_end")

    def _take_batch(self) -> tuple[torch.Tensor, torch.Tensor, Mix | None, torch.Tensor | None]:
        """x, y, the mixup partner (or None) and the rows' loss weights (or None)."""
        idx = self.sampler.next()
        x, y = self.train_split.batch(idx, self.norm)
        weights = self.train_split.weights(idx)
        if self.config.augment != "none":
            x = augment(
                x,
                self.config.augment,
                self.norm.blank,
                self.generators["augment"],
                part=self.sampler.share,
            )
        if not self.config.mixup:
            return x, y, None, weights
        x, mix = mixup(x, y, self.config.mixup, self.generators["mixup"])
        return x, y, mix, weights  # training accuracy counts each row against its own label, y

    def _after_update(self) -> None:
        """What follows each optimizer step: max-norm, then the weight average."""
        if self.config.max_norm is not None:
            self.engine.constrain(self.config.max_norm)
        if self.average is not None:
            self.average.update()

    def model(self) -> MLP:
        """The live network (not the weight average's), up to date."""
        return self.engine.module()

    def last_grads(self) -> list[torch.Tensor | None]:
        """The last step's weight gradient of each linear layer (None before a step)."""
        return self.engine.linear_grads()

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's buffers, for a fit that continues with new data."""
        return self.engine.optimizer_state()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Continue the optimizer from optimizer_state() of a trainer of the same model."""
        self.engine.load_optimizer_state(state)

    def eval_module(self) -> MLP:
        """The model evaluations score and results keep: the weight average's, when there is
        one, else the engine's own (live) one."""
        if self.average is None:
            return self.engine.module()
        return self.engine.module_from(self.average.value())

    def _account(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, lr: float):
        s = self.state
        with torch.no_grad():
            s.loss_total.add_(loss.detach(), alpha=len(y))
            s.correct_total.add_((logits.argmax(1) == y).sum())
        s.seen += len(y)
        s.iteration += 1
        s.lr = lr

    def _reduce_step(self, loss, logits, y, lr: float) -> None:
        """Sum the step over the ranks: the gradients (as the whole batch's), the loss and
        accuracy totals, and the requests to stop, in one all-reduce."""
        start, total = self.sampler.share
        correct = (logits.argmax(1) == y).sum()
        asked = 1.0 if self._interrupt_asked else 0.0
        summed = self.reducer(
            self.engine.grads, [loss * len(y), correct, len(y), asked], len(y) / total
        )
        s = self.state
        s.loss_total.add_(summed[0])
        s.correct_total.add_(summed[1].round().long())
        s.seen += total
        s.iteration += 1
        s.lr = lr
        if float(summed[3]) > 0 and self.interrupted is None:
            self.interrupted = self._interrupt_asked or "stopped with another rank"

    def evaluate(self) -> Evaluation:
        """Evaluate the current model on the validation and test splits, and record it."""
        s = self.state
        now = s.mark()
        window = now.since(s.window)
        record: Record = {
            "kind": "eval",
            "iteration": s.iteration,
            "epoch": self.sampler.epoch,
            "train_loss": window["train_loss"],
            "train_accuracy": window["train_accuracy"],
            "lr": s.lr,
        }
        s.window, s.last_eval = now, s.iteration
        val, test = self._score(self.val_split), self._score(self.test_split)
        s.latest = {"val": val and val.to_dict(), "test": test and test.to_dict()}
        if val is not None:
            record.update(val_loss=val.loss, val_accuracy=val.accuracy)
        if test is not None:
            record.update(test_loss=test.loss, test_accuracy=test.accuracy)
        record["seconds"] = self.seconds
        s.records.append(record)
        evaluation = Evaluation(record, val, test)
        self._call("on_evaluate", evaluation)
        return evaluation

    def _score(self, split: Split | None) -> Metrics | None:
        """The current model's metrics on a split; each rank scores its shard of it."""
        if split is None:
            return None
        model, classes = self.eval_module(), self.data.num_classes
        if self.dist is None:
            return evaluate(model, split, self.norm, classes)
        world, rank = self.dist.world_size, self.dist.rank
        shard = Split(split.x.tensor_split(world)[rank], split.y.tensor_split(world)[rank])
        return evaluate(model, shard, self.norm, classes, reduce=all_reduce)

    def _end_epoch(self) -> None:
        s = self.state
        now = s.mark()
        window = now.since(s.epoch_start)
        record = {
            "kind": "epoch",
            "epoch": self.sampler.epoch,
            "iteration": s.iteration,
            "train_loss": window["train_loss"],
            "train_accuracy": window["train_accuracy"],
        }
        s.epoch_start = now
        s.records.append(record)
        self._call("on_epoch_end", record)

    def finish(self) -> TrainResult:
        """End the run: evaluate the last step if it was not, close a partial epoch, and
        return the chosen model (the best by validation when there is a validation split)."""
        if self.state.last_eval != self.state.iteration:
            self.evaluate()
        if self.sampler.in_partial_epoch:
            self._end_epoch()
        result = self.result()
        self._call("on_train_end", result)
        return result

    def result(self) -> TrainResult:
        s, best = self.state, self.best
        model = copy.deepcopy(self.eval_module())
        if best is not None and best.weights is not None:
            model.load_state_dict(best.weights)
            val, test = best.val, best.test
        else:
            val, test = (
                Metrics.from_dict(m) if m else None
                for m in (s.latest.get("val"), s.latest.get("test"))  # none before an evaluation
            )
        return TrainResult(
            model=model.eval(),
            norm=self.norm,
            test=test,
            val=val,
            history=list(s.records),
            iterations=s.iteration,
            best_iteration=best.iteration if best else None,
            stopped_early=s.stopped_early,
            seconds=self.seconds,
            engine=self.engine_name,
            stop_reason=s.stop_reason,
            resumed_from=self.resumed_from,
        )

    def stop(self, reason: str, early: bool = True) -> None:
        """Ask training to end after the current step (callbacks call this). The run is then
        finished: evaluated, its model chosen."""
        if self.state.stop_reason is None:
            self.state.stop_reason = reason
            self.state.stopped_early = early

    def set_lr(self, lr: float) -> float:
        """Train at learning rate `lr` from the next step on; returns it as the schedule
        gives it. The schedule keeps its shape, scaled so that it passes through `lr` now
        (for onecycle, the peak moves with it). The change is saved with the state, so a
        resumed run takes the same steps."""
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ConfigError(f"lr: must be a finite number, got {lr!r}", field="lr")
        if lr <= 0:
            raise ConfigError(f"lr: must be positive, got {lr}", field="lr")
        now = self.state.iteration
        shape = self.schedule(now) / self.schedule.lr
        if not shape > 0:
            raise ConfigError(
                f"lr: the {self.schedule.kind} schedule is at 0 at step {now}", field="lr"
            )
        base = float(lr) / shape
        self.state.lr_changes.append([now, base])
        self.schedule = dataclasses.replace(self.schedule, lr=base)
        return self.schedule(now)

    def interrupt(self, reason: str) -> None:
        """Ask training to pause after the current step (a signal handler calls this); run()
        then raises Interrupted, and the run can continue from its saved state. In a
        data-parallel run every rank pauses after the same step: the next all-reduce tells
        them all."""
        if self._interrupt_asked is None:
            self._interrupt_asked = reason
            if self.dist is None:
                self.interrupted = reason

    def clock_stopped(self):
        """Time spent inside is not training time (setting up a tracker, say)."""
        return self.clock.stopped()

    @property
    def seconds(self) -> float:
        """Training time so far, across every process that worked on this run."""
        return self.state.seconds + self.clock.elapsed

    def saved(self, run_dir: Path) -> None:
        """Tell the callbacks that the run directory is whole (its model written)."""
        self._call("on_saved", run_dir)

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # --- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (tensors and JSON values)."""
        return {
            "identity": resume.identity(self),
            "loop": {**self.state.state_dict(), "seconds": self.seconds, "total": self.total},
            "sampler": self.sampler.state_dict(),
            "engine": self.engine.state_dict(),
            "generators": {k: g.get_state() for k, g in self.generators.items()},
            "callbacks": {c.name: c.state_dict() for c in self.callbacks if c.name},
            **({"average": self.average.state_dict()} if self.average else {}),
        }

    def load_state_dict(self, state: dict[str, Any], source: str | None = None) -> None:
        """Continue from a state_dict() of a run of the same model, engine and data.

        A state that does not fit (another model or config) raises a ConfigError, and one
        that is not a state at all (a field missing or of the wrong kind) a CheckpointError;
        either names `source`, the file it came from, when given. The trainer is then half
        loaded, and is to be thrown away."""
        try:
            self._load_state_dict(state)
        except ConfigError as e:
            if source is None:
                raise
            raise ConfigError(f"{source}: {e}", field=e.field) from None
        except MlplabError as e:
            if source is None:
                raise
            raise type(e)(f"{source}: {e}") from None
        except (
            LookupError,
            TypeError,
            ValueError,
            ArithmeticError,
            AttributeError,
            RuntimeError,
        ) as e:
            what = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            where = source or "the training state"
            raise CheckpointError(f"{where}: not a state this run can continue ({what})") from None

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        resume.check_fits(self, state)
        # the sampler and the engine check what they load, so they go first
        self.sampler.load_state_dict(state["sampler"])
        self.engine.load_state_dict(state["engine"])
        self.state.load_state_dict(state["loop"])
        if self.state.lr_changes:
            self.schedule = dataclasses.replace(self.schedule, lr=self.state.lr_changes[-1][1])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        self.clock.reset()
        for name, generator in self.generators.items():
            restore(generator, state["generators"][name], self.config.seed, name)
        saved = state["callbacks"]
        for callback in self.callbacks:
            if callback.name and callback.name in saved:
                callback.load_state_dict(saved[callback.name])
        self.resumed_from = self.state.iteration

    def save_state(self, path: str | Path) -> Path:
        """Write state_dict() to the folder `path`, atomically (mlplab.training.state)."""
        return save_state(path, self.state_dict())

    def load_state(self, path: str | Path) -> None:
        """Continue from a folder written by save_state."""
        self.load_state_dict(load_state(path), str(Path(path) / "state.json"))

    def resume(self, path: str | Path) -> Path | None:
        """Continue from the newest valid state of a run directory (RUN/state/...), or from a
        state folder; returns the state loaded, None when the run saved none yet
        (mlplab.training.resume)."""
        return resume.load(self, path)


def check_parallel(config: TrainConfig, engine: str, dist: Distributed | None) -> None:
    """What a data-parallel run needs: an engine that can share its gradients, batch norm
    only where SyncBatchNorm runs (GPUs), and a global batch every rank gets an equal share of."""
    if dist is None:
        return
    world = dist.world_size
    if engine == "scratch":
        raise ConfigError(
            "engine: scratch trains in one process; use fast or autograd with torchrun",
            field="engine",
        )
    if config.parsed_spec.batch_norm and dist.device(config.device).type != "cuda":
        raise ConfigError(
            "model: batch norm in a data-parallel run needs SyncBatchNorm, which torch runs on "
            "GPUs only; drop bn, or train in one process",
            field="model",
        )
    if config.batch_size % world:
        raise ConfigError(
            f"batch_size: the global batch of {config.batch_size} does not divide evenly "
            f"among {world} processes",
            field="batch_size",
        )
    if config.mixup:
        raise ConfigError(
            "mixup: pairs images across the whole batch, which a data-parallel run splits "
            "among its processes; train in one process",
            field="mixup",
        )


def check_weights(engine: str, data: Dataset, dist: Distributed | None) -> None:
    """Per-row loss weights (data.train.w) need an engine that takes them, in one process."""
    if data.train.w is None:
        return
    if engine == "scratch":
        raise ConfigError(
            "engine: scratch has no sample weights; use engine fast or autograd", field="engine"
        )
    if dist is not None:
        raise ConfigError(
            "weights: a data-parallel run weighs every row alike; train weighted data in one "
            "process",
            field="weights",
        )


def check_data(config: TrainConfig, data: Dataset) -> None:
    """The config fits the data: its name, its input size and its number of classes."""
    if config.dataset != data.name:
        raise ConfigError(
            f"dataset: the config names {config.dataset!r} but the data is {data.name!r}",
            field="dataset",
        )
    spec = config.parsed_spec
    if spec.sizes[0] != data.num_features:
        raise ConfigError(
            f"model: the input size must be {data.num_features} for {data.name}, "
            f"got {spec.sizes[0]}",
            field="model",
        )
    if spec.sizes[-1] != data.num_classes:
        raise ConfigError(
            f"model: the output size must be {data.num_classes} for {data.name}, "
            f"got {spec.sizes[-1]}",
            field="model",
        )
    available = len(data.train) - config.val_size
    if config.train_size and config.train_size >= available:
        held = f" ({config.val_size} held out for validation)" if config.val_size else ""
        raise ConfigError(
            f"train_size: {data.name} has {available} training images{held}; train_size must "
            f"be below that, got {config.train_size}",
            field="train_size",
        )
    if config.augment != "none" and data.num_features != 784:
        raise ConfigError(
            f"augment: needs 28x28 images, {data.name} has {data.num_features} features",
            field="augment",
        )


def train(
    config: TrainConfig,
    data: Dataset,
    device: torch.device | str | None = None,
    callbacks: Sequence[Callback] = (),
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Train a model as the config says.

    Args:
        config: the run's hyperparameters.
        data: a loaded dataset, or in-memory arrays (Dataset.from_arrays).
        device: where to train; default: config.device.
        callbacks: hooks called at each step, evaluation and epoch, and at the end.
        resume_from: a run directory (or a state folder) to continue from its newest
            valid state; the result is the one the run would have given uninterrupted.
    Returns:
        A TrainResult; with a validation split the model is the best one by validation
        accuracy, and `test` is measured on that model for reporting only.
    """
    trainer = Trainer(config, data, device, callbacks)
    if resume_from is not None:
        trainer.resume(resume_from)
    return trainer.run()
