"""A sweep in MLflow: one parent run for the study, each trial a run nested under it.

Each trial's training is logged by the same MlflowLog as `mlplab train --log mlflow` (its
metrics by step, params, model and pictures), with the parent's id as mlflow.parentRunId.
Once Optuna has settled a trial, its run gets Optuna's tags (`state`: COMPLETE, PRUNED or
FAIL, `number`, and the trial's user attributes) and its `value`, as Optuna's MLflowCallback
names them; a failed trial's run is marked FAILED, and a trial that failed before it trained
(an invalid sampled config) gets a run of its own, so that every trial shows.

Optuna's own MLflowCallback is not used: it is deprecated (Optuna 4.9), it logs through
MLflow's process-wide active run, and it nests trials only under a run started in the same
process, while a study's workers are separate processes, here or on other machines. The
parent's id is kept in the study (a user attribute), made once under the study's lock.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mlplab.config.targets import parse_logs, redact
from mlplab.errors import MlplabWarning
from mlplab.tracking.mlflow_log import open_experiment, read_run_file

PARENT_ATTR = "mlplab:mlflow_parent"


class StudyRuns:
    """The study's parent run, and the settling of each trial's run."""

    def __init__(self, uri: str | None, study, lock):
        self.client, self.uri, self.experiment = open_experiment(uri)
        lock.acquire()
        try:
            saved = study.user_attrs.get(PARENT_ATTR) or {}
            self.parent = saved.get(redact(self.uri))
            if self.parent is None:
                run = self.client.create_run(
                    self.experiment,
                    run_name=f"study {study.study_name}",
                    tags={"mlflow.source.name": "mlplab sweep", "optuna.study": study.study_name},
                )
                self.parent = run.info.run_id
                study.set_user_attr(PARENT_ATTR, {**saved, redact(self.uri): self.parent})
        finally:
            lock.release()

    @classmethod
    def of(cls, log: tuple[str, ...], study, lock) -> StudyRuns | None:
        """The study's MLflow runs when `log` names mlflow, else None."""
        for target in parse_logs(log):
            if target.kind == "mlflow":
                return cls(target.where, study, lock)
        return None

    def tags(self, study, number: int) -> dict[str, str]:
        return {"optuna.study": study.study_name, "number": str(number)}

    def settle(self, study, trial) -> None:
        """An Optuna callback: tag the finished trial's run with its state and value. A
        tracking server that fails warns, and the sweep goes on."""
        try:
            self._settle(study, trial)
        except Exception as e:
            warnings.warn(
                f"mlflow {redact(self.uri)}: trial {trial.number} not settled: {e}",
                MlplabWarning,
                stacklevel=2,
            )

    def _settle(self, study, trial) -> None:
        run_dir = trial.user_attrs.get("run_dir")
        saved = read_run_file(Path(run_dir)) if run_dir else None
        if saved is None or saved.get("uri") != redact(self.uri):
            run_id = self._failed_run(study, trial)
        else:
            run_id = saved["run_id"]
        tags = {
            **{k: str(v) for k, v in trial.user_attrs.items()},
            "state": trial.state.name,
            "number": str(trial.number),
        }
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value[:5000])
        if trial.value is not None:
            self.client.log_metric(run_id, "value", trial.value)
        if trial.state.name == "FAIL":
            self.client.set_terminated(run_id, "FAILED")

    def _failed_run(self, study, trial) -> str:
        """A run for a trial that never trained (its config was invalid)."""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment,
            run_name=f"trial {trial.number}",
            tags={"mlflow.parentRunId": self.parent, **self.tags(study, trial.number)},
        )
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        if params:
            self.client.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    def close(self, study, done: bool) -> None:
        """Mark the parent finished once the study holds all its trials, with the best."""
        try:
            best = study.best_trial
        except ValueError:
            best = None
        if best is not None:
            self.client.log_metric(self.parent, "best_value", best.value, step=best.number)
            self.client.set_tag(self.parent, "best_trial", str(best.number))
        if done:
            self.client.set_terminated(self.parent, "FINISHED")
