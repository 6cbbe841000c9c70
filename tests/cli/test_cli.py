"""The mlplab command end to end: subprocesses in tmp_path, real MNIST, files read back."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import mlplab
from mlplab import cli
from mlplab.cli.common import ENV_DATA
from mlplab.config import TrainConfig
from mlplab.io.safetensors import decode_safetensors
from mlplab.nn.presets import PRESETS
from mlplab.nn.spec import parse_spec

# Each subprocess spends ~4 s importing torch; independent ones run two at a time, each on one
# intra-op thread (two processes with two threads each thrash a 2-core machine).
WORKERS = 2
TRAIN = ("train", "--device", "cpu", "--quiet")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_DATA}
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **(extra or {})}


def mlplab_cmd(*args, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m mlplab ARGS` in cwd, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mlplab", *map(str, args)],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def mlplab_many(calls: dict[str, tuple], cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    """Several independent commands, WORKERS at a time; name -> result."""
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {name: pool.submit(mlplab_cmd, *args, cwd=cwd) for name, args in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def ok(proc: subprocess.CompletedProcess) -> str:
    """The stdout of a command that must have succeeded silently on stderr."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def tensors_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return decode_safetensors((run_dir / "model.safetensors").read_bytes())[0]


# --- one real run, shared ----------------------------------------------------------------------


@dataclass
class Trained:
    work: Path
    empty: Path
    proc: subprocess.CompletedProcess
    run_dir: Path
    info: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """`mlplab train --preset c --iterations 200` with MLPLAB_DATA naming an empty folder."""
    work = tmp_path_factory.mktemp("cli")
    empty = work / "empty-data"
    empty.mkdir()
    proc = mlplab_cmd(
        *TRAIN,
        *("--preset", "c", "--iterations", "200", "--batch-size", "128", "--eval-every", "50"),
        *("--out", work / "runs", "--name", "t"),
        cwd=work,
        env={ENV_DATA: str(empty)},
    )
    ok(proc)
    (run_dir,) = run_dirs(work / "runs")
    return Trained(work, empty, proc, run_dir, json.loads((run_dir / "model.json").read_text()))


@pytest.fixture(scope="module")
def uses(trained) -> dict[str, subprocess.CompletedProcess]:
    """The commands that read the trained run."""
    run_dir = trained.run_dir
    return mlplab_many(
        {
            "evaluate": ("evaluate", run_dir, "--device", "cpu"),
            "evaluate-json": (
                "evaluate",
                run_dir / "model.safetensors",
                "--device",
                "cpu",
                "--json",
            ),
            "inspect": ("inspect", run_dir),
        },
        trained.work,
    )


def test_train_prints_the_final_test_accuracy(trained):
    lines = trained.proc.stdout.splitlines()
    # Not a terminal: no per-evaluation lines, no progress bar; just the result.
    assert len(lines) == 2, lines
    m = re.fullmatch(
        r"Test accuracy: (\d+\.\d\d)% \(loss (\d+\.\d{4})\) after 200 iterations in [\d.]+s",
        lines[0],
    )
    assert m, lines[0]
    assert m[1] == f"{trained.info['test_accuracy']:.2f}"
    assert m[2] == f"{trained.info['test_loss']:.4f}"
    assert 90 < trained.info["test_accuracy"] < 100
    assert lines[1] == f"Run saved to {trained.run_dir}"
    assert trained.proc.stderr == ""


def test_train_writes_the_run_directory(trained):
    run_dir = trained.run_dir
    assert re.fullmatch(r"\d{8}-\d{6}-t", run_dir.name)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock",  # held while a process trains the run
        "config.json",
        "metrics.jsonl",
        "model.json",
        "model.safetensors",
        "plots",  # curves and confusion matrix, since matplotlib is installed
        "state",  # the newest two training states, to resume or extend the run
    ]
    assert sorted(p.name for p in (run_dir / "state").iterdir()) == ["000000150", "000000200"]
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert config == TrainConfig(
        preset="c",
        iterations=200,
        batch_size=128,
        eval_every=50,
        device="cpu",
        out=str(trained.work / "runs"),
        name="t",
        data_dir=str(trained.empty),
    )

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["iteration"] for r in evals] == [50, 100, 150, 200]
    for r in evals:
        assert {"train_loss", "lr", "test_loss", "test_accuracy", "seconds"} <= r.keys()
    assert [(r["epoch"], r["iteration"]) for r in records if r["kind"] == "epoch"] == [(1, 200)]
    assert records[-1]["kind"] == "final" and records[-1]["iteration"] == 200
    assert records[-1]["engine"] == "fast"  # what --engine auto chose for preset c
    assert len(records) == len(evals) + 2
    assert records[-1]["test_accuracy"] == evals[-1]["test_accuracy"]

    info = trained.info
    assert info["spec"] == "784-100-10:relu"
    assert info["dataset"] == "mnist"
    assert info["normalization"] == {"mean": 0.5, "std": 0.5}
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["test_accuracy"] == records[-1]["test_accuracy"]
    assert info["seed"] == 0 and info["iterations"] == 200 and info["device"] == "cpu"
    assert info["engine"] == "fast"
    assert info["versions"]["mlplab"] == mlplab.__version__
    assert info["versions"]["torch"] == torch.__version__
    assert info["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["config"] == config.to_dict()

    tensors, metadata = decode_safetensors((run_dir / "model.safetensors").read_bytes())
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "fc1.weight": (100, 784),
        "fc1.bias": (100,),
        "fc2.weight": (10, 100),
        "fc2.bias": (10,),
    }
    assert json.loads(metadata["mlplab"]) == info


def test_data_dir_from_the_environment_falls_through_to_the_cache(trained):
    # MLPLAB_DATA is looked at first; it is empty, so the files came from the cache, and
    # nothing was downloaded into it.
    assert json.loads((trained.run_dir / "config.json").read_text())["data_dir"] == str(
        trained.empty
    )
    assert list(trained.empty.iterdir()) == []


def test_evaluate_agrees_with_the_run(trained, uses):
    out = ok(uses["evaluate"]).splitlines()
    weights = trained.run_dir / "model.safetensors"
    assert out[0] == f"{weights}: 784-100-10:relu on mnist test (10000 images)"
    m = re.fullmatch(r"loss (\d+\.\d{4})  accuracy (\d+\.\d\d)%", out[1])
    assert m, out[1]
    assert m[1] == f"{trained.info['test_loss']:.4f}"
    assert m[2] == f"{trained.info['test_accuracy']:.2f}"
    assert out[2] == "per-class accuracy:"
    assert [line.split()[0] for line in out[3:13]] == [str(d) for d in range(10)]
    assert out[13] == "confusion matrix (rows: true, columns: predicted):"
    rows = [[int(v) for v in line.split()] for line in out[14:]]
    assert len(rows) == 10 and all(len(r) == 10 for r in rows)
    assert sum(map(sum, rows)) == 10_000
    assert sum(rows[i][i] for i in range(10)) / 100 == pytest.approx(trained.info["test_accuracy"])

    report = json.loads(ok(uses["evaluate-json"]))
    assert report["accuracy"] == trained.info["test_accuracy"]
    assert report["loss"] == pytest.approx(trained.info["test_loss"], rel=1e-6)
    assert report["per_class_accuracy"] == pytest.approx(trained.info["per_class_accuracy"])
    assert report["count"] == 10_000 and report["dataset"] == "mnist"
    assert report["confusion"] == rows
    assert report["classes"] == trained.info["classes"]
    assert report["checkpoint"] == str(weights)


def test_inspect_prints_parameters_and_total(trained, uses):
    out = ok(uses["inspect"])
    assert out.startswith(f"{trained.run_dir / 'model.safetensors'}: 784-100-10:relu, trained on")
    assert re.search(r"^fc1\.weight\s+\(100, 784\)\s+78,400$", out, re.M)
    assert re.search(r"^fc1\.bias\s+\(100,\)\s+100$", out, re.M)
    assert re.search(r"^fc2\.weight\s+\(10, 100\)\s+1,000$", out, re.M)
    assert re.search(r"^fc2\.bias\s+\(10,\)\s+10$", out, re.M)
    assert re.search(r"^total\s+79,510$", out, re.M)


# --- commands that need no run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> dict[str, Path]:
    """Two identical short runs and a TOML-configured one, two at a time."""
    work = tmp_path_factory.mktemp("repro")
    (work / "run.toml").write_text(
        "[train]\n"
        'preset = "c"\n'
        "iterations = 40\n"
        "batch_size = 64\n"
        "eval_every = 10\n"
        "seed = 5\n"
        'name = "fromtoml"\n'
        "patience = 2\n"  # valid only with the --val-size the command line adds
    )
    same = (*TRAIN, "--preset", "c", "--iterations", "30", "--batch-size", "64", "--seed", "3")
    procs = mlplab_many(
        {
            "first": (*same, "--out", "first"),
            "second": (*same, "--out", "second"),
            "toml": (*TRAIN, "--config", "run.toml", "--iterations", "30", "--seed", "7")
            + ("--val-size", "500", "--out", "toml"),
        },
        work,
    )
    dirs = {}
    for name, proc in procs.items():
        ok(proc)
        (dirs[name],) = run_dirs(work / name)
    return dirs


def test_same_seed_twice_gives_identical_tensors(reproduced):
    first, second = tensors_of(reproduced["first"]), tensors_of(reproduced["second"])
    assert first.keys() == second.keys() == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    for name in first:
        assert torch.equal(first[name], second[name]), name
    # The metadata differs (timings), which is why tensors are compared, not files.
    a, b = (json.loads((reproduced[k] / "model.json").read_text()) for k in ("first", "second"))
    assert a["seed"] == b["seed"] == 3
    assert a["test_accuracy"] == b["test_accuracy"]


def test_config_file_with_flags_overriding_it(reproduced):
    run_dir = reproduced["toml"]
    assert run_dir.name.endswith("-fromtoml")
    config = json.loads((run_dir / "config.json").read_text())
    # from the file
    assert config["preset"] == "c" and config["batch_size"] == 64 and config["eval_every"] == 10
    assert config["patience"] == 2 and config["name"] == "fromtoml"
    # from the flags, over the file's values
    assert config["iterations"] == 30 and config["seed"] == 7 and config["val_size"] == 500
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals and all(r["iteration"] % 10 == 0 and "val_accuracy" in r for r in evals)
    assert evals[-1]["iteration"] <= 30
    assert json.loads((run_dir / "model.json").read_text())["seed"] == 7


def test_models_lists_every_preset_with_its_parameter_count(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, (spec, _) in PRESETS.items():
        sizes = parse_spec(spec).sizes
        count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(spec)}\s+{count:,}\s", out, re.M), name
    assert re.search(r"^c\s+784-100-10:relu\s+79,510\s", out, re.M)
    assert re.search(r"^quickstart-512\s+784-512-512-10:relu\s+669,706\s", out, re.M)
    assert len(out.splitlines()) == len(PRESETS) + 1


def test_help_exits_zero(tmp_path):
    out = ok(mlplab_cmd("--help", cwd=tmp_path))
    for command in ("train", "evaluate", "data", "models", "inspect"):
        assert command in out


def _commands(parser: argparse.ArgumentParser, prefix=()):
    """Every (sub)command's argv prefix, found in the parser rather than listed by hand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_every_subcommand_help_exits_zero(capsys):
    commands = list(_commands(cli.build_parser()))
    assert {
        "train",
        "evaluate",
        "data",
        "data fetch",
        "data info",
        "data show",
        "models",
        "inspect",
        "plot",
        "report",
        "reproduce",
        "predict",
        "export",
        "serve",
        "runs",
        "sweep",
        "sweep run",
        "sweep show",
        "recipes",
        "lab",
    } == {" ".join(c) for c in commands}
    for command in commands:
        with pytest.raises(SystemExit) as exit_:
            cli.main([*command, "--help"])
        assert exit_.value.code == 0, command
        assert capsys.readouterr().out.startswith(f"usage: mlplab {' '.join(command)}")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"mlplab {mlplab.__version__}\n"


# --- sweep: the run and show actions, and `sweep SPACE` for `sweep run SPACE` -----------------


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings}


SWEEP = _actions(_actions(cli.build_parser())["sweep"])
RUN_ONLY = sorted(set(_options(SWEEP["run"])) - set(_options(SWEEP["show"])))


def test_sweep_help_lists_run_and_show(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "usage: mlplab sweep run SPACE.toml [options]",
        "   or: mlplab sweep SPACE.toml [options]",
        "   or: mlplab sweep show STUDY_DIR|--storage URL --study NAME [--out DIR] [--json]",
    ]
    assert re.search(r"^ +run +train one run directory per trial", out, re.MULTILINE)
    assert re.search(r"^ +show +a study's trials best first", out, re.MULTILINE)
    assert set(SWEEP) == {"run", "show"}
    show_flags = {"-h", "--help", "--storage", "--study", "--out", "--json"}
    assert set(_options(SWEEP["show"])) == show_flags
    assert {"--trials", "--workers", "--final", "--log", "--data-dir"} <= set(RUN_ONLY)


@pytest.mark.parametrize(
    "argv",
    [
        ("space.toml", "--trials", "3", "--final", "--log", "tensorboard"),
        ("--trials", "3", "space.toml", "--final", "--log", "tensorboard"),  # options first
        ("run", "--trials", "3", "--final", "space.toml", "--log", "tensorboard"),
    ],
)
def test_sweep_space_is_sweep_run_space(argv):
    from mlplab.cli.sweep import cmd_sweep_run

    full = ("sweep", "run", "space.toml", "--trials", "3", "--final", "--log", "tensorboard")
    expected = vars(cli.build_parser().parse_args(full))
    assert vars(cli.build_parser().parse_args(["sweep", *argv])) == expected
    assert expected["func"] is cmd_sweep_run and expected["space"] == "space.toml"
    assert (expected["trials"], expected["final"], expected["log"]) == (3, True, ["tensorboard"])


@pytest.mark.parametrize(
    "argv, space",
    [(("run", "show"), "show"), (("./show",), "./show"), (("run", "run"), "run")],
)
def test_a_sweep_space_named_like_an_action_is_reached_through_run(argv, space):
    from mlplab.cli.sweep import cmd_sweep_run

    args = cli.build_parser().parse_args(["sweep", *argv])
    assert args.func is cmd_sweep_run and args.space == space


def test_sweep_show_takes_a_study_dir_or_a_storage():
    from mlplab.cli.sweep import cmd_sweep_show

    args = cli.build_parser().parse_args(["sweep", "show", "runs/sweep-x", "--json"])
    assert args.func is cmd_sweep_show
    assert (args.target, args.json, args.storage, args.study) == ("runs/sweep-x", True, None, None)
    args = cli.build_parser().parse_args(["sweep", "show", "--storage", "sqlite:///s.db"])
    assert (args.target, args.storage, args.out) == (None, "sqlite:///s.db", "runs")


def _with_value(flag: str) -> list[str]:
    """The flag as a run takes it: alone, or with a value it accepts."""
    action = _options(SWEEP["run"])[flag]
    if action.nargs == 0:
        return [flag]
    return [flag, str(action.choices[0]) if action.choices else "1"]


@pytest.mark.parametrize("flag", RUN_ONLY)
def test_a_run_only_flag_is_refused_by_sweep_show(flag, capsys):
    words = _with_value(flag)
    code = main_in_process(["sweep", "show", "runs/sweep-x", *words])
    message = rf"mlplab: error: unrecognized arguments: {re.escape(' '.join(words))} \(see --help\)"
    one_line_error(code, *capsys.readouterr(), 2, message)


def test_sweep_run_refuses_json_and_a_second_space(capsys):
    for extra in ("--json", "other.toml"):
        for argv in (("sweep", "run", "space.toml", extra), ("sweep", "space.toml", extra)):
            code = main_in_process(argv)
            message = rf"mlplab: error: unrecognized arguments: {re.escape(extra)} \(see --help\)"
            one_line_error(code, *capsys.readouterr(), 2, message)
    code = main_in_process(["sweep"])
    message = r"mlplab sweep: error: the following arguments are required: ACTION \(see --help\)"
    one_line_error(code, *capsys.readouterr(), 2, message)


# --- bad input: one line on stderr, a non-zero exit, no traceback ------------------------------
# Every case runs in-process through cli.main (milliseconds); a few also run through
# `python -m mlplab` to show the real entry point keeps to one line and the exit code.

BAD = {
    "bad-lr": (
        ("train", "--lr", "fast"),
        2,
        r"mlplab train: error: argument --lr: invalid float value: 'fast' \(see --help\)",
    ),
    "negative-lr": (("train", "--lr", "-1"), 1, r"mlplab: error: lr: must be positive, got -1.0"),
    "unknown-dataset": (
        ("train", "--dataset", "nope"),
        2,
        r"mlplab train: error: argument --dataset: invalid choice: 'nope' .*",
    ),
    "bad-model": (
        ("train", "--model", "784-x-10"),
        1,
        r"mlplab: error: model: bad model spec '784-x-10': expected sizes like 784-128-10 .*",
    ),
    "model-output-size": (
        ("train", "--model", "784-100-5", "--dataset", "fashion-mnist"),
        1,
        r"mlplab: error: model: the output size must be 10 for fashion-mnist, got 5",
    ),
    "missing-checkpoint": (
        ("evaluate", "nope"),
        1,
        r"mlplab: error: nope: no such checkpoint "
        r"\(give a run directory or its model.safetensors\)",
    ),
    "corrupt-checkpoint": (
        ("evaluate", "corrupt.safetensors"),
        1,
        r"mlplab: error: corrupt.safetensors: not a safetensors file \(header length \d+ is "
        r"impossible for a 24-byte file\)",
    ),
    "inspect-corrupt-checkpoint": (
        ("inspect", "corrupt.safetensors"),
        1,
        r"mlplab: error: corrupt.safetensors: not a safetensors file .*",
    ),
    "unknown-preset": (
        ("train", "--preset", "zz"),
        2,
        r"mlplab train: error: argument --preset: invalid choice: 'zz' .*",
    ),
    "inspect-unknown-preset": (
        ("inspect", "zz"),
        1,
        r"mlplab: error: bad model spec 'zz': expected sizes like 784-128-10 \(or a preset: .*\)",
    ),
    "data-info-nope": (
        ("data", "info", "nope"),
        1,
        r"mlplab: error: unknown dataset 'nope'; choose one of: mnist, fashion-mnist, kmnist",
    ),
    "patience-without-val-size": (
        ("train", "--patience", "3"),
        1,
        r"mlplab: error: patience: early stopping watches the validation split; set val_size too",
    ),
    "missing-toml": (
        ("train", "--config", "missing.toml"),
        1,
        r"mlplab: error: missing.toml: cannot read: No such file or directory",
    ),
    "toml-wrong-type": (
        ("train", "--config", "wrong.toml"),
        1,
        r"mlplab: error: lr: must be float, got 'fast'",
    ),
    "toml-unknown-field": (
        ("train", "--config", "unknown.toml"),
        1,
        r"mlplab: error: unknown.toml: unknown field 'learning_rate'",
    ),
    "toml-unknown-dataset": (
        ("train", "--config", "dataset.toml"),
        1,
        r"mlplab: error: dataset: unknown 'cifar'; choose one of: mnist, fashion-mnist, kmnist",
    ),
    "engine-cannot-train-the-model": (
        ("train", "--model", "784-32-10:gelu", "--engine", "fast"),
        1,
        r"mlplab: error: engine: fast supports relu, tanh, sigmoid, got gelu; use engine autograd",
    ),
    "out-is-a-file": (
        ("train", "--preset", "c", "--out", "a-file"),
        1,
        r"mlplab: error: a-file/\d{8}-\d{6}-c: Not a directory",
    ),
    "no-command": ((), 2, r"mlplab: error: the following arguments are required: COMMAND .*"),
}
if not torch.cuda.is_available():
    BAD["cuda-without-cuda"] = (
        ("train", "--device", "cuda"),
        1,
        r"mlplab: error: device: 'cuda' requested but CUDA is not available",
    )
THROUGH_PYTHON_M = ("bad-lr", "corrupt-checkpoint", "out-is-a-file")


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("bad")
    (work / "corrupt.safetensors").write_bytes(b"this is not a checkpoint")
    (work / "wrong.toml").write_text('lr = "fast"\n')
    (work / "unknown.toml").write_text("[train]\nlearning_rate = 0.1\n")
    (work / "dataset.toml").write_text('dataset = "cifar"\n')
    (work / "a-file").write_text("")
    return work


def one_line_error(code: int, out: str, err: str, expected_code: int, message: str):
    assert "Traceback" not in err + out
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(message, lines[0]), lines[0]
    assert code == expected_code


def main_in_process(argv) -> int:
    try:
        return cli.main(list(map(str, argv)))
    except SystemExit as e:  # argparse exits; main itself returns
        return e.code


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_on_stderr(bad_dir, name, capsys, monkeypatch):
    argv, expected_code, message = BAD[name]
    monkeypatch.chdir(bad_dir)
    code = main_in_process(argv)
    captured = capsys.readouterr()
    one_line_error(code, captured.out, captured.err, expected_code, message)


@pytest.fixture(scope="module")
def bad_procs(bad_dir) -> dict[str, subprocess.CompletedProcess]:
    return mlplab_many({name: BAD[name][0] for name in THROUGH_PYTHON_M}, bad_dir)


@pytest.mark.parametrize("name", THROUGH_PYTHON_M)
def test_bad_input_through_python_m(bad_procs, name):
    _, expected_code, message = BAD[name]
    proc = bad_procs[name]
    one_line_error(proc.returncode, proc.stdout, proc.stderr, expected_code, message)


def test_bad_checkpoint_and_dataset_for_evaluate(trained, tmp_path, capsys):
    data = (trained.run_dir / "model.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    code = main_in_process(["evaluate", truncated])
    one_line_error(
        code,
        *capsys.readouterr(),
        1,
        rf"mlplab: error: {re.escape(str(truncated))}: tensor 'fc2.weight' has bad offsets .*",
    )
    code = main_in_process(["evaluate", trained.run_dir, "--dataset", "nope"])
    one_line_error(
        code,
        *capsys.readouterr(),
        1,
        r"mlplab: error: unknown dataset 'nope'; choose one of: mnist, fashion-mnist, kmnist",
    )
