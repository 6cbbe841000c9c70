"""The lab served for real by `mlplab lab` on 127.0.0.1, driven in Debian chromium, on a small
seeded run of real MNIST: play, pause, step, the learning rate, a drawn 7 looked at layer by
layer, the confusion matrix, the gradient check, reloads, two tabs, bad input, other origins,
a vanished browser, Ctrl-C, and `mlplab train --resume` on what the lab left.

The tests run in file order on one lab process, each leaving it paused.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import draw
from mlplab.config import TrainConfig
from mlplab.io.checkpoint import load_checkpoint
from mlplab.io.rundir import STATES
from mlplab.io.states import newest_state
from mlplab.lab.snapshot import to_bytes
from mlplab.training.callbacks import Callback
from mlplab.training.trainer import Trainer

RUN = [
    "--model", "784-64-32-10", "--iterations", "100000", "--batch-size", "128",
    "--eval-every", "200", "--seed", "0", "--threads", "1", "--name", "labtest",
]  # fmt: skip
WIDTHS = [64, 32, 10]
NEW_LR = 5e-4
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "lab.png"  # written only with MLPLAB_DOCS_SCREENSHOT=1
SEVEN = [(70, 60), (210, 60), (200, 80), (150, 160), (120, 235)]


def start_lab(args: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """`mlplab lab --port 0 ARGS` in a process group of its own; (process, its address)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplab", "lab", "--port", "0", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()  # the address, printed once the socket listens
    if not line.startswith("mlplab lab: http://"):
        proc.kill()
        raise RuntimeError(f"the lab did not start: {line}{proc.communicate(timeout=10)[1]}")
    url = line.split()[2].rstrip("/")
    wait_for(lambda: state(url).get("status", {}).get("status") in ("ready", "finished"), 120)
    return proc, url


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> tuple:
    """Signal the lab, wait for it; (exit code, stdout, stderr). Killed if it hangs."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the lab did not stop on {signal.Signals(sig).name}: {err}")
    return proc.returncode, out, err


def wait_for(condition, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(every)


def request(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def state(url: str) -> dict:
    return request(url + "/api/state")[1]


def status(url: str) -> dict:
    return state(url)["status"]


def iteration(page) -> int:
    return int(page.locator("#iteration").text_content())


def paused_at(page) -> int:
    """Wait for the page to say paused; the iteration it shows."""
    page.wait_for_selector("body[data-status=paused]", timeout=30000)
    return iteration(page)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("lab")
    proc, url = start_lab(["--out", str(folder / "runs"), *RUN], folder)
    yield {"proc": proc, "url": url, "folder": folder}
    if proc.poll() is None:
        stop(proc, signal.SIGKILL, 10)


@pytest.fixture(scope="module")
def page(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(lab["url"] + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    yield page
    page.close()
    assert not errors, f"the page raised: {errors}"


def test_listens_on_loopback_only(lab):
    import psutil

    assert lab["url"].startswith("http://127.0.0.1:")
    listening = [
        c.laddr
        for c in psutil.Process(lab["proc"].pid).net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert [a.ip for a in listening] == ["127.0.0.1"]


def test_the_form_shows_the_network(page):
    assert page.locator("#spec").input_value() == "784-64-32-10"
    assert page.locator("#spec-text").text_content() == "784-64-32-10:relu"
    params = 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert page.locator("#param-count").text_content() == f"{params:,} parameters"
    assert page.locator("#layers input").count() == 2
    assert "model=784-64-32-10" in page.url  # the settings live in the address
    assert "iterations=100000" in page.url  # and so do those the form has no field for
    assert "iterations=100000" in page.locator("#extras").text_content()


def test_play_pause_and_step(page, lab):
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('iteration').textContent) > 30")
    page.wait_for_function("document.getElementById('chart-loss').data[0].x.length > 3")
    page.click("#pause")
    stopped = paused_at(page)
    time.sleep(1.0)
    assert iteration(page) == stopped == status(lab["url"])["iteration"]
    page.click("#step")
    page.wait_for_function(f"Number(document.getElementById('iteration').textContent) > {stopped}")
    assert paused_at(page) == stopped + 1
    time.sleep(0.5)
    assert status(lab["url"])["iteration"] == stopped + 1


def test_a_learning_rate_change_takes_effect_without_a_reset(page, lab):
    before = status(lab["url"])
    page.fill("#live-lr", str(NEW_LR))
    page.click("#set-lr")
    wait_for(lambda: status(lab["url"])["lr"] == pytest.approx(NEW_LR, rel=1e-9), 10)
    page.click("#step")
    page.wait_for_function(
        f"Number(document.getElementById('iteration').textContent) > {before['iteration']}"
    )
    assert paused_at(page) == before["iteration"] + 1  # the same run went on
    after = status(lab["url"])
    assert after["iteration"] == before["iteration"] + 1
    assert after["run_dir"] == before["run_dir"]
    # the one-cycle schedule keeps its shape through the new rate: one step on, nearly it
    assert after["lr"] == pytest.approx(NEW_LR, rel=0.01)


def test_a_drawn_seven_layer_by_layer(page, lab, cli, tmp_path):
    draw(page, "#pad", SEVEN)
    page.wait_for_function(
        "document.getElementById('input-info').textContent.includes('predicted')"
    )
    cells = [page.locator(f".strip[data-layer=fc{i + 1}] .cell").count() for i in range(3)]
    assert cells == WIDTHS
    # unit 0 of fc1: its tile is fc1.weight[0], as the API and the saved model hold it
    page.locator(".strip[data-layer=fc1] .cell").first.click()
    page.wait_for_function("!document.getElementById('unit').hidden")
    page.wait_for_function("document.getElementById('unit-title').textContent.includes('unit 0')")
    tile = page.eval_on_selector(
        "#unit-tile", "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    _, unit = request(lab["url"] + "/api/unit?layer=1&unit=0")
    weights = torch.tensor(unit["weights"], dtype=torch.float32)
    assert tile[0::4] == list(to_bytes(weights.reshape(1, -1)))
    run_dir = Path(status(lab["url"])["run_dir"])
    saved = load_checkpoint(run_dir)  # written at the pause
    assert torch.equal(weights, saved.model.fc1.weight[0].detach())
    # the softmax bars are `mlplab predict` on the same drawing
    bars = page.evaluate("document.getElementById('chart-probs').data[0].y")
    png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    (tmp_path / "seven.png").write_bytes(base64.b64decode(png.split(",", 1)[1]))
    done = cli("predict", "--json", str(run_dir), str(tmp_path / "seven.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    predicted = json.loads(done.stdout)["results"][0]["probabilities"]
    assert bars == pytest.approx(predicted, abs=1e-6)
    assert int(np.argmax(bars)) == 7, f"the network read the 7 as {int(np.argmax(bars))}"


def click_cell(page, truth: int, pred: int) -> None:
    page.locator("#chart-confusion").scroll_into_view_if_needed()
    x, y = page.evaluate(
        """([t, p]) => {
          const gd = document.getElementById('chart-confusion');
          const box = gd.getBoundingClientRect();
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          return [box.left + xa._offset + xa.l2p(p), box.top + ya._offset + ya.l2p(t)];
        }""",
        [truth, pred],
    )
    page.mouse.click(x, y)


def test_the_confusion_matrix_and_one_of_its_cells(page, lab):
    page.locator("#chart-confusion").scroll_into_view_if_needed()  # drawn once on screen
    page.wait_for_function("(document.getElementById('chart-confusion').data || []).length")
    matrix = np.array(page.evaluate("document.getElementById('chart-confusion').data[0].text"))
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    off = matrix - np.diag(np.diag(matrix))
    truth, pred = np.unravel_index(off.argmax(), off.shape)
    click_cell(page, int(truth), int(pred))
    page.wait_for_function("document.getElementById('cell-info').textContent.includes('true')")
    shown = page.eval_on_selector_all("#cell-images canvas", "cs => cs.map(c => +c.dataset.index)")
    count = int(matrix[truth, pred])
    assert len(shown) == min(count, 60) and shown
    for index in shown:
        _, seen = request(lab["url"] + "/api/inspect", {"test_index": index})
        assert (seen["label"], seen["prediction"]) == (truth, pred)


def test_the_gradient_check(page, tmp_path):
    page.select_option("#grad-label", "3")
    page.click("#gradcheck")
    page.wait_for_selector("#max-diff")
    assert float(page.locator("#max-diff").text_content()) < 1e-5
    assert page.locator("#grad-table tbody tr").count() == 3
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the picture
    page.wait_for_timeout(300)
    picture = tmp_path / "lab.png"
    page.screenshot(path=str(picture), full_page=True)
    assert picture.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("MLPLAB_DOCS_SCREENSHOT") == "1":  # refresh the docs' picture of the lab
        temp = SCREENSHOT.with_suffix(".png.tmp")
        temp.write_bytes(picture.read_bytes())
        temp.replace(SCREENSHOT)


def test_a_reloaded_page_picks_the_stream_up_again(page, lab):
    page.click("#play")
    page.wait_for_function("document.body.dataset.status === 'playing'")
    before = iteration(page)
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    page.wait_for_function(
        f"Number(document.getElementById('iteration').textContent) > {before + 20}"
    )
    points = page.evaluate("document.getElementById('chart-loss').data[0].x.length")
    assert points > 3  # the curve came back from the history, and goes on
    page.click("#pause")
    paused_at(page)


def test_two_tabs_see_one_run(page, lab, browser):
    other = browser.new_page()
    other.goto(lab["url"] + "/")
    other.wait_for_selector("body[data-ready=true]", timeout=30000)
    assert other.locator("#run-info").text_content() == page.locator("#run-info").text_content()
    start = iteration(other)
    page.click("#play")
    other.wait_for_function(f"Number(document.getElementById('iteration').textContent) > {start}")
    other.click("#pause")
    assert paused_at(page) == paused_at(other)
    other.close()


def test_other_origins_are_refused_and_bad_input_is_named(page, lab, cli, tmp_path):
    url, before = lab["url"], status(lab["url"])
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        code, doc = request(url + "/api/control", {"action": "play"}, headers)
        assert code == 403 and "may not control this lab" in doc["error"]
    code, _ = request(url + "/api/state", headers={"Host": "evil.example"})
    assert code == 403
    # a bad spec and a bad value show the CLI's own message beside their field
    page.fill("#spec", "784-0-10")
    page.dispatch_event("#spec", "change")
    shown = page.locator('.err[data-for="model"]')
    shown.wait_for(state="visible")
    message = cli("train", "--model", "784-0-10", cwd=tmp_path).stderr.strip()
    assert message == f"mlplab: error: {shown.text_content()}"
    page.fill("#spec", "784-64-32-10")
    page.dispatch_event("#spec", "change")
    page.fill("#lr", "-1")
    page.click("#build-run")
    shown = page.locator('.err[data-for="lr"]')
    shown.wait_for(state="visible")
    message = cli("train", "--lr", "-1", cwd=tmp_path).stderr.strip()
    assert message == f"mlplab: error: {shown.text_content()}"
    page.fill("#lr", "0.004")
    time.sleep(0.5)
    assert status(url)["iteration"] == before["iteration"]  # nothing moved, nothing reset
    assert status(url)["run_dir"] == before["run_dir"]


def test_healthz_stays_fast_and_a_vanished_reader_stalls_nothing(lab):
    url = lab["url"]
    host, port = url.removeprefix("http://").split(":")
    silent = socket.create_connection((host, int(port)), timeout=5)  # asks, never reads
    silent.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        start = status(url)["iteration"]
        reached = lambda: (state(url).get("metrics") or {}).get("iteration", 0)  # noqa: E731
        request(url + "/api/control", {"action": "play"})
        seconds = []
        for _ in range(40):
            t0 = time.perf_counter()
            assert request(url + "/healthz")[1] == {"status": "ok"}
            seconds.append(time.perf_counter() - t0)
            time.sleep(0.02)
        wait_for(lambda: reached() > start + 300, 60)
    finally:
        silent.close()
        request(url + "/api/control", {"action": "pause"})
    wait_for(lambda: status(url)["status"] == "paused", 30)
    # a generous bound for a loaded test machine; make bench measures the p99
    assert max(seconds) < 1.0, f"/healthz took up to {max(seconds):.3f} s"


class SetLrAt(Callback):
    """Calls set_lr(lr) after iteration `at`, as the page did."""

    def __init__(self, at: int, lr: float):
        self.at, self.lr = at, lr

    def on_iteration_end(self, trainer) -> None:
        if trainer.state.iteration == self.at:
            trainer.set_lr(self.lr)


SHORT = {"model": "784-64-32-10", "iterations": 3000, "batch_size": 128, "eval_every": 500}


def test_ctrl_c_saves_and_train_resume_finishes_as_if_never_stopped(lab, cli, mnist):
    """A new run built through the API: a step, a new learning rate, a little play, Ctrl-C;
    then `mlplab train --resume` ends it as a run that never stopped would have ended."""
    url, proc = lab["url"], lab["proc"]
    old = status(url)["run_dir"]
    code, _ = request(url + "/api/build", {**SHORT, "seed": 1, "name": "resumed"})
    assert code == 202
    wait_for(lambda: status(url)["status"] == "ready" and status(url)["iteration"] == 0, 60)
    request(url + "/api/control", {"action": "step"})
    wait_for(lambda: status(url)["status"] == "paused", 30)
    run_dir = Path(status(url)["run_dir"])
    assert str(run_dir) != old and status(url)["iteration"] == 1
    assert request(url + "/api/lr", {"lr": NEW_LR})[0] == 200
    request(url + "/api/control", {"action": "play"})
    wait_for(lambda: status(url)["status"] == "playing", 10)
    time.sleep(0.3)
    code, _, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    assert f"resume with: mlplab train --resume {run_dir}" in err
    stopped = int(err.split("stopped at iteration ")[1].split(";")[0])
    assert 1 < stopped < SHORT["iterations"]
    _, saved = newest_state(run_dir / STATES)
    assert saved["loop"]["iteration"] == stopped
    assert [c[0] for c in saved["loop"]["lr_changes"]] == [1]
    done = cli("train", "--resume", str(run_dir), "--quiet", cwd=lab["folder"])
    assert done.returncode == 0, done.stderr
    # the same settings, never stopped, with the same change of learning rate
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()), "test")
    trainer = Trainer(config, mnist, callbacks=[SetLrAt(1, NEW_LR)])
    trainer.run()
    resumed = load_checkpoint(run_dir).model.state_dict()
    for name, tensor in trainer.eval_module().state_dict().items():
        assert torch.equal(resumed[name], tensor.cpu()), name
    lab["resumed"] = run_dir


def test_the_lab_opens_a_run_directory(lab):
    run_dir = lab["resumed"]
    proc, url = start_lab([str(run_dir)], lab["folder"])
    try:
        shown = status(url)
        assert shown["status"] == "finished" and shown["run_dir"] == str(run_dir)
        assert shown["iteration"] == SHORT["iterations"]
        history = state(url)
        assert history["evals"][-1]["iteration"] == SHORT["iterations"]
    finally:
        code, _, err = stop(proc, signal.SIGTERM)
    assert code == 143, err
