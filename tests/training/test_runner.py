"""run(): the run directory, its states as the run goes, and resuming (in process; the real
processes and signals are in tests/cli/test_resume.py)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings

import pytest
import torch

from conftest import head
from mlplab.config import TrainConfig
from mlplab.errors import CheckpointError, ConfigError, MlplabError, MlplabWarning
from mlplab.io import atomic
from mlplab.io.rundir import describe_run, locked, read_metrics
from mlplab.io.states import list_states, load_state
from mlplab.runner import run
from mlplab.training import resume
from mlplab.training.callbacks import Callback
from mlplab.training.trainer import Interrupted
from mlplab.training.trainer import train as train_in_memory


@pytest.fixture(scope="module")
def small(mnist):
    return head(mnist, 1000, 300)  # 16 steps an epoch at batch 64


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(
        preset="c",
        batch_size=64,
        iterations=40,
        eval_every=10,
        schedule="constant",
        lr=3e-3,
        device="cpu",
        out=str(tmp_path),
        augment="shift",
    )
    return TrainConfig(**{**base, **kw})


def names(folder) -> list[str]:
    return [p.name for p in list_states(folder)]


def weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "model.safetensors")


def same_run(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    def strip(run_dir):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run_dir)]

    assert strip(a) == strip(b)


class InterruptAt(Callback):
    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_step(self, trainer):
        if trainer.state.iteration == self.iteration:
            trainer.interrupt("test")


@pytest.mark.parametrize(
    "every, kept",
    [(None, ["000000030", "000000040"]), (7, ["000000035", "000000040"]), (0, ["000000040"])],
)
def test_states_are_saved_as_the_run_goes_and_the_newest_two_kept(small, tmp_path, every, kept):
    config = cfg(tmp_path, checkpoint_every=every, iterations=40)
    seen = []

    class Watch(Callback):
        def on_iteration_end(self, trainer):
            seen.append(sorted(names(run_dir_of(tmp_path) / "state")))

    run_dir, _ = run(config, small, callbacks=[Watch()])
    assert names(run_dir / "state") == kept
    assert max(len(s) for s in seen) <= 2
    # the last state is that of the last step, before the run's closing evaluation
    last = load_state(run_dir / "state" / kept[-1])
    assert last["loop"]["iteration"] == 40 and last["loop"]["total"] == 40


def run_dir_of(out):
    return next(p for p in out.iterdir() if p.is_dir())


def test_an_interrupted_run_resumes_exactly(small, tmp_path):
    config = cfg(tmp_path / "a", augment="affine", val_size=200, patience=50)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(23)])
    run_dir = stopped.value.run_dir
    assert stopped.value.iteration == 23 and names(run_dir / "state")[-1] == "000000023"
    assert describe_run(run_dir)["status"] == "stopped" and describe_run(run_dir)["iteration"] == 23
    resumed_dir, resumed = run(None, small, resume_from=run_dir)
    reference_dir, reference = run(config.replace(out=str(tmp_path / "b")), small)
    assert resumed_dir == run_dir
    same_run(run_dir, reference_dir)
    assert resumed.best_iteration == reference.best_iteration
    assert describe_run(run_dir)["status"] == "finished"


def test_the_python_api_resumes_too(small, tmp_path):
    config = cfg(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(17)])
    result = train_in_memory(config, small, resume_from=stopped.value.run_dir)
    reference = train_in_memory(config, small)
    for a, b in zip(result.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("old, new", [(40, 70), (45, 70)])
def test_a_finished_run_extends_to_the_run_that_was_longer_from_the_start(
    small, tmp_path, old, new
):
    """45 is no multiple of eval_every: its closing evaluation is not in the longer run,
    and the extension drops it (the state comes from before it)."""
    first, _ = run(cfg(tmp_path / "a", iterations=old), small)
    assert read_metrics(first)[-1]["kind"] == "final"
    extended, _ = run(cfg(tmp_path / "a", iterations=new), small, resume_from=first)
    longer, _ = run(cfg(tmp_path / "b", iterations=new), small)
    same_run(extended, longer)
    assert json.loads((first / "config.json").read_text())["iterations"] == new


@pytest.mark.parametrize("iterations", [40, 45])
def test_a_finished_run_resumes_to_a_clean_finish_without_a_step(small, tmp_path, iterations):
    """45 ends off an evaluation, so its closing evaluation comes after its last state."""
    done, first = run(cfg(tmp_path, iterations=iterations), small)
    before = {p.name: p.read_bytes() for p in (done / "state").rglob("*") if p.is_file()}
    stepped = []

    class Steps(Callback):
        def on_step(self, trainer):
            stepped.append(trainer.state.iteration)

    again_dir, again = run(None, small, resume_from=done, callbacks=[Steps()])
    assert again_dir == done and stepped == []
    assert again.resumed_from == again.iterations == first.iterations == iterations
    assert resume.already_finished(again) and not resume.already_finished(first)
    assert again.test.accuracy == first.test.accuracy and again.test.loss == first.test.loss
    records = read_metrics(done)
    assert [r["kind"] for r in records].count("final") == 1 and records[-1]["kind"] == "final"
    after = {p.name: p.read_bytes() for p in (done / "state").rglob("*") if p.is_file()}
    assert after == before  # no new state: nothing was trained


def test_a_run_killed_after_its_last_state_gets_its_model_and_final_line(small, tmp_path):
    """What a kill while drawing the pictures (after the last state) leaves: the resume writes
    the model and the final line, the same as the run that was never killed."""
    done, _ = run(cfg(tmp_path / "a", iterations=45), small)
    reference, _ = run(cfg(tmp_path / "b", iterations=45), small)
    (done / "model.safetensors").unlink()
    (done / "model.json").unlink()
    lines = (done / "metrics.jsonl").read_text().splitlines(keepends=True)
    (done / "metrics.jsonl").write_text("".join(lines[:-2]))  # the closing eval and final
    _, again = run(None, small, resume_from=done)
    assert resume.already_finished(again)
    same_run(done, reference)
    assert json.loads((done / "model.json").read_text())["iterations"] == 45


def test_a_finished_run_resumed_in_memory_returns_its_result(small, tmp_path):
    done, first = run(cfg(tmp_path), small)
    again = train_in_memory(cfg(tmp_path), small, resume_from=done)
    assert again.resumed_from == again.iterations == 40
    for a, b in zip(again.model.parameters(), first.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_resume_help_is_made_from_what_a_resume_may_change():
    from mlplab.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if "--resume" in a.option_strings]
    help_text = " ".join(action.help.split())
    for name in resume.RESUMABLE:
        flag = f"--{name.replace('_', '-')}"
        assert flag in help_text
        assert any(flag in a.option_strings for a in train._actions), flag
    assert "--log" in help_text and "--quiet" in help_text


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step"])
def test_extending_a_schedule_that_depends_on_the_length_is_refused(small, tmp_path, schedule):
    done, _ = run(cfg(tmp_path, schedule=schedule), small)
    with pytest.raises(
        ConfigError, match=rf"/state.json: iterations: the {schedule} schedule spreads"
    ):
        run(cfg(tmp_path, schedule=schedule, iterations=60), small, resume_from=done)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lr=1e-3), r"^lr: cannot change when resuming \(it would change the run\)"),
        (dict(seed=4), r"^seed: cannot change when resuming"),
        (dict(batch_size=32), r"^batch_size: cannot change when resuming"),
        (dict(out="elsewhere"), r"^out: cannot change when resuming"),
        (dict(eval_every=5, val_size=100), r"^val_size: cannot change"),
    ],
)
def test_only_what_cannot_change_the_run_may_change_on_resume(small, tmp_path, change, message):
    config = cfg(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(5)])
    with pytest.raises(ConfigError, match=message):
        run(config.replace(**change), small, resume_from=stopped.value.run_dir)


def test_evaluations_may_not_move_when_a_validation_split_chooses_the_model(small, tmp_path):
    config = cfg(tmp_path, val_size=100)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(5)])
    with pytest.raises(ConfigError, match=r"^eval_every: the best model and early stopping"):
        run(config.replace(eval_every=5), small, resume_from=stopped.value.run_dir)


def test_an_edited_number_in_the_newest_state_is_caught_and_skipped(small, tmp_path):
    """state.json parses after the edit, so only its own checksum can tell."""
    config = cfg(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(25)])
    run_dir = stopped.value.run_dir
    tree = run_dir / "state" / "000000025" / "state.json"
    tree.write_text(tree.read_text().replace('"iteration": 25', '"iteration": 24', 1))
    with pytest.warns(MlplabWarning, match=r"000000025/state.json: checksum mismatch: .*before it"):
        run(None, small, resume_from=run_dir)
    reference, _ = run(config.replace(out=str(tmp_path / "ref")), small)
    same_run(run_dir, reference)


def test_a_damaged_newest_state_falls_back_to_the_one_before(small, tmp_path):
    config = cfg(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(25)])
    run_dir = stopped.value.run_dir
    assert names(run_dir / "state") == ["000000020", "000000025"]
    tensors = run_dir / "state" / "000000025" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-100])  # truncated
    with pytest.warns(MlplabWarning, match=r"000000025/tensors.safetensors: truncated"):
        run(None, small, resume_from=run_dir)
    reference, _ = run(config.replace(out=str(tmp_path / "ref")), small)
    same_run(run_dir, reference)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "state.json").write_text('{"format": "mlplab-train-state"'), "corrupt"),
        (lambda d: (d / "state.json").unlink(), "cannot read"),
        (lambda d: (d / "tensors.safetensors").write_bytes(b"\0" * 64), "truncated or padded"),
    ],
)
def test_with_every_state_damaged_the_error_names_the_file(small, tmp_path, damage, message):
    with pytest.raises(Interrupted) as stopped:
        run(cfg(tmp_path), small, callbacks=[InterruptAt(25)])
    run_dir = stopped.value.run_dir
    for state in list_states(run_dir / "state"):
        damage(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlplabWarning)
        with pytest.raises(
            CheckpointError, match=rf"no valid training state .*000000025.*{message}"
        ):
            run(None, small, resume_from=run_dir)


def test_a_checksum_catches_a_flipped_byte(small, tmp_path):
    with pytest.raises(Interrupted) as stopped:
        run(cfg(tmp_path), small, callbacks=[InterruptAt(12)])
    tensors = stopped.value.run_dir / "state" / "000000012" / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0x01
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tensors.safetensors: checksum mismatch"):
        load_state(tensors.parent)


def test_a_run_killed_before_its_first_state_starts_over(small, tmp_path):
    config = cfg(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        run(config, small, callbacks=[InterruptAt(5)])
    run_dir = stopped.value.run_dir
    shutil.rmtree(run_dir / "state")  # as if killed before anything was saved
    assert describe_run(run_dir)["status"] == "failed"
    with pytest.warns(MlplabWarning, match=r"no saved state yet; starting the run from the"):
        run(None, small, resume_from=run_dir)
    reference, _ = run(config.replace(out=str(tmp_path / "ref")), small)
    same_run(run_dir, reference)


def test_a_full_disk_stops_training_with_the_path_and_keeps_the_previous_state(
    small, tmp_path, monkeypatch
):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 8:  # the writes of the first states go through, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(
        CheckpointError,
        match=r"state/0000000\d\d: cannot write the training state: No space left on device",
    ):
        run(cfg(tmp_path), small)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    run_dir = run_dir_of(tmp_path)
    assert list((run_dir / "state").glob(".*")) == []  # no temp left behind
    saved = list_states(run_dir / "state")
    assert saved and load_state(saved[-1])["loop"]["iteration"] == int(saved[-1].name)
    assert describe_run(run_dir)["status"] == "stopped"


def test_metrics_readers_never_trust_an_unfinished_line(small, tmp_path):
    with pytest.raises(Interrupted) as stopped:
        run(cfg(tmp_path), small, callbacks=[InterruptAt(25)])
    run_dir = stopped.value.run_dir
    records = read_metrics(run_dir)
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "eval", "iteration": 30, "train_lo')  # a crash mid-line
    assert read_metrics(run_dir) == records
    run(None, small, resume_from=run_dir)  # the resumed run rewrites the file from its state
    assert all(line.endswith("}") for line in (run_dir / "metrics.jsonl").read_text().splitlines())


def test_one_process_at_a_time_trains_a_run(small, tmp_path):
    with pytest.raises(Interrupted) as stopped:
        run(cfg(tmp_path), small, callbacks=[InterruptAt(5)])
    run_dir = stopped.value.run_dir
    with locked(run_dir):
        assert describe_run(run_dir)["status"] == "running"
        with pytest.raises(MlplabError, match="another mlplab process is training this run"):
            run(None, small, resume_from=run_dir)
    assert describe_run(run_dir)["status"] == "stopped"
