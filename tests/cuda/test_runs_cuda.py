"""A run trained on CUDA: killed and resumed there it ends bit for bit as a run never stopped;
it resumes on the CPU too, its checkpoint loads on the CPU, and predict, export (ONNX, .pt2)
and serve work from it. Real `mlplab` processes on real MNIST, as tests/cli/test_resume.py.

On the CPU side the resumed run cannot be identical (another random generator draws the
rest of its batches, other kernels sum in another order): it must finish, keep the run's
evaluation schedule, and end within ACCURACY_MARGIN of the CUDA run.
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks.serve_soak import running_server
from cuda_support import DEVICE, HAS_CUDA, finish, mlplab, needs_device, wait_for
from safetensors.torch import load_file

from mlplab.io.checkpoint import load_checkpoint
from mlplab.io.states import list_states
from mlplab.training.evaluate import evaluate
from mlplab.use.export import OnnxModel, Pt2Model, export
from mlplab.use.predict import Predictor
from mlplab_process import run_dir

pytestmark = needs_device

# Long enough on a GPU that a kill after the second state lands well before the end.
ITERATIONS = "2000" if HAS_CUDA else "400"
COMMON = ["--iterations", ITERATIONS, "--batch-size", "64", "--eval-every", "50"]
COMMON += ["--checkpoint-every", "50", "--threads", "1", "--device", DEVICE.type, "--quiet"]
ENGINES = {
    "fast": ["--model", "784-64-10:relu", "--engine", "fast", "--augment", "shift"],
    "autograd": [
        *("--model", "784-64-10:relu,dropout=0.2", "--engine", "autograd", "--optimizer"),
        *("adamw", "--weight-decay", "0.01", "--augment", "affine", "--val-size", "2000"),
    ],
}
ACCURACY_MARGIN = 1.0  # points of test accuracy between the CUDA run and its CPU resume


def train(*args: str, out: Path, cwd: Path):
    return mlplab("train", *COMMON, *args, "--out", str(out), cwd=cwd)


def metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def saved_states(out: Path) -> int:
    found = run_dir(out)
    return len(list_states(found / "state")) if found else 0


def killed(engine: str, work: Path) -> Path:
    """A run on the device, SIGKILLed once it has saved two states, before it ends."""
    out = work / f"killed-{engine}"
    proc = train(*ENGINES[engine], out=out, cwd=work)
    assert wait_for(lambda: saved_states(out) >= 2, proc), "the run ended before its second state"
    proc.kill()
    proc.communicate(timeout=60)
    run = run_dir(out)
    assert not (run / "model.safetensors").exists(), "the run had finished before the kill"
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each engine's run never stopped, and one killed, side by side on the device."""
    root = tmp_path_factory.mktemp("cuda-runs")
    refs = {e: train(*args, out=root / f"ref-{e}", cwd=root) for e, args in ENGINES.items()}
    with ThreadPoolExecutor(len(ENGINES)) as pool:
        kills = dict(zip(ENGINES, pool.map(lambda e: killed(e, root), ENGINES), strict=True))
    for proc in refs.values():
        rc, _, err = finish(proc)
        assert rc == 0, err
    references = {e: run_dir(root / f"ref-{e}") for e in ENGINES}
    return {**references, **{f"killed-{e}": run for e, run in kills.items()}}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_cuda_run_resumes_on_cuda_bit_for_bit(engine, runs, tmp_path):
    run = runs[f"killed-{engine}"]
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    rc, _, err = finish(mlplab("train", "--resume", str(resumed), "--quiet", cwd=tmp_path))
    assert rc == 0, err
    ours, theirs = (
        load_file(resumed / "model.safetensors"),
        load_file(runs[engine] / "model.safetensors"),
    )
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert metrics(resumed) == metrics(runs[engine])
    assert json.loads((runs[engine] / "model.json").read_text())["device"].startswith(DEVICE.type)


def test_a_killed_cuda_run_resumes_on_the_cpu(runs, tmp_path):
    resumed = tmp_path / "on-cpu"
    shutil.copytree(runs["killed-fast"], resumed)
    args = ("train", "--resume", str(resumed), "--device", "cpu", "--quiet")
    rc, _, err = finish(mlplab(*args, cwd=tmp_path))
    assert rc == 0, err
    want, got = metrics(runs["fast"]), metrics(resumed)
    assert [(r["kind"], r.get("iteration")) for r in got] == [
        (r["kind"], r.get("iteration")) for r in want
    ]
    ours = json.loads((resumed / "model.json").read_text())["test_accuracy"]
    theirs = json.loads((runs["fast"] / "model.json").read_text())["test_accuracy"]
    assert abs(ours - theirs) <= ACCURACY_MARGIN, (ours, theirs)
    assert all(p.device.type == "cpu" for p in load_checkpoint(resumed).model.parameters())


def test_its_checkpoint_loads_on_the_cpu_and_scores_as_on_cuda(runs, mnist):
    run = runs["fast"]
    on_cpu, on_device = load_checkpoint(run, "cpu"), load_checkpoint(run, DEVICE)
    assert all(p.device.type == "cpu" for p in on_cpu.model.parameters())
    metrics_cpu = evaluate(on_cpu.model, mnist.test, on_cpu.norm)
    saved = json.loads((run / "model.json").read_text())["test_accuracy"]
    assert abs(metrics_cpu.accuracy - saved) <= 0.05  # float32 rounding may flip a digit
    x = on_cpu.norm.apply(mnist.test.x[:512]).reshape(-1, 1, 28, 28)
    with torch.inference_mode():
        want, got = on_cpu.model(x), on_device.model(x.to(DEVICE)).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def digits(mnist, n: int = 64) -> np.ndarray:
    """n MNIST test digits as prepared images: (n, 28, 28) floats in [0, 1]."""
    return mnist.test.x[:n].numpy().astype(np.float32) / 255


def test_predict_from_a_cuda_run_on_cuda_matches_the_cpu(runs, mnist, tmp_path):
    run = runs["fast"]
    images = digits(mnist)
    on_device = Predictor.from_checkpoint(load_checkpoint(run, DEVICE)).probabilities(images)
    on_cpu = Predictor.from_checkpoint(load_checkpoint(run, "cpu")).probabilities(images)
    np.testing.assert_allclose(on_device, on_cpu, rtol=0, atol=1e-5)
    assert (on_cpu.argmax(1) == mnist.test.y[:64].numpy()).mean() > 0.9
    from PIL import Image

    png = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test.x[0].numpy()).resize((140, 140)).save(png)
    rc, out, err = finish(mlplab("predict", str(run), str(png), "--json", cwd=tmp_path))
    assert rc == 0, err
    assert json.loads(out)["results"][0]["top"][0]["class"] == "7"


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_of_a_checkpoint_loaded_on_cuda_matches_eager(fmt, runs, mnist, tmp_path):
    run = runs["fast"]
    on_cpu = load_checkpoint(run, "cpu")
    x = on_cpu.norm.apply(mnist.test.x[:256]).reshape(-1, 1, 28, 28)
    with torch.inference_mode():
        want = on_cpu.model(x).numpy()
    path = export(load_checkpoint(run, DEVICE), fmt, tmp_path / f"model.{fmt}")
    got = (OnnxModel if fmt == "onnx" else Pt2Model)(path)(x.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_serve_answers_from_a_cuda_run(runs, mnist):
    run, images = runs["fast"], digits(mnist, 8)
    body = json.dumps({"pixels": images.reshape(8, -1).tolist()}).encode()
    with running_server(run, start_timeout=60) as (url, _):
        request = urllib.request.Request(
            url + "/api/predict", body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            served = json.load(io.TextIOWrapper(r, "utf-8"))["predictions"]
    want = Predictor.from_checkpoint(load_checkpoint(run, DEVICE)).probabilities(images)
    got = np.array([p["probabilities"] for p in served])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
