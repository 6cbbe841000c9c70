"""The lab served for real by `mlplab lab --experiment activations` on 127.0.0.1, driven in
Debian chromium at 1440x900, on real MNIST: three runs side by side on one screen, the live
network drawing, play, pause, step, a run added and removed, the link that rebuilds the same
runs, the learning rate, a drawn 7 looked at layer by layer, the confusion matrix, the gradient
check, reloads, two tabs, bad input, other origins, a vanished browser, Ctrl-C in an
experiment, and `mlplab train --resume` on every run it left.

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

EXPERIMENT = "activations"  # 784-100-100-100-100-10 with sigmoid, tanh and relu; SGD at 0.1
LABELS = ["activation: sigmoid", "activation: tanh", "activation: relu"]
WIDTHS = [100, 100, 100, 100, 10]
NEW_LR = 0.05
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
    wait_for(lambda: status(url).get("status") in ("ready", "finished", "paused"), 120)
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
    return state(url).get("status", {})


def runs(url: str) -> list[dict]:
    """The experiment's runs as the lab describes them now."""
    return state(url)["runs"]["runs"]


def iterations(url: str) -> list[int]:
    return [r["iteration"] for r in status(url)["runs"]]


def iteration(page) -> int:
    return int(page.locator("#iteration").text_content())


def paused_at(page) -> int:
    """Wait for the page to say paused; the iteration it shows."""
    page.wait_for_selector("body[data-status=paused]", timeout=30000)
    return iteration(page)


def colours(page) -> list[str]:
    return page.eval_on_selector_all(
        "#network circle.unit", "cs => cs.map(c => c.getAttribute('fill'))"
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("lab")
    proc, url = start_lab(
        ["--out", str(folder / "runs"), "--experiment", EXPERIMENT, "--threads", "1"], folder
    )
    yield {"proc": proc, "url": url, "folder": folder}
    if proc.poll() is None:
        stop(proc, signal.SIGKILL, 10)


@pytest.fixture(scope="module")
def page(lab, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
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


def test_one_screen_holds_the_controls_the_drawing_and_the_curves(page):
    page.wait_for_function("document.querySelectorAll('#network circle.unit').length > 0")
    assert "?experiment=activations" in page.url  # the address bar holds the experiment
    for selector in ("#play", "#pause", "#step", "#reset", "#experiment", "#network",
                     "#chart-loss", "#chart-acc", "#runs-table"):  # fmt: skip
        box = page.locator(selector).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1440, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= 900, selector
    labels = page.eval_on_selector_all(
        "#runs-table tbody .name", "ns => ns.map(n => n.textContent)"
    )
    assert labels == LABELS
    # a wide layer is drawn as a sample, and says so
    shown = page.eval_on_selector_all("#network text.label", "ts => ts.map(t => t.textContent)")
    assert "16 of 100" in shown and "softmax" in shown


def every_run_has(url: str, kind: str, more_than: int) -> bool:
    """Whether each of the three runs has more than `more_than` curve points (or evals)."""
    found = state(url)[kind]
    return len(found) == 3 and min(len(v) for v in found.values()) > more_than


def test_an_experiment_of_three_runs_makes_progress_in_every_run(page, lab):
    page.click("#play")
    wait_for(lambda: every_run_has(lab["url"], "curves", 3), 60)
    page.wait_for_function(
        "document.getElementById('chart-loss').data.filter((t, i) => i % 2 === 0"
        " && t.x.length > 3).length === 3"
    )
    page.click("#pause")
    paused_at(page)
    reached = iterations(lab["url"])
    assert len(reached) == 3 and len(set(reached)) == 1 and reached[0] > 20
    traces = page.evaluate("document.getElementById('chart-loss').data.map(t => t.name)")
    assert [t for t in traces if "(test)" not in t] == LABELS  # one colour per run, named
    dirs = [r["run_dir"] for r in runs(lab["url"])]
    for run_dir in dirs:
        assert newest_state(Path(run_dir) / STATES)[1]["loop"]["iteration"] == reached[0]


def test_a_step_moves_every_run_and_the_drawing_changes(page, lab):
    before = iterations(lab["url"])
    seen = colours(page)
    drawn_at = page.eval_on_selector("#network", "s => Number(s.dataset.iteration)")
    page.click("#step")
    wait_for(lambda: iterations(lab["url"]) == [i + 1 for i in before], 30)
    page.wait_for_function(
        f"Number(document.getElementById('network').dataset.iteration) > {drawn_at}"
    )
    assert colours(page) != seen  # the units' values moved with the weights


def test_hovering_a_first_layer_unit_shows_its_784_weights(page):
    page.locator("#network circle.unit[data-layer='0']").nth(3).hover()
    page.wait_for_function("document.getElementById('hover-text').textContent.includes('784')")
    tile = page.eval_on_selector(
        "#hover-tile", "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    assert len(set(tile[0::4])) > 10  # a picture of weights, not a blank


def test_a_run_is_added_by_varying_one_setting_and_removed(page, lab):
    page.select_option("#vary-setting", "lr")
    page.fill("#vary-value", "0.5")
    page.click("#vary-add")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 4")
    assert runs(lab["url"])[3]["label"] == "lr: 0.5"
    assert runs(lab["url"])[3]["config"]["model"] == "784-100-100-100-100-10:sigmoid"
    page.wait_for_function("location.search.startsWith('?runs=')")  # no longer the built-in one
    page.locator("#runs-table tbody tr").nth(3).locator(".remove").click()
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 3")
    page.wait_for_function("location.search === '?experiment=activations'")


def first_evals(url: str) -> list[dict]:
    """Each run's first evaluation, but its time and its run id (new in each lab)."""
    evals = state(url)["evals"]
    ids = [str(r["id"]) for r in runs(url)]
    return [{k: v for k, v in evals[i][0].items() if k not in ("seconds", "run")} for i in ids]


def test_the_link_is_the_experiment_and_gives_the_same_first_evaluation(page, lab):
    url = lab["url"]
    page.click("#play")
    wait_for(lambda: every_run_has(url, "evals", 0), 60)
    page.click("#pause")
    paused_at(page)
    first = first_evals(url)
    assert [e["iteration"] for e in first] == [100, 100, 100]
    link = page.evaluate("location.search")
    # another experiment, built from the menu, then the link again: the same runs from scratch
    page.select_option("#experiment", "learning-rates")
    page.wait_for_function("location.search === '?experiment=learning-rates'")
    rates = ["lr: 0.001", "lr: 0.01", "lr: 0.1", "lr: 1"]
    wait_for(lambda: [r["label"] for r in runs(url)] == rates, 60)
    page.goto(url + "/" + link)
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    wait_for(lambda: [r["label"] for r in runs(url)] == LABELS, 60)
    wait_for(lambda: len(iterations(url)) == 3, 30)  # the status of the rebuilt runs
    assert iterations(url) == [0, 0, 0]
    page.click("#play")
    wait_for(lambda: every_run_has(url, "evals", 0), 60)
    page.click("#pause")
    paused_at(page)
    assert first_evals(url) == first


def test_other_origins_are_refused_on_every_post_route(lab):
    url = lab["url"]
    routes = ["control", "lr", "build", "extend", "experiment", "vary", "remove", "focus",
              "input", "watch", "inspect", "gradcheck"]  # fmt: skip
    for route in routes:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            code, doc = request(f"{url}/api/{route}", {"action": "play"}, headers)
            assert code == 403 and "may not control this lab" in doc["error"], route
    code, _ = request(url + "/api/state", headers={"Host": "evil.example"})
    assert code == 403


@pytest.mark.parametrize(
    "route, body, field, message",
    [
        ("vary", {"setting": "lr", "value": -1}, "lr", "lr: must be positive, got -1.0"),
        ("vary", {"setting": "hidden", "value": "x-1"}, "hidden", "hidden: must be sizes"),
        ("vary", {"setting": "out", "value": "/tmp"}, "out", "out: the lab's own setting"),
        ("experiment", {"experiment": "nope"}, "experiment", "experiment: unknown 'nope'"),
        ("experiment", {"link": "runs=!!"}, "runs", "runs: not an experiment"),
        ("remove", {"run": 999}, "run", "run: must be one of the experiment's runs"),
        ("focus", {"run": "x"}, "run", "run: must be one of the experiment's runs"),
        ("input", {"test_index": "x"}, "test_index", "test_index: must be an integer"),
    ],
)
def test_bad_input_is_a_one_line_error_naming_its_field(lab, route, body, field, message):
    code, doc = request(f"{lab['url']}/api/{route}", body)
    assert 400 <= code < 500 and doc["field"] == field and doc["error"].startswith(message)
    assert "\n" not in doc["error"]


def test_a_learning_rate_change_takes_effect_on_the_drawn_run(page, lab):
    url = lab["url"]
    page.locator("#runs-table tbody .name").nth(2).click()  # draw the relu run
    wait_for(lambda: state(url)["runs"]["focus"] == runs(url)[2]["id"], 10)
    page.fill("#live-lr", str(NEW_LR))
    page.click("#set-lr")
    focus = lambda: next(r for r in status(url)["runs"] if r["id"] == runs(url)[2]["id"])  # noqa: E731
    before = iterations(url)
    page.click("#step")
    wait_for(lambda: iterations(url) == [i + 1 for i in before], 30)
    assert focus()["lr"] == pytest.approx(NEW_LR, rel=1e-9)  # a constant schedule: exactly it
    others = [r["lr"] for r in status(url)["runs"] if r["id"] != runs(url)[2]["id"]]
    assert others == [0.1, 0.1]


def test_a_drawn_seven_layer_by_layer(page, lab, cli, tmp_path):
    page.click("button[data-tab=tab-inside]")
    draw(page, "#pad", SEVEN)
    page.wait_for_function(
        "document.getElementById('input-info').textContent.includes('predicted')"
    )
    cells = [page.locator(f".strip[data-layer=fc{i + 1}] .cell").count() for i in range(5)]
    assert cells == WIDTHS
    # the network drawing shows the drawing too
    page.wait_for_function("document.getElementById('network').dataset.iteration !== undefined")
    page.locator(".strip[data-layer=fc1] .cell").first.click()
    page.wait_for_function("document.getElementById('unit-title').textContent.includes('unit 0')")
    tile = page.eval_on_selector(
        "#unit-tile", "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    _, unit = request(lab["url"] + "/api/unit?layer=1&unit=0")
    weights = torch.tensor(unit["weights"], dtype=torch.float32)
    assert tile[0::4] == list(to_bytes(weights.reshape(1, -1)))
    run_dir = Path(state(lab["url"])["runs"]["runs"][2]["run_dir"])  # the drawn (relu) run
    saved = load_checkpoint(run_dir)  # written at the pause
    assert torch.equal(weights, saved.model.fc1.weight[0].detach())
    # the softmax bars are `mlplab predict` on the same drawing
    page.locator("#chart-probs").scroll_into_view_if_needed()  # drawn once on screen
    page.wait_for_function("(document.getElementById('chart-probs').data || []).length")
    bars = page.evaluate("document.getElementById('chart-probs').data[0].y")
    png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    (tmp_path / "seven.png").write_bytes(base64.b64decode(png.split(",", 1)[1]))
    done = cli("predict", "--json", str(run_dir), str(tmp_path / "seven.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    predicted = json.loads(done.stdout)["results"][0]["probabilities"]
    assert bars == pytest.approx(predicted, abs=1e-6)
    drawn = page.evaluate("window.lab.network.layers.at(-1).values")
    assert drawn == pytest.approx(predicted, abs=1e-4)  # the live drawing's output layer too


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
    page.click("button[data-tab=tab-confusion]")
    page.locator("#chart-confusion").scroll_into_view_if_needed()  # drawn once on screen
    page.wait_for_function("(document.getElementById('chart-confusion').data || []).length")
    matrix = np.array(page.evaluate("document.getElementById('chart-confusion').data[0].text"))
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    off = matrix - np.diag(np.diag(matrix))
    truth, pred = np.unravel_index(off.argmax(), off.shape)
    click_cell(page, int(truth), int(pred))
    page.wait_for_function("document.getElementById('cell-info').textContent.includes('true')")
    shown = page.eval_on_selector_all("#cell-images canvas", "cs => cs.map(c => +c.dataset.index)")
    assert len(shown) == min(int(matrix[truth, pred]), 60) and shown
    for index in shown[:10]:
        _, seen = request(lab["url"] + "/api/inspect", {"test_index": index})
        assert (seen["label"], seen["prediction"]) == (truth, pred)


def test_the_gradient_check(page, tmp_path):
    page.click("button[data-tab=tab-math]")
    page.select_option("#grad-label", "3")
    page.click("#gradcheck")
    page.wait_for_selector("#max-diff")
    assert float(page.locator("#max-diff").text_content()) < 1e-5
    assert page.locator("#grad-table tbody tr").count() == 5


def test_a_reloaded_page_picks_the_stream_up_again(page, lab):
    page.click("#play")
    page.wait_for_function("document.body.dataset.status === 'playing'")
    before = iteration(page)
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    page.wait_for_function(
        f"Number(document.getElementById('iteration').textContent) > {before + 20}"
    )
    lengths = page.evaluate("document.getElementById('chart-loss').data.map(t => t.x.length)")
    assert min(lengths[0::2]) > 3  # every curve came back from the history, and goes on
    page.click("#pause")
    paused_at(page)


def test_two_tabs_see_one_experiment(page, lab, browser):
    other = browser.new_page(viewport={"width": 1440, "height": 900})
    other.goto(lab["url"] + "/")
    other.wait_for_selector("body[data-ready=true]", timeout=30000)
    names = "ns => ns.map(n => n.textContent)"
    assert other.eval_on_selector_all("#runs-table .name", names) == LABELS
    start = iteration(other)
    page.click("#play")
    other.wait_for_function(f"Number(document.getElementById('iteration').textContent) > {start}")
    other.click("#pause")
    assert paused_at(page) == paused_at(other)
    other.close()


def test_healthz_stays_fast_and_a_vanished_reader_stalls_nothing(lab):
    url = lab["url"]
    host, port = url.removeprefix("http://").split(":")
    silent = socket.create_connection((host, int(port)), timeout=5)  # asks, never reads
    silent.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        start = min(iterations(url))
        reached = lambda: min(len(c) for c in state(url)["curves"].values())  # noqa: E731
        points = reached()
        request(url + "/api/control", {"action": "play"})
        seconds = []
        for _ in range(40):
            t0 = time.perf_counter()
            assert request(url + "/healthz")[1] == {"status": "ok"}
            seconds.append(time.perf_counter() - t0)
            time.sleep(0.02)
        wait_for(lambda: reached() > points + 10, 60)
    finally:
        silent.close()
        request(url + "/api/control", {"action": "pause"})
    wait_for(lambda: status(url)["status"] == "paused", 30)
    assert min(iterations(url)) > start
    # a generous bound for a loaded test machine; make bench measures the p99
    assert max(seconds) < 1.0, f"/healthz took up to {max(seconds):.3f} s"


def test_the_first_screen_for_the_docs(page, tmp_path):
    page.goto(page.url)  # a fresh page: the first tab, the first screen
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    page.wait_for_function("document.getElementById('chart-acc').data.some(t => t.x.length > 1)")
    page.wait_for_selector("#network circle.unit")
    page.click("#play")  # the experiment running, as a learner sees it
    page.wait_for_timeout(2500)
    picture = tmp_path / "lab.png"
    page.screenshot(path=str(picture))
    page.click("#pause")
    paused_at(page)
    assert picture.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("MLPLAB_DOCS_SCREENSHOT") == "1":  # refresh the docs' picture of the lab
        temp = SCREENSHOT.with_suffix(".png.tmp")
        temp.write_bytes(picture.read_bytes())
        temp.replace(SCREENSHOT)


SHORT = {"model": "784-64-32-10", "iterations": 1200, "batch_size": 128, "eval_every": 400}
RESUMED = {
    "title": "three seeds",
    "base": {**SHORT, "optimizer": "sgd", "lr": 0.1, "schedule": "constant"},
    "runs": [{"label": f"seed: {seed}", "set": {"seed": seed}} for seed in (1, 2, 3)],
}


def test_ctrl_c_in_an_experiment_saves_every_run_and_each_resumes_identically(lab, cli, mnist):
    """An experiment built from a link: a step, a new learning rate on one run, a little play,
    Ctrl-C; then `mlplab train --resume` ends each run as a run that never stopped would
    have ended."""
    url, proc = lab["url"], lab["proc"]
    code, _ = request(url + "/api/experiment", {"doc": RESUMED})
    assert code == 202
    wait_for(lambda: [r["label"] for r in runs(url)] == ["seed: 1", "seed: 2", "seed: 3"], 60)
    wait_for(lambda: status(url)["status"] == "ready", 30)
    request(url + "/api/control", {"action": "step"})
    wait_for(lambda: status(url)["status"] == "paused", 30)
    assert iterations(url) == [1, 1, 1]
    first = runs(url)[0]["id"]
    assert request(url + "/api/focus", {"run": first})[0] == 202
    wait_for(lambda: state(url)["runs"]["focus"] == first, 10)
    assert request(url + "/api/lr", {"lr": NEW_LR})[0] == 200
    request(url + "/api/control", {"action": "play"})
    wait_for(lambda: status(url)["status"] == "playing", 10)
    time.sleep(0.3)
    code, _, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    dirs = [Path(line.split("mlplab train --resume ")[1].split(" ")[0])
            for line in err.splitlines() if "resume with" in line]  # fmt: skip
    assert len(dirs) == 3
    for seed, run_dir in zip((1, 2, 3), dirs, strict=True):
        _, saved = newest_state(run_dir / STATES)
        assert 1 < saved["loop"]["iteration"] < SHORT["iterations"]
        done = cli("train", "--resume", str(run_dir), "--quiet", cwd=lab["folder"])
        assert done.returncode == 0, done.stderr
        # the same settings, never stopped, with the same change of learning rate
        config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()), "test")
        assert config.seed == seed
        changes = [SetLrAt(1, NEW_LR)] if seed == 1 else []
        trainer = Trainer(config, mnist, callbacks=changes)
        trainer.run()
        resumed = load_checkpoint(run_dir).model.state_dict()
        for name, tensor in trainer.eval_module().state_dict().items():
            assert torch.equal(resumed[name], tensor.cpu()), (seed, name)
    lab["resumed"] = dirs[0]


def test_the_lab_opens_a_run_directory(lab):
    run_dir = lab["resumed"]
    proc, url = start_lab([str(run_dir)], lab["folder"])
    try:
        shown = status(url)
        assert shown["status"] == "finished" and runs(url)[0]["run_dir"] == str(run_dir)
        assert iterations(url) == [SHORT["iterations"]]
        history = state(url)
        assert list(history["evals"].values())[0][-1]["iteration"] == SHORT["iterations"]
    finally:
        code, _, err = stop(proc, signal.SIGTERM)
    assert code == 143, err


class SetLrAt(Callback):
    """Calls set_lr(lr) after iteration `at`, as the page did."""

    def __init__(self, at: int, lr: float):
        self.at, self.lr = at, lr

    def on_iteration_end(self, trainer) -> None:
        if trainer.state.iteration == self.at:
            trainer.set_lr(self.lr)
