"""MLflow: a run's config, metrics by step, tags and files, in an MLflow run.

Written with MlflowClient (the `mlflow` extra) to a tracking server (http://...) or a local
store (sqlite:///mlflow.db, MLflow's own default); the run goes in the `mlplab` experiment
(or $MLFLOW_EXPERIMENT_NAME, which MLflow reads). It gets:

- the config as params, and tags: the model spec, engine, dataset, run directory, and the
  git commit of mlplab's source when it is a checkout;
- the metrics mlplab.tracking.scalars names, by step, sent at each evaluation;
- once the run directory is whole: the model (model.safetensors and model.json; no pickle),
  config.json, metrics.jsonl and the pictures, as artifacts.

Every call goes out from one thread, in order, so a slow or dead server never holds
training up for long: the trainer waits for the calls only when the state is saved (so that
what the state has seen is logged) and at the end, each time for at most WAIT seconds. The
first failure warns once, and nothing more is sent; training and the run directory go on.

A resumed run continues its MLflow run (RUN/mlflow.json names it) and skips every step of a
metric that the run already holds: those were logged before the stop, with the same values.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from mlplab.config import TrainConfig
from mlplab.config.targets import redact
from mlplab.errors import MlplabError, MlplabWarning
from mlplab.io.atomic import write_json
from mlplab.io.sqlite_lock import first_use_lock
from mlplab.tracking.scalars import (
    StepLoss,
    epoch_scalars,
    evaluation_scalars,
    final_scalars,
    hparam_values,
)
from mlplab.training.callbacks import Callback, Evaluation, ResultView, TrainerView

EXPERIMENT = "mlplab"
RUN_FILE = "mlflow.json"  # in the run directory: which MLflow run it is logged to
PROBE_TIMEOUT = 3.0  # seconds for the first answer of a tracking server
WAIT = 10.0  # seconds training waits for the sent calls at a saved state
WAIT_END = 60.0  # ... and for the files at the end
ARTIFACTS = ("model.safetensors", "model.json", "metrics.jsonl", "report.html")


def tracking_uri(uri: str | None) -> str:
    """The URI to log to; a server must answer within PROBE_TIMEOUT seconds, or the error
    says so, the URI's password hidden. A URI given is probed before MLflow is imported
    (about 3 s of the 10 s an unreachable server may cost)."""
    if importlib.util.find_spec("mlflow") is None:
        raise MlplabError("--log mlflow needs the mlflow package: pip install 'mlplab[mlflow]'")
    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()  # MLFLOW_TRACKING_URI, else MLflow's default
    if uri.startswith(("http://", "https://")):
        probe(uri)
    return uri


def probe(uri: str) -> None:
    """Any HTTP answer from the server's /health will do (a 401 is a server too)."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    url = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT):
            pass
    except urllib.error.HTTPError:
        pass
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise MlplabError(
            f"--log mlflow={redact(uri)}: cannot reach the tracking server: {reason}"
        ) from None


def open_experiment(uri: str | None):
    """(MlflowClient, its URI, the experiment's id). Any failure is an MlplabError."""
    uri = tracking_uri(uri)
    from mlflow import MlflowClient

    try:
        with first_use_lock(uri):
            client = MlflowClient(uri)
            return client, uri, experiment_id(client)
    except MlplabError:
        raise
    except Exception as e:
        raise MlplabError(f"--log mlflow={redact(uri)}: {_reason(e)}") from None


def experiment_id(client) -> str:
    """The id of the `mlplab` experiment (or $MLFLOW_EXPERIMENT_NAME's), made if need be."""
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_NAME

    name = MLFLOW_EXPERIMENT_NAME.get() or EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process made it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class MlflowLog(Callback):
    """Logs a run to MLflow (see the module docstring).

    Args:
        uri: the tracking URI; None: MLflow's own (MLFLOW_TRACKING_URI, else its default).
        run_dir: the run directory; RUN/mlflow.json keeps the MLflow run's id for a resume.
            None: no run directory (the scikit-learn estimator), and a new MLflow run that
            ends with training.
        config: the run's config, logged as params.
        parent: an MLflow run id to nest this run under (a sweep's study run).
        tags: more tags for the run.
        run_name: the MLflow run's name (default: the run directory's).
        loss: the StepLoss to read the training loss through (one the TensorBoardLog shares).
    """

    name = "mlflow"  # for state_dict(), called whenever the state is saved

    def __init__(
        self,
        uri: str | None,
        run_dir: Path | None,
        config: TrainConfig,
        parent: str | None = None,
        tags: dict[str, str] | None = None,
        run_name: str | None = None,
        loss: StepLoss | None = None,
    ):
        self.client, self.uri, self.experiment = open_experiment(uri)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config, self.parent, self.tags = config, parent, tags or {}
        self.run_name = run_name or (self.run_dir.name if self.run_dir else "mlp")
        self.run_id: str | None = None
        self.sender = Sender(redact(self.uri))
        self.loss = loss or StepLoss()  # another tracker's, to share its reads
        self.pending: list = []
        self.logged: dict[str, int] = {}  # a resumed run: the last step of each metric
        self.ended = False
        self._open_run()  # now, before training: an error stops the run before it starts

    def on_train_begin(self, trainer: TrainerView) -> None:
        self.loss.begin(trainer.state)

    def _open_run(self) -> None:
        """Continue the run that RUN/mlflow.json names (a resume), or start one."""
        saved = read_run_file(self.run_dir) if self.run_dir else None
        try:
            if saved and saved.get("uri") == redact(self.uri):
                self.run_id = saved["run_id"]
                self.logged = self._logged_steps()
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                self._start()
            self.client.set_tag(self.run_id, "mlplab.config", json.dumps(_shown(self.config)))
        except Exception as e:
            raise MlplabError(f"--log mlflow={redact(self.uri)}: {_reason(e)}") from None

    def _start(self) -> None:
        from mlflow.entities import Param

        tags = {
            "mlflow.source.name": "mlplab",
            "mlflow.source.type": "LOCAL",
            "mlplab.spec": self.config.model_spec,
            "mlplab.dataset": self.config.dataset,
            **self.tags,
        }
        if self.run_dir:
            tags["mlplab.run_dir"] = str(self.run_dir.resolve())
        commit = source_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        run = self.client.create_run(self.experiment, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        if self.run_dir:
            write_json(
                self.run_dir / RUN_FILE,
                {"uri": redact(self.uri), "experiment_id": self.experiment, "run_id": self.run_id},
            )
        params = [Param(k, str(v)) for k, v in hparam_values(self.config).items()]
        self.client.log_batch(self.run_id, params=params)

    def _logged_steps(self) -> dict[str, int]:
        run = self.client.get_run(self.run_id)
        return {
            key: max(m.step for m in self.client.get_metric_history(self.run_id, key))
            for key in run.data.metrics
        }

    def _add(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in values.items():
            if step > self.logged.get(key, -1):
                self.pending.append(Metric(key, float(value), now, step))

    def _send(self) -> None:
        if self.pending:
            metrics, self.pending = self.pending, []
            for i in range(0, len(metrics), 1000):  # MLflow's limit for one batch
                self.sender.submit(self.client.log_batch, self.run_id, metrics[i : i + 1000])

    def on_step(self, trainer: TrainerView) -> None:
        values = self.loss.after_step(trainer.state)
        if values:
            self._add(values, trainer.state.iteration)

    def on_evaluate(self, trainer: TrainerView, evaluation: Evaluation) -> None:
        self._add(evaluation_scalars(evaluation), evaluation.iteration)
        self._send()

    def on_epoch_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self._add(epoch_scalars(record), record["iteration"])

    def on_interrupt(self, trainer: TrainerView) -> None:
        self._send()
        self.sender.submit(self.client.set_terminated, self.run_id, "KILLED")
        self.ended = True
        self.sender.wait(WAIT)

    def on_train_end(self, trainer: TrainerView, result: ResultView) -> None:
        self._add(final_scalars(result), result.iterations)
        self._tag("mlplab.engine", result.engine)
        if result.stop_reason:
            self._tag("mlplab.stop_reason", result.stop_reason)
        self._send()  # the run ends once the model is written: on_saved, or log_fitted

    def _tag(self, key: str, value: str) -> None:
        self.sender.submit(self.client.set_tag, self.run_id, key, value)

    def on_saved(self, trainer: TrainerView, run_dir: Path) -> None:
        self.sender.submit(self._upload, run_dir)
        self.end("FINISHED")

    def log_fitted(self, path: Path) -> None:
        """A run without a run directory (the estimator's): its model file, saved after
        training, goes in model/; the run ends, and the file may go once this returns."""
        self.sender.submit(self.client.log_artifact, self.run_id, str(path), "model")
        self.end("FINISHED")

    def end(self, status: str) -> None:
        """End the run (once) and wait for every call sent, at most WAIT_END seconds."""
        if not self.ended:
            self.sender.submit(self.client.set_terminated, self.run_id, status)
            self.ended = True
        self.sender.wait(WAIT_END)
        self.sender.close()  # a process that runs many fits keeps no idle thread per run

    def _upload(self, run_dir: Path) -> None:
        """The run directory's model, log and pictures, and its config without passwords."""
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                folder = "model" if name.startswith("model.") else None
                self.client.log_artifact(self.run_id, str(run_dir / name), folder)
        for picture in sorted(run_dir.glob("plots/*.png")):
            self.client.log_artifact(self.run_id, str(picture), "plots")
        self.client.log_dict(self.run_id, _shown(self.config), "config.json")

    def state_dict(self) -> dict[str, Any]:
        self._send()
        self.sender.wait(WAIT)
        return {}


def _shown(config: TrainConfig) -> dict[str, Any]:
    """The config as MLflow shows it: every URI's password hidden."""
    values = config.to_dict()
    values["log"] = [redact(t) for t in values["log"]]
    return values


def read_run_file(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _reason(e: Exception) -> str:
    text = str(getattr(e, "message", None) or e).strip().splitlines()
    return text[0] if text else type(e).__name__


def source_commit() -> str | None:
    """The git commit of mlplab's own source, when it is run from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


class Sender:
    """Runs calls in order on one thread. wait(t) blocks until the calls so far are done,
    for at most t seconds; the first failure (an error, or no answer in time) warns once,
    and the calls after it are dropped. close() ends the thread once the calls so far are
    done; calls after it are dropped."""

    def __init__(self, where: str):
        self.where, self.failed, self.closed = where, False, False
        self.queue: SimpleQueue = SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="mlplab-mlflow", daemon=True)
        self.thread.start()

    def submit(self, call, *args) -> None:
        if not (self.failed or self.closed):
            self.queue.put((call, args))

    def wait(self, timeout: float) -> bool:
        if self.failed or self.closed:
            return not self.failed
        done = threading.Event()
        self.queue.put(done)
        if not done.wait(timeout):
            self._fail(f"no answer in {timeout:g} s")
        return not self.failed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put(None)

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            call, args = item
            if self.failed:
                continue
            try:
                call(*args)
            except Exception as e:
                self._fail(_reason(e))

    def _fail(self, reason: str) -> None:
        if not self.failed:
            self.failed = True
            warnings.warn(
                f"mlflow {self.where}: {reason}; training goes on, and the rest of this run "
                "is not sent to MLflow (the run directory has all of it)",
                MlplabWarning,
                stacklevel=2,
            )
