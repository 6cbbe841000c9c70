"""The benchmark's smoke mode end to end, so that `make bench` cannot rot between full runs;
and the shared pieces every section stands on: processes, the /healthz prober, the percentile."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from benchmarks.healthz_probe import Prober
from benchmarks.processes import Child, run, wait_for
from benchmarks.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "Targets",
    "Where the start-up goes",
    "Techniques, side by side",
    "1. Throughput at equal accuracy",
    "2a. mlplab recipe search (one run each)",
    "2b. Time to 97% and 98% from process start",
    "2c. Time to 99% from process start",
    "3a. float32 matmul peak (torch.mm)",
    "3b. Hardware efficiency: wide MLP",
    "4. Crash safety: what checkpointing costs",
    "5. Data parallelism: 1 process against 2 ranks",
    "Profiles (torch.profiler, operators by self CPU time)",
    "6. scikit-learn: mlplab.MLPClassifier against MLPClassifier",
    "7. Sweeps: Optuna's bookkeeping per trial",
    "8. Soak: mlplab serve under a mixed load",
    "9. The lab: training with the page open",
    "10. Tracking: TensorBoard and MLflow at once",
]
TARGETS = [
    "Throughput",
    "Time to 98%",
    "Time to 99%",
    "Against MLPClassifier",
    "Hardware",
    "Checkpoint overhead",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[str, str]:
    """(report, stderr) of one smoke run into a temporary file; BENCHMARKS.md untouched."""
    pytest.importorskip("sklearn", reason="the benchmark needs the [bench] extra")
    pytest.importorskip("psutil", reason="the benchmark needs the [bench] extra")
    out = tmp_path_factory.mktemp("bench") / "smoke.md"
    before = _read(ROOT / "BENCHMARKS.md")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _read(ROOT / "BENCHMARKS.md") == before, "the smoke run rewrote BENCHMARKS.md"
    return out.read_text(), done.stderr


@pytest.fixture(scope="module")
def report(smoke) -> str:
    return smoke[0]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_no_case_failed(smoke):
    failed = [line for line in smoke[1].splitlines() if line.lstrip().startswith("!")]
    assert not failed, "\n".join(failed)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def table_rows(body: str) -> list[list[str]]:
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def test_smoke_writes_every_section(report):
    assert report.startswith("# BENCHMARKS (smoke run")
    assert list(sections(report)) == SECTIONS


SCRIPT_SECTIONS = SECTIONS[-5:]  # scripts of their own, each with its own tests


def test_every_table_row_is_filled(report):
    for title, body in sections(report).items():
        if title.startswith("Profiles"):
            continue
        if title in SCRIPT_SECTIONS:
            assert body.strip().startswith("Not in the smoke run; `python -m benchmarks."), title
            continue
        rows = table_rows(body)
        assert rows, f"{title}: no table rows"
        for row in rows:
            assert all(cell and cell != "—" for cell in row), f"{title}: empty cell in {row}"


def test_every_target_has_a_verdict(report):
    rows = table_rows(sections(report)["Targets"])
    names = [row[0] for row in rows]
    for target in TARGETS:
        assert any(name.startswith(target) for name in names), f"no row for {target}"
    for row in rows:
        assert row[3] in ("**met**", "**missed**"), row


def test_profiles_are_torch_profiler_tables(report):
    body = sections(report)["Profiles (torch.profiler, operators by self CPU time)"]
    assert body.count("Self CPU time total") == 3
    assert "aten::addmm" in body


def test_percentile_is_the_nearest_rank_in_the_values_own_unit():
    assert percentile(range(1, 101), 99) == 99
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([0.25], 99) == 0.25
    assert math.isnan(percentile([], 50))


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process has exited (a zombie waiting for its reaper counts) in time."""
    psutil = pytest.importorskip("psutil")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_timed_out_command_ends_with_what_it_started(tmp_path):
    pid_file = tmp_path / "pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    done = run([sys.executable, "-c", script], timeout=5)
    assert done.timed_out and done.stdout == "started\n"
    assert _gone(int(pid_file.read_text()))
    with pytest.raises(RuntimeError, match="timed out after 5 s"):
        done.check()


def test_a_command_kept_in_our_session_is_still_ended_whole(tmp_path):
    """own_session=False (the GPU check's children): a process group of its own inside this
    session, so that whoever ends the session ends it too; a timeout still ends all of it."""
    ids = tmp_path / "ids"
    script = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(ids)!r}, 'w').write(f'{{p.pid}} {{os.getsid(0)}} {{os.getpgid(0)}}')\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    done = run([sys.executable, "-c", script], timeout=5, own_session=False)
    assert done.timed_out and done.stdout == "started\n"
    grandchild, session, group = map(int, ids.read_text().split())
    assert session == os.getsid(0) and group != os.getpgid(0)
    assert _gone(grandchild)


def test_a_child_that_ignores_sigterm_is_killed_after_its_grace():
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    child = Child([sys.executable, "-c", script])
    wait_for("ready", lambda: "ready" in child.output(), time.monotonic() + 60, child)
    assert child.stop(grace=1.0) == -signal.SIGKILL
    assert child.stopped_by == "SIGKILL (1 s after SIGTERM)"
    assert child.output() == "ready\n" and child.stop() == -signal.SIGKILL


def test_the_prober_times_good_answers_and_says_what_was_wrong_with_the_rest():
    answers = [b'{"status": "ok"}', b'{"status": "starting"}']

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self):
            body = answers.pop(0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prober = Prober(f"http://127.0.0.1:{server.server_port}/")
    try:
        prober.ask()
        prober.ask()
    finally:
        server.shutdown()
        server.server_close()
    prober.ask()  # nobody listens now
    assert len(prober.latencies) == 1 and 0 < prober.ms[0] < 5000
    assert prober.failures[0] == 'healthz: answered b\'{"status": "starting"}\''
    assert prober.failures[1].startswith("healthz: ConnectionRefusedError")
