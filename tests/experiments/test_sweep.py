"""mlplab sweep on Optuna, end to end on real MNIST with tiny budgets: pruning through the
callback protocol, resuming, workers sharing SQLite and a real PostgreSQL server, a worker
killed with SIGKILL and its trial retried, bad space files, an unreachable server, and
`sweep show`. `sweep SPACE` and `sweep run SPACE` are the same command."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres  # noqa: F401 (a fixture: a real PostgreSQL server)

from mlplab.errors import ConfigError
from mlplab.experiments.sweep import SweepPlan, open_study, tally, work
from mlplab.experiments.sweep_space import read_space
from mlplab.experiments.sweep_storage import CONNECT_TIMEOUT, open_storage, storage_url
from mlplab.io.rundir import read_config, read_metrics

BAD_MODEL = "784-32-5:relu"  # a valid spec, but 5 outputs for MNIST's 10 classes
SPACE = """\
dataset = "mnist"
iterations = {iterations}
eval_every = {eval_every}
batch_size = 64
val_size = 1000
normalization = "dataset"
checkpoint_every = 0

[sweep]
heartbeat = 1
grace = 3
startup_trials = 2

[space]
lr = {{ low = 1e-5, high = 3e-2, log = true }}
model = {{ choices = ["784-16-10:relu", "784-32-10:relu"{extra_model}] }}
"""
TIMEOUT = 180


def write_space(folder: Path, name: str, iterations=60, eval_every=20, bad_choice=False) -> Path:
    path = folder / f"{name}.toml"
    extra = f', "{BAD_MODEL}"' if bad_choice else ""
    path.write_text(SPACE.format(iterations=iterations, eval_every=eval_every, extra_model=extra))
    return path


def sweep_cli(*args: str, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlplab", "sweep", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sqlite_study(sweep_dir: Path, name: str):
    return optuna.load_study(study_name=name, storage=open_storage(storage_url(None, sweep_dir)))


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def final_record(run_dir: str | Path) -> dict | None:
    records = read_metrics(run_dir)
    return records[-1] if records and records[-1]["kind"] == "final" else None


# --- pruning, invalid sampled configs, the objective --------------------------------------


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory):
    """6 trials with the median pruner, in this process: two good learning rates first, then
    a hopeless one (1e-5), then an invalid model, then two sampled ones."""
    folder = tmp_path_factory.mktemp("pruned")
    space = read_space(write_space(folder, "tiny", bad_choice=True))
    sweep_dir = folder / "sweep-tiny"
    plan = SweepPlan(
        space, "tiny", sweep_dir, storage_url(None, sweep_dir), trials=6, sampler="random", seed=0
    )
    study = open_study(plan)
    for lr, model in (
        (3e-2, "784-32-10:relu"),
        (1e-2, "784-32-10:relu"),
        (1e-5, "784-16-10:relu"),
        (1e-2, BAD_MODEL),
    ):
        study.enqueue_trial({"lr": lr, "model": model})
    seen = []
    work(plan, threads=1, on_trial=seen.append)
    return sweep_dir, sqlite_study(sweep_dir, "tiny"), seen


def test_median_pruner_stops_a_hopeless_trial_through_the_trainer(pruned_sweep):
    sweep_dir, study, seen = pruned_sweep
    trials = study.get_trials()
    assert len(trials) == 6 and len(seen) == 6
    assert trials[2].state == TrialState.PRUNED, states(study)
    run_dir = Path(trials[2].user_attrs["run_dir"])
    assert run_dir == sweep_dir / "trials" / "0002-mlp"
    # The trainer stopped at its first evaluation (iteration 20 of 60) and finished cleanly.
    final = final_record(run_dir)
    assert final["stop_reason"] == "pruned" and final["iteration"] == 20
    assert (run_dir / "model.safetensors").is_file()
    assert json.loads((run_dir / "trial.json").read_text())["state"] == "pruned"
    assert trials[2].intermediate_values == {1: final["val_accuracy"]}


def test_objective_is_the_best_validation_accuracy_and_test_is_never_seen(pruned_sweep):
    _, study, _ = pruned_sweep
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert complete
    for t in complete:
        records = read_metrics(t.user_attrs["run_dir"])
        evals = [r for r in records if r["kind"] == "eval"]
        assert t.value == max(r["val_accuracy"] for r in evals)
        assert len(evals) == 3 and t.user_attrs["iterations"] == 60
        assert not any("test_accuracy" in r for r in records)  # the test split never ran
        assert [t.intermediate_values[k] for k in (1, 2, 3)] == [r["val_accuracy"] for r in evals]
    assert complete[0].value > 80.0  # it learns: lr 3e-2, 60 steps


def test_an_invalid_sampled_config_fails_its_trial_and_the_sweep_goes_on(pruned_sweep):
    _, study, seen = pruned_sweep
    bad = study.get_trials()[3]
    assert bad.state == TrialState.FAIL
    assert bad.user_attrs["error"] == "model: the output size must be 10 for mnist, got 5"
    assert "run_dir" not in bad.user_attrs
    assert seen[3].state == "fail" and seen[3].error == bad.user_attrs["error"]
    assert tally(study) == (6, 0)  # the failed trial counts as finished: the sweep ended at 6


def test_grid_sampler_visits_each_point_once_with_hyperband(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        SPACE.format(iterations=40, eval_every=10, extra_model="").split("[space]")[0]
        + "[space]\nlr = { choices = [1e-3, 1e-2] }\n"
        + "weight_decay = { low = 0.0, high = 1e-3, step = 1e-3 }\n"
    )
    sweep_dir = tmp_path / "sweep-grid"
    plan = SweepPlan(
        read_space(path),
        "grid",
        sweep_dir,
        storage_url(None, sweep_dir),
        trials=4,
        sampler="grid",
        pruner="hyperband",
    )
    work(plan, threads=1)
    study = sqlite_study(sweep_dir, "grid")
    points = sorted((t.params["lr"], t.params["weight_decay"]) for t in study.trials)
    assert points == [(1e-3, 0.0), (1e-3, 1e-3), (1e-2, 0.0), (1e-2, 1e-3)]
    assert tally(study) == (4, 0)
    with pytest.raises(ConfigError, match="--trials: the grid holds only 4 points"):
        SweepPlan(plan.space, "grid", sweep_dir, plan.storage, trials=5, sampler="grid")


# --- resuming -----------------------------------------------------------------------------


def test_running_the_same_command_again_resumes_without_repeating_trials(tmp_path):
    space = write_space(tmp_path, "resume")
    command = [str(space), "--trials", "2", "--sampler", "random", "--seed", "3", "--out", "runs"]
    first = sweep_cli(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    sweep_dir = tmp_path / "runs" / "sweep-resume"
    before = [
        (t.number, t.datetime_start, t.params) for t in sqlite_study(sweep_dir, "resume").trials
    ]
    assert len(before) == 2

    again = sweep_cli("run", *command, cwd=tmp_path)  # the same command, spelled in full
    assert again.returncode == 0, again.stderr
    assert "trial " not in again.stdout.split("Study")[0]  # no trial ran
    assert "2 finished trials" in again.stdout

    more = sweep_cli(*command[:2], "3", *command[3:], "--final", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    study = sqlite_study(sweep_dir, "resume")
    after = [(t.number, t.datetime_start, t.params) for t in study.trials]
    assert after[:2] == before and len(after) == 3  # --trials 3 means 3 in all, not 3 more
    assert sorted(p.name for p in (sweep_dir / "trials").iterdir()) == [
        "0000-mlp",
        "0001-mlp",
        "0002-mlp",
    ]
    assert "Best: trial" in more.stdout and "mlplab train --" in more.stdout
    # --final: the best config retrained on all 60000 training images, tested once.
    (final_dir,) = (sweep_dir / "final").iterdir()
    info = json.loads((final_dir / "model.json").read_text())
    assert info["config"]["val_size"] == 0 and info["config"]["lr"] == study.best_params["lr"]
    assert f"test accuracy {info['test_accuracy']:.2f}% - " in more.stdout
    assert f"sweep-resume/final/{final_dir.name}" in more.stdout

    # The same study with another space is refused before any trial.
    space.write_text(space.read_text().replace("1e-5", "1e-4"))
    changed = sweep_cli(*command, cwd=tmp_path)
    assert changed.returncode == 1
    assert changed.stderr.strip().splitlines() == [
        f"mlplab: error: {space}: its fields or [space] differ from those of study 'resume' in "
        f"sqlite:///{sweep_dir.resolve() / 'study.db'}; give another --study to start anew"
    ]


# --- workers ------------------------------------------------------------------------------


def _check_exactly(study, n: int) -> set[str]:
    """Exactly n trials, all complete, each with its own finished run directory; returns the
    workers that ran them."""
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n, states(study)
    dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(dirs) == n
    for d in dirs:
        assert final_record(d) is not None and (Path(d) / "model.safetensors").is_file()
    return {t.user_attrs["worker"] for t in trials}


def test_two_workers_on_sqlite_share_the_study_and_the_cores(tmp_path):
    space = write_space(tmp_path, "pair", iterations=150, eval_every=50)
    done = sweep_cli(
        "--workers",  # before SPACE: the workers are started as `sweep run ... SPACE`
        "2",
        str(space),
        "--trials",
        "6",
        "--pruner",
        "none",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    sweep_dir = tmp_path / "runs" / "sweep-pair"
    study = sqlite_study(sweep_dir, "pair")
    assert len(_check_exactly(study, 6)) == 2  # both workers ran trials
    assert len(list((sweep_dir / "trials").iterdir())) == 6
    threads = max(1, os.cpu_count() // 2)
    for t in study.trials:
        assert read_config(t.user_attrs["run_dir"])["threads"] == threads
    assert done.stdout.count("trial ") >= 6 and "6 finished trials (6 complete)" in done.stdout


def test_two_worker_processes_on_postgresql(tmp_path, postgres):  # noqa: F811
    space = write_space(tmp_path, "shared", iterations=200, eval_every=50)
    command = [
        sys.executable,
        "-m",
        "mlplab",
        "sweep",
        str(space),
        "--trials",
        "4",
        "--pruner",
        "none",
        "--storage",
        postgres,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [*command, "--out", f"machine{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    try:
        outputs = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
    study = optuna.load_study(
        study_name="shared", storage=open_storage(storage_url(postgres, tmp_path))
    )
    ran = _check_exactly(study, 4)
    dirs = [
        p for i in (1, 2) for p in (tmp_path / f"machine{i}" / "sweep-shared" / "trials").glob("*")
    ]
    assert len(dirs) == 4
    assert len(ran) == 2, ran  # both processes took trials


OPEN_AT = """\
import sys, time
from mlplab.experiments.sweep_storage import open_storage
for url, at in zip(sys.argv[1::2], sys.argv[2::2]):
    while time.time() < float(at):
        time.sleep(0.001)
    open_storage(url)
"""


def test_processes_opening_a_new_sqlite_storage_at_once_all_succeed(tmp_path):
    # Optuna creates the tables on the first open; unguarded, the losers of the race fail
    # with "table studies already exists" (seen in CI: a sweep and a reader of its study).
    # Four rounds, each on a new file: without the lock, most runs of this test fail.
    start = time.time() + 4  # past every process's imports
    rounds = [(storage_url(None, tmp_path / str(r)), start + r) for r in range(4)]
    argv = [str(a) for pair in rounds for a in pair]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    for url, _ in rounds:
        assert optuna.get_all_study_names(open_storage(url)) == []


# --- a worker killed mid-trial ------------------------------------------------------------


def _wait_for_running_trial(sweep_dir: Path, proc, timeout: float = 60) -> str:
    """The run directory of a trial that is RUNNING and has logged an evaluation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        if (sweep_dir / "study.db").exists():
            try:
                study = sqlite_study(sweep_dir, "killed")
                running = study.get_trials(states=(TrialState.RUNNING,))
            except (KeyError, ConfigError):
                running = []
            for t in running:
                run_dir = t.user_attrs.get("run_dir")
                if (
                    run_dir
                    and (Path(run_dir) / "metrics.jsonl").is_file()
                    and read_metrics(run_dir)
                ):
                    return run_dir
        time.sleep(0.05)
    raise AssertionError("no trial started training in time")


def test_a_worker_killed_mid_trial_is_failed_by_its_heartbeat_and_retried(tmp_path):
    # 6000 steps of this tiny model take about 2.5 s: time enough to kill the trial after its
    # first evaluation (600 steps once finished first, in 0.25 s, under a loaded machine).
    space = write_space(tmp_path, "killed", iterations=6000, eval_every=300)
    command = [str(space), "--trials", "2", "--pruner", "none", "--out", "runs"]
    sweep_dir = tmp_path / "runs" / "sweep-killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplab", "sweep", *command],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed_dir = _wait_for_running_trial(sweep_dir, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert final_record(killed_dir) is None  # it died mid-trial

    again = sweep_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    study = sqlite_study(sweep_dir, "killed")
    trials = study.get_trials()
    killed = next(t for t in trials if t.user_attrs.get("run_dir") == killed_dir)
    assert killed.state == TrialState.FAIL and "error" not in killed.user_attrs
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed.params and retry[0].user_attrs["run_dir"] != killed_dir
    # Nothing lost or counted twice: 2 finished, plus the killed one.
    assert tally(study) == (2, 0) and len(trials) == 3
    assert "(retry of" in sweep_cli("show", str(sweep_dir), cwd=tmp_path).stdout


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[space]\nlearning_rate = { low = 0.1, high = 1.0 }\n",
            "space.learning_rate: not a TrainConfig field",
        ),
        ("epoch = 3\n[space]\nlr = { low = 0.1, high = 1.0 }\n", "epoch: not a TrainConfig field"),
        (
            "[space]\nlr = { low = 0.1, high = 0.01 }\n",
            "space.lr: low must be below high, got low=0.1, high=0.01",
        ),
        (
            "[space]\nlr = { low = 0.0, high = 0.1, log = true }\n",
            "space.lr: a log range needs low > 0, got 0.0",
        ),
        ("[space]\nlr = { low = 0.1 }\n", "space.lr: a range needs both low and high"),
        ("[space]\nlr = { low = 0.1, hgih = 1.0 }\n", "space.lr: unknown key 'hgih'"),
        (
            "[space]\nbatch_size = { low = 32.5, high = 64 }\n",
            "space.batch_size: batch_size is an int field; low must be a whole number",
        ),
        (
            "[space]\nmodel = { low = 1, high = 2 }\n",
            "space.model: a str field takes choices, not a range",
        ),
        (
            "[space]\nbatch_size = { choices = [] }\n",
            "space.batch_size: choices must be a non-empty list",
        ),
        ("[space]\nlr = { choices = [0.1], low = 0.1 }\n", "space.lr: give choices or a range"),
        ("[space]\nlr = 0.1\n", "space.lr: must be a table"),
        ("[space]\nout = { choices = ['a', 'b'] }\n", "space.out: cannot be swept"),
        (
            "val_size = 0\n[space]\nlr = { low = 0.1, high = 1.0 }\n",
            "val_size: a sweep chooses by validation accuracy",
        ),
        (
            "epochs = -1\n[space]\nlr = { low = 0.1, high = 1.0 }\n",
            "epochs: must be positive, got -1",
        ),
        ("lr = 0.1\n[space]\nlr = { low = 0.1, high = 1.0 }\n", "lr: both fixed and in [space]"),
        (
            "[sweep]\nheartbeet = 2\n[space]\nlr = { low = 0.1, high = 1.0 }\n",
            "sweep.heartbeet: unknown setting",
        ),
        ('dataset = "mnist"\n', "needs a [space] table"),
        ("[space\n", "invalid TOML"),
    ],
)
def test_bad_space_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_space(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_bad_space_file_fails_before_any_trial(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[space]\nlr = { low = 0.1, high = 0.01 }\n")
    done = sweep_cli(str(path), "--out", "runs", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mlplab: error: {path}: space.lr: low must be below high, got low=0.1, high=0.01"
    ]
    assert not (tmp_path / "runs").exists()
    full = sweep_cli("run", str(path), "--out", "runs", cwd=tmp_path)
    assert (full.returncode, full.stdout, full.stderr) == (1, done.stdout, done.stderr)


def test_a_space_file_named_show_is_reached_through_run(tmp_path):
    (tmp_path / "show").write_text("[space]\nlr = { low = 0.1, high = 0.01 }\n")
    expected = ["mlplab: error: show: space.lr: low must be below high, got low=0.1, high=0.01"]
    for argv in (("run", "show"), ("./show",)):
        done = sweep_cli(*argv, cwd=tmp_path)
        assert done.returncode == 1 and done.stderr.strip().splitlines() == expected, argv
    shown = sweep_cli("show", cwd=tmp_path)  # the action, not the file
    assert shown.returncode == 1 and shown.stderr.strip() == (
        "mlplab: error: show: give STUDY_DIR, or --storage URL and --study NAME"
    )


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a firewalled or hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_an_unreachable_storage_is_a_one_line_error_in_bounded_time(tmp_path, silent_server):
    space = write_space(tmp_path, "nowhere")
    url = f"postgresql://sweeper:secret@127.0.0.1:{silent_server}/studies"
    start = time.monotonic()
    done = sweep_cli(str(space), "--storage", url, cwd=tmp_path, timeout=CONNECT_TIMEOUT + 60)
    assert time.monotonic() - start < CONNECT_TIMEOUT + 50
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"mlplab: error: postgresql+psycopg://sweeper:***@127.0.0.1:{silent_server}/studies: "
        "cannot open the study storage: "
    )
    assert "secret" not in done.stderr and "timeout" in lines[0].lower()


# --- sweep show ---------------------------------------------------------------------------


def test_show_lists_trials_best_first_with_a_ready_train_command_and_pictures(pruned_sweep):
    from mlplab.cli import build_parser
    from mlplab.cli.train import config_from_args

    sweep_dir, study, _ = pruned_sweep
    done = sweep_cli("show", str(sweep_dir), cwd=sweep_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Study 'tiny': 6 trials"
    assert lines[1].split() == [
        "trial",
        "state",
        "lr",
        "model",
        "val",
        "acc",
        "%",
        "iterations",
        "seconds",
    ]
    rows = [line.split() for line in lines[2:] if line.split() and line.split()[0].isdigit()]
    assert len(rows) == 6
    complete = [float(r[4]) for r in rows if r[1] == "complete"]
    assert complete == sorted(complete, reverse=True) and rows[0][1] == "complete"
    best = study.best_trial
    assert int(rows[0][0]) == best.number
    assert "    model: the output size must be 10 for mnist, got 5" in lines
    assert f"Best: trial {best.number}, validation accuracy {best.value:.2f}%" in lines
    command = next(line.strip() for line in lines if line.strip().startswith("mlplab train "))
    args = build_parser().parse_args(shlex.split(command)[1:])
    config = config_from_args(args)
    assert config.lr == best.params["lr"] and config.model == best.params["model"]
    assert (config.iterations, config.val_size, config.batch_size) == (60, 1000, 64)

    for name in ("optimization_history", "parallel_coordinate", "param_importances"):
        picture = sweep_dir / "plots" / f"{name}.png"
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000
        assert f"Picture: {picture}" in lines
    page = (sweep_dir / "sweep.html").read_text()
    assert page.count("<img") == 3 and page.count("<tr>") == 7 and command in page


def test_show_json_from_a_storage_url(pruned_sweep):
    sweep_dir, study, _ = pruned_sweep
    url = f"sqlite:///{sweep_dir / 'study.db'}"
    done = sweep_cli("show", "--storage", url, "--study", "tiny", "--json", cwd=sweep_dir)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert [t["number"] for t in shown["trials"]][0] == study.best_trial.number
    assert {"complete", "pruned", "fail"} <= {t["state"] for t in shown["trials"]}
    assert shown["best"]["value"] == study.best_value and len(shown["trials"]) == 6

    missing = sweep_cli("show", "--storage", url, "--study", "other", cwd=sweep_dir)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"mlplab: error: {url}: give study 'other'; the studies there: 'tiny'"
    )


EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_space_gives_a_valid_config_at_each_corner(path):
    space = read_space(path)
    for p in space.params:
        for value in p.choices or (p.low, p.high):
            others = {q.name: (q.choices[0] if q.choices else q.low) for q in space.params}
            space.config_for({**others, p.name: value})


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem.startswith("recipe-")])
def test_a_recipe_sweep_fixes_what_its_recipe_fixes(path):
    from mlplab.experiments.recipes import load_recipe

    space, train = read_space(path), load_recipe(path.stem.removeprefix("recipe-")).train
    swept = {p.name for p in space.params}
    for key, value in space.fixed.items():
        if key not in ("epochs", "iterations", "eval_every"):  # trials are short
            assert train.get(key) == value, key
    assert swept <= set(train), swept - set(train)  # the recipe sets all that was swept
