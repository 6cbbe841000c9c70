"""`mlplab lab` trains as fast as `mlplab train` with its page open, and stays responsive.

Claims, for the default job (`mlplab train` with no model flags: 784-512-512-10, 944
iterations) on this machine, measured side by side in one run:

1. Trained through the lab with the page open in a real browser (headless Debian chromium
   driven by Playwright; the page is open once `body[data-ready=true]` appears, and its
   `#play` button starts training), it runs at >= 85% of `mlplab train`'s steps per second
   (median over the repeats; steps/s = iterations / the "seconds" of metrics.jsonl's final
   line, which both commands write). The lab without a browser (play by POST, an SSE client
   reading /api/events in a thread) is a third column, so the browser's own CPU cost shows.
2. /healthz answers with p99 <= 100 ms while the lab trains with the page open (a client
   requests it every 20 ms, a new connection each time, from play to the final line).
3. The lab's memory stays flat with the page open through a whole run: its RSS, sampled every
   0.5 s from play to the final line, has a median over the run's last quarter at most 10%
   above its median over the first quarter (quarters of the time from play to the final
   line). Medians, not single samples or peaks: each evaluation (one an epoch, and the one
   that closes the run) allocates 60-80 MiB for a fraction of a second, in `mlplab train`
   too, and a 0.5 s sample lands in one or not by chance; a leak moves the median.
   `mlplab train`'s RSS is sampled the same way, for comparison. And a vanished browser (a
   TCP connection with a 4 KiB receive buffer that sent a GET for /api/events and never
   reads) neither stops training nor slows it: the run finishes at >= 85% of the steps per
   second of the lab without a browser.
4. An experiment of five runs (`mlplab lab --experiment models-a-e`: the classic tutorial's
   models A to E, 3,000 SGD steps each), stepped side by side with the page open, trains at
   >= 70% of the steps per second of the same five runs trained one after another by
   `mlplab train`: all five runs' steps over the wall time from play to the last run's final
   line, against all five's steps over the sum of their training seconds (metrics.jsonl's
   final lines). /healthz is asked every 20 ms meanwhile too.

The runs interleave (train, lab with the page open, lab without a browser, lab with a
vanished browser, then again) so that a change in the machine's load hits every column;
a short `mlplab train` and a chromium launch warm the caches first (not with --smoke).
Every command is a subprocess of its own, with the same --threads (default: none given, and
OMP_NUM_THREADS unset: torch's default), bounded by --timeout and killed with its process
group at the end. Prints a markdown section; exits 1 if a claim fails or a run does.

    python -m benchmarks.lab [--iterations N] [--repeats 3] [--threads N] [--smoke]

The browser, the clients and this script run on the same machine: their share of the cores
is part of the numbers (which is the point of the browser column).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks import processes
from benchmarks.browser import launch_chromium
from benchmarks.healthz_probe import Prober
from benchmarks.machine import cpu_model, git_commit, load_average
from benchmarks.processes import Child, Probe, wait_for
from benchmarks.report import Claims, failed, table
from benchmarks.stats import percentile

READY = re.compile(r"mlplab lab: (http://\S+/)")
DEFAULT_ITERATIONS = 944  # what the default job runs; only for the text when none is given
SMOKE_ITERATIONS, SMOKE_REPEATS = 60, 1
MODES = {
    "train": "`mlplab train`",
    "page": "`mlplab lab`, page open in chromium",
    "bare": "`mlplab lab`, no browser (POST play, SSE reader)",
    "vanished": "`mlplab lab`, vanished browser (unread /api/events)",
    "sequence": "models A-E, `mlplab train` one after another",
    "experiment": "models A-E, `mlplab lab --experiment`, page open",
}
SHORT = {
    "train": "train (for comparison)",
    "page": "lab, page open",
    "bare": "lab, no browser",
    "vanished": "lab, vanished browser",
    "sequence": "train, A-E one after another",
    "experiment": "lab, A-E side by side",
}
EXPERIMENT = "models-a-e"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lab", description=__doc__)
    parser.add_argument(
        "--iterations", type=int, help="shorten every run to N iterations (default: the full job)"
    )
    parser.add_argument("--repeats", type=int, help="rounds of the six runs (default 3)")
    parser.add_argument(
        "--threads", type=int, help="--threads N for both commands, and OMP_NUM_THREADS=N"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one run may take (default 600)"
    )
    parser.add_argument("--min-ratio", type=float, default=0.85)
    parser.add_argument("--min-experiment-ratio", type=float, default=0.70)
    parser.add_argument("--healthz-every", type=float, default=0.020, help="seconds (0.020)")
    parser.add_argument("--healthz-p99-ms", type=float, default=100.0)
    parser.add_argument("--rss-every", type=float, default=0.5, help="seconds (0.5)")
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_ITERATIONS} iterations, {SMOKE_REPEATS} repeat, no warm-up: every row, "
        "no meaning",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations = args.iterations or SMOKE_ITERATIONS
        args.repeats = args.repeats or SMOKE_REPEATS
    args.repeats = args.repeats or 3
    return args


# --- subprocesses ------------------------------------------------------------------------


def child_env(threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return {**env, "PYTHONUNBUFFERED": "1"}


def config_flags(args: argparse.Namespace, out: Path) -> list[str]:
    """The flags both commands get: the same job, the same threads, a fresh --out."""
    flags = ["--out", str(out)]
    if args.iterations:
        flags += ["--iterations", str(args.iterations)]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    return flags


def final_record(out: Path) -> dict | None:
    """The "final" line of the run's metrics.jsonl under `out`, once it is there."""
    found = finals(out)
    return found[0] if found else None


@dataclass
class Result:
    """One run: its mode, the final record's numbers, and what was watched on the way."""

    mode: str
    iterations: int = 0
    seconds: float = 0.0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since play, bytes)
    play_to_final: float = 0.0
    healthz_ms: list[float] = field(default_factory=list)
    healthz_errors: int = 0
    events: int = 0
    page_errors: list[str] = field(default_factory=list)
    cores: float | None = None  # the training process's CPU seconds a second, play to final
    browser_cores: float | None = None  # chromium's (every process of it), the same
    exit: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.iterations / self.seconds if self.seconds else 0.0


def run_train(args: argparse.Namespace, tmp: Path, index: int) -> Result:
    """One `mlplab train`; its RSS too, for comparison, timed from when its final line
    appeared less its training seconds (train does not say when it starts)."""
    out = tmp / f"train-{index}"
    command = [sys.executable, "-m", "mlplab", "train", *config_flags(args, out)]
    child = Child(command, child_env(args.threads), tmp / f"train-{index}.log")
    probe = None
    try:
        probe = Probe(child.proc.pid, args.rss_every)
        deadline = time.monotonic() + args.timeout
        final = wait_for("final line in metrics.jsonl", lambda: final_record(out), deadline, child)
        probe.sample()
        seen = time.perf_counter()
        while child.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if child.proc.poll() is None:
            raise RuntimeError(f"mlplab train: not done in {args.timeout:.0f} s: {child.tail()}")
        if child.proc.returncode:
            raise RuntimeError(f"mlplab train exited {child.proc.returncode}: {child.tail()}")
    finally:
        if probe is not None:
            probe.stop()
        child.stop()
    result = Result("train", int(final["iteration"]), float(final["seconds"]), exit="0")
    result.play_to_final = result.seconds
    result.rss = probe.rss_since(seen - result.seconds)
    result.cores = probe.cores(seen - result.seconds, seen)
    return result


# --- the lab and its clients -------------------------------------------------------------


def get_json(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post_json(url: str, doc: dict, timeout: float = 10.0) -> dict:
    body = json.dumps(doc).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


def browser_cpu() -> float:
    """CPU seconds so far of every chromium process this one started (through Playwright)."""
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
        except psutil.Error:
            pass
    return total


class SseReader(threading.Thread):
    """A client that reads /api/events as fast as it comes and counts the events."""

    def __init__(self, port: int):
        super().__init__(name="sse", daemon=True)
        self.port, self.events = port, 0
        self._halt = threading.Event()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(get_request(port))
        self.sock.settimeout(0.5)
        self.start()

    def run(self) -> None:
        tail = b""
        while not self._halt.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            chunk = tail + data
            self.events += len(re.findall(rb"(?:^|\n)id: ", chunk))
            tail = chunk[-8:]

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.sock.close()


def get_request(port: int) -> bytes:
    return (
        f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


def vanished_browser(port: int) -> socket.socket:
    """A connection that asks for the event stream and never reads it: a page whose tab hung
    or whose laptop slept. A small receive buffer makes the server's side fill up soon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(get_request(port))
    return sock


def run_lab(args: argparse.Namespace, tmp: Path, index: int, mode: str, pw) -> Result:
    """One lab run in `mode` (page, bare, vanished), from start to its final line; the lab
    ended afterwards."""
    out = tmp / f"{mode}-{index}"
    command = [sys.executable, "-m", "mlplab", "lab", "--port", "0", *config_flags(args, out)]
    child = Child(command, child_env(args.threads), tmp / f"{mode}-{index}.log")
    result = Result(mode)
    deadline = time.monotonic() + args.timeout
    opened: list = []  # what to close, newest first: threads, sockets, the browser
    probe, played = None, time.perf_counter()
    try:
        found = wait_for("its address", lambda: READY.search(child.output()), deadline, child)
        url = found.group(1)
        probe = Probe(child.proc.pid, args.rss_every)
        opened.append(probe.stop)
        health, reader = start_playing(args, mode, pw, url, result, opened)
        played = time.perf_counter()
        probe.sample()
        browser_before = browser_cpu() if mode == "page" else 0.0
        final = wait_for("final line in metrics.jsonl", lambda: final_record(out), deadline, child)
        probe.sample()
        done = time.perf_counter()
        result.play_to_final = done - played
        result.cores = probe.cores(played, done)
        if mode == "page":
            result.browser_cores = (browser_cpu() - browser_before) / (done - played)
        if health is not None:
            health.stop()
            result.healthz_ms, result.healthz_errors = health.ms, len(health.failures)
        check_finished(url, final, result, min(deadline, time.monotonic() + 60), child)
        if reader is not None:
            result.events = reader.events
    finally:
        close_all(opened, result)
        result.rss = probe.rss_since(played) if probe else []
        stop_lab(child, result)
    return result


def start_playing(args, mode: str, pw, url: str, result: Result, opened: list):
    """Press Play the way `mode` says: from the page in chromium (health probes alongside), or
    by POST with an event reader (bare) or a reader that never reads (vanished) connected.
    Returns the health probe and the event reader, each None where the mode has none."""
    port = int(url.rsplit(":", 1)[1].strip("/"))
    if mode == "page":
        open_and_play(pw, url, result, opened)
        health = Prober(url).start(args.healthz_every)
        opened.append(health.stop)
        return health, None
    reader = None
    if mode == "bare":
        reader = SseReader(port)
        opened.append(reader.stop)
    else:
        opened.append(vanished_browser(port).close)
    reply = post_json(url + "api/control", {"action": "play"})
    if not reply.get("ok"):
        raise RuntimeError(f"POST /api/control play: {reply}")
    return None, reader


def check_finished(url: str, final: dict, result: Result, deadline: float, child) -> None:
    """The lab says it finished, at the final line's iteration; a disagreement is a note."""
    status = wait_for(
        "status finished in /api/state", lambda: _finished(url), deadline, child, every=0.2
    )
    result.iterations, result.seconds = int(final["iteration"]), float(final["seconds"])
    if status["iteration"] != result.iterations:
        result.notes.append(
            f"/api/state says iteration {status['iteration']}, the final line {result.iterations}"
        )


def close_all(opened: list, result: Result) -> None:
    """Close what a run opened, newest first; a failure is a note, and the rest still close."""
    for close in reversed(opened):
        try:
            close()
        except Exception as e:  # cleanup goes on; the run has its result or its error
            result.notes.append(f"closing: {type(e).__name__}: {e}")


def stop_lab(child, result: Result) -> None:
    """End the lab; its exit and any error lines it logged go on the result."""
    result.exit = how_it_ended(child)
    errors = raised(child.output())
    if errors:
        said = "; ".join(dict.fromkeys(errors))
        result.notes.append(f"the lab logged {len(errors)} error line(s): {said}")


def how_it_ended(child: Child) -> str:
    """Stop the child; its exit status, and the signal that ended it if one had to."""
    code = child.stop()
    return f"{code} after {child.stopped_by}" if child.stopped_by else str(code)


def open_and_play(pw, url: str, result: Result, opened: list) -> None:
    """The lab's page in chromium at 1440x900, once ready, and its Play button clicked; the
    browser's close goes on `opened`, the page's JavaScript errors on the result."""
    browser = launch_chromium(pw)
    opened.append(browser.close)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("pageerror", lambda e: result.page_errors.append(str(e)))
    page.goto(url, timeout=60_000)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    page.click("#play")


def raised(log: str) -> list[str]:
    """A log's error lines: uvicorn's `ERROR:` ones and the last line of each traceback."""
    error = re.compile(r"(ERROR:|[A-Za-z_][\w.]*(Error|Exception)\b)")
    return [" ".join(line.split()) for line in log.splitlines() if error.match(line)]


def _finished(url: str) -> dict | None:
    try:
        status = get_json(url + "api/state").get("status") or {}
    except (OSError, ValueError):
        return None
    if status.get("status") == "error":
        raise RuntimeError(f"the lab reports an error: {status.get('message')}")
    if status.get("status") != "finished":
        return None
    return {**status, "iteration": sum(r["iteration"] for r in status.get("runs", []))}


# --- an experiment of five runs, and the same runs one after another ----------------------


def experiment(args: argparse.Namespace):
    """Models A-E as the lab builds them (shortened to --iterations when given)."""
    from dataclasses import replace

    from mlplab.lab.experiments import builtin

    chosen = builtin(EXPERIMENT)
    if args.iterations:
        base = {**chosen.base, "iterations": args.iterations}
        base["eval_every"] = max(1, args.iterations // 4)
        chosen = replace(chosen, base=base)
    return chosen


def train_flags(config) -> list[str]:
    """`mlplab train` flags for a config: the fields that differ from the default job."""
    from mlplab.lab.session import fields_of

    flags = []
    for name, value in fields_of(config).items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def finals(out: Path) -> list[dict]:
    """The final lines of every run under `out` that has one."""
    found = []
    for path in out.glob("*/metrics.jsonl"):
        try:
            lines = path.read_text().strip().splitlines()
            last = json.loads(lines[-1]) if lines else None
        except (OSError, json.JSONDecodeError):
            continue
        if last and last.get("kind") == "final":
            found.append(last)
    return found


def run_sequence(args: argparse.Namespace, tmp: Path, index: int) -> Result:
    """The experiment's runs by `mlplab train`, one after another: all their steps over all
    their training seconds."""
    out = tmp / f"sequence-{index}"
    cpu_before, wall_before = _children_cpu(), time.perf_counter()
    for i, config in enumerate(experiment(args).configs(out=str(out))):
        flags = ["--out", str(out), *train_flags(config)]
        if args.threads:
            flags += ["--threads", str(args.threads)]
        child = Child(
            [sys.executable, "-m", "mlplab", "train", *flags],
            child_env(args.threads),
            tmp / f"sequence-{index}-{i}.log",
        )
        child.wait(args.timeout)
        code = child.stop()
        if code:
            raise RuntimeError(f"mlplab train {' '.join(flags)} exited {code}: {child.tail()}")
    done = finals(out)
    result = Result("sequence", sum(int(f["iteration"]) for f in done), exit="0")
    result.seconds = sum(float(f["seconds"]) for f in done)
    result.play_to_final = result.seconds
    result.cores = (_children_cpu() - cpu_before) / (time.perf_counter() - wall_before)
    return result


def _children_cpu() -> float:
    """CPU seconds of every child process this one has waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_experiment(args: argparse.Namespace, tmp: Path, index: int, pw) -> Result:
    """The experiment in `mlplab lab --experiment` with the page open: all its runs' steps
    over the wall time from play to the last run's final line."""
    out = tmp / f"experiment-{index}"
    chosen = experiment(args)
    command = [sys.executable, "-m", "mlplab", "lab", "--port", "0", "--out", str(out)]
    command += ["--experiment", chosen.link()]
    if args.threads:
        command += ["--threads", str(args.threads)]
    child = Child(command, child_env(args.threads), tmp / f"experiment-{index}.log")
    result, opened = Result("experiment"), []
    deadline = time.monotonic() + args.timeout
    try:
        url = wait_for("its address", lambda: READY.search(child.output()), deadline, child)[1]
        probe = Probe(child.proc.pid, args.rss_every)
        opened.append(probe.stop)
        open_and_play(pw, url, result, opened)
        played = time.perf_counter()
        health = Prober(url).start(args.healthz_every)
        opened.append(health.stop)
        every = len(chosen.runs)
        done = wait_for(
            f"{every} final lines", lambda: len(finals(out)) == every or None, deadline, child
        )
        result.play_to_final = time.perf_counter() - played
        result.cores = probe.cores(played, played + result.play_to_final)
        assert done
        health.stop()
        result.healthz_ms, result.healthz_errors = health.ms, len(health.failures)
        result.iterations = sum(int(f["iteration"]) for f in finals(out))
        result.seconds = result.play_to_final
    finally:
        close_all(opened, result)
        result.exit = how_it_ended(child)
    return result


# --- numbers -----------------------------------------------------------------------------


def rss_growth(result: Result) -> dict:
    """RSS at the first sample after play and at the last (at the final line), the medians of
    the first and the last quarter, the growth from one median to the other (see the module
    docstring), and the peak."""
    during = [(t, rss) for t, rss in result.rss if 0 <= t <= result.play_to_final]
    if not during:
        return {}
    quarter = result.play_to_final / 4
    first_q = [rss for t, rss in during if t <= quarter] or [during[0][1]]
    last_q = [rss for t, rss in during if t >= result.play_to_final - quarter] or [during[-1][1]]
    first_q, last_q = statistics.median(first_q), statistics.median(last_q)
    first, end = during[0][1], during[-1][1]
    return {
        "first": first,
        "end": end,
        "first_q": first_q,
        "last_q": last_q,
        "growth": last_q / first_q - 1,
        "max": max(rss for _, rss in during),
        "samples": len(during),
    }


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def share(a: float | None, b: float | None) -> str | None:
    return f"{a / b:.1%}" if a and b else None


def cpu_text(rs: list[Result]) -> str | None:
    """The median CPU the training process used, in cores, and the browser's beside it."""
    cores = [r.cores for r in rs if r.cores is not None]
    if not cores:
        return None
    text = f"{statistics.median(cores):.2f}"
    browser = [r.browser_cores for r in rs if r.browser_cores is not None]
    return text + (f" + browser {statistics.median(browser):.2f}" if browser else "")


def speed_table(by: dict[str, list[Result]], med: dict[str, float | None]) -> str:
    rows = []
    for mode, label in MODES.items():
        rs = by[mode]
        seconds = statistics.median([r.seconds for r in rs]) if rs else None
        against = share(med[mode], med["train"])
        if mode == "sequence":
            against = "the baseline of claim 4"
        if mode == "vanished" and rs:
            against = f"{against}; {share(med[mode], med['bare'])} of no browser"
        if mode == "experiment" and rs:
            against = f"{share(med[mode], med['sequence'])} of A-E one after another"
        rows.append(
            [
                label,
                f"{med[mode]:.1f}" if med[mode] else None,
                ", ".join(f"{r.steps_per_second:.1f}" for r in rs) or None,
                f"{seconds:.1f}" if seconds else None,
                cpu_text(rs),
                against,
            ]
        )
    header = ["run", "steps/s (median)", "steps/s, each round", "training s (median)"]
    header += ["CPU while training, cores (median)", "vs `mlplab train`"]
    return table(header, rows)


def judge(args, by: dict[str, list[Result]], med: dict[str, float | None]) -> Claims:
    """The four claims."""
    v = Claims()
    train, page, bare, vanished, sequence, together = (med[m] for m in MODES)
    measured = f"{share(page, train)} (no browser: {share(bare, train)})" if page else None
    ok = page / train >= args.min_ratio if page and train else None
    v.add(
        "1. steps/s, page open / `mlplab train` (medians)",
        f">= {args.min_ratio:.0%}",
        measured,
        ok,
    )
    ms = [x for r in by["page"] for x in r.healthz_ms]
    errors = sum(r.healthz_errors for r in by["page"])
    p99 = percentile(ms + [math.inf] * errors, 99) if ms else None
    measured = (
        f"p50 {percentile(ms, 50):.1f} ms, p99 {p99:.1f} ms, max {max(ms):.1f} ms; "
        f"{len(ms)} answered, {errors} failed"
        if ms
        else None
    )
    ok = p99 <= args.healthz_p99_ms if ms else None
    v.add(
        "2. /healthz p99 while training, page open",
        f"<= {args.healthz_p99_ms:.0f} ms",
        measured,
        ok,
    )
    growths = [g["growth"] for g in map(rss_growth, by["page"]) if g]
    worst = max(growths) if growths else None
    measured = f"worst {worst:+.1%} of {len(growths)} run(s)" if growths else None
    ok = worst <= args.max_rss_growth if growths else None
    v.add(
        "3a. lab RSS median, first quarter -> last quarter, page open",
        f"<= +{args.max_rss_growth:.0%}",
        measured,
        ok,
    )
    measured = f"all {len(by['vanished'])} finished; {share(vanished, bare)}" if vanished else None
    ok = vanished / bare >= args.min_ratio if vanished and bare else None
    v.add(
        "3b. vanished browser: finishes; steps/s / no browser (medians)",
        f"finishes, >= {args.min_ratio:.0%}",
        measured,
        ok,
    )
    ratio = together / sequence if together and sequence else None
    ms = [x for r in by["experiment"] for x in r.healthz_ms]
    p99 = f"; /healthz p99 {percentile(ms, 99):.1f} ms" if ms else ""
    v.add(
        "4. five runs side by side, page open: steps/s / one after another (medians)",
        f">= {args.min_experiment_ratio:.0%}",
        f"{ratio:.1%}{p99}" if ratio else None,
        ratio >= args.min_experiment_ratio if ratio else None,
    )
    return v


def memory_table(results: list[Result]) -> str:
    rows = []
    for r in results:
        g = rss_growth(r)
        if g:
            rows.append(
                [
                    SHORT[r.mode],
                    f"{r.play_to_final:.1f}",
                    str(g["samples"]),
                    *(mib(g[k]) for k in ("first", "end", "max", "first_q", "last_q")),
                    f"{g['growth']:+.1%}",
                ]
            )
    header = ["run", "play -> final line (s)", "samples", "first after play"]
    header += ["at the final line", "peak", "median, first quarter", "median, last quarter"]
    header += ["growth (medians)"]
    return table(header, rows)


def report(args, results: list[Result], failure: str | None, facts: dict) -> tuple[str, bool]:
    """The markdown section, and whether every claim held."""
    by = {mode: [r for r in results if r.mode == mode] for mode in MODES}
    med = {
        m: statistics.median([r.steps_per_second for r in rs]) if rs else None
        for m, rs in by.items()
    }
    single = [r for r in results if r.mode not in ("sequence", "experiment")]
    iterations = sorted({r.iterations for r in single}) or [args.iterations or DEFAULT_ITERATIONS]
    full = "" if args.iterations else ", the full job"
    smoke = " Smoke run: meaningless numbers." if args.smoke else ""
    verdicts = judge(args, by, med)
    lines = [
        "## Lab: `mlplab lab` training with the page open",
        "",
        f"`{facts['command']}`: the default job (784-512-512-10, "
        f"{', '.join(map(str, iterations))} iterations{full}), {args.repeats} round(s) of the "
        "six runs, interleaved in the order of the table, each a process of its own; threads: "
        f"{facts['threads']}. {facts['cpu']}, {facts['cores']}, torch {facts['torch']}, "
        f"commit {facts['commit']}, {facts['date']}. Load average (1/5/15 min) "
        f"{facts['load_before']} before, {facts['load_after']} after.{smoke}",
        "",
        speed_table(by, med),
        "",
        table(["claim", "goal", "measured", "verdict"], verdicts.rows),
        "",
        f"Resident set size (psutil, every {args.rss_every} s) from play to the final line, "
        "each run in order. The claim compares a page-open run's median over the last quarter "
        "of that time with its median over the first (evaluations make brief peaks); `mlplab "
        "train` is timed from its final line less its training seconds, for comparison:",
        "",
        memory_table(results),
        "",
    ]
    events = ", ".join(str(r.events) for r in by["bare"]) or "no"
    page_errors = [e for r in by["page"] for e in r.page_errors]
    first = f" (the first: {page_errors[0][:200]})" if page_errors else ""
    lines.append(
        f"- The SSE reader of the no-browser runs read {events} events; the page logged "
        f"{len(page_errors)} JavaScript error(s){first}."
    )
    ends = [f"{r.mode} {r.exit}" for r in results if r.mode not in ("train", "sequence")]
    lines.append(f"- How each lab ended (SIGTERM after its run): {', '.join(ends) or 'none ran'}.")
    lines += [f"- {MODES[r.mode]}: {note}" for r in results for note in r.notes]
    if failure:
        lines.append(failed(failure))
    lines += verdicts.failures(unmeasured=not failure)
    return "\n".join(lines), verdicts.ok and not failure


# --- main --------------------------------------------------------------------------------


def torch_threads(threads: int | None) -> str:
    """What the children train with, in words."""
    if threads:
        return f"{threads} (--threads {threads}, OMP_NUM_THREADS={threads})"
    if "OMP_NUM_THREADS" in os.environ:  # this process's count is not the children's
        done = processes.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
            120,
            env=child_env(None),
        )
        count = done.stdout.strip() or "?"
    else:
        import torch

        count = str(torch.get_num_threads())
    return f"torch's default ({count} here; no --threads, OMP_NUM_THREADS unset)"


def measure(
    args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[list[Result], str | None]:
    """Every run, interleaved; stops at the first failure (and says which)."""
    from playwright.sync_api import sync_playwright

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-lab-") as folder, sync_playwright() as pw:
        tmp = Path(folder)
        if not args.smoke:  # warm-up: the page cache (Python, torch, MNIST) and chromium
            log("warm-up")
            warm = argparse.Namespace(**{**vars(args), "iterations": 20})
            run_train(warm, tmp, 0)
            launch_chromium(pw).close()
        for index in range(1, args.repeats + 1):
            for mode in MODES:
                log(f"round {index}/{args.repeats}: {mode}")
                try:
                    if mode == "train":
                        result = run_train(args, tmp, index)
                    elif mode == "sequence":
                        result = run_sequence(args, tmp, index)
                    elif mode == "experiment":
                        result = run_experiment(args, tmp, index, pw)
                    else:
                        result = run_lab(args, tmp, index, mode, pw)
                except Exception as e:
                    traceback.print_exc()
                    return results, f"{MODES[mode]}, round {index}: {type(e).__name__}: {e}"
                log(f"  {result.steps_per_second:.1f} steps/s, {result.seconds:.1f} s")
                results.append(result)
    return results, None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes.stop_on_sigterm()
    import torch

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    command = " ".join(["python -m benchmarks.lab", *(sys.argv[1:] if argv is None else argv)])
    facts = {
        "command": command,
        "cpu": cpu_model(),
        "cores": f"{psutil.cpu_count(logical=False)} cores ({psutil.cpu_count()} logical)",
        "torch": torch.__version__,
        "commit": git_commit(),
        "threads": torch_threads(args.threads),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_average(),
    }
    start = time.time()
    results, failure = measure(args, log)
    facts["load_after"] = load_average()
    text, ok = report(args, results, failure, facts)
    print(text + f"\n- Wall time of the benchmark: {time.time() - start:.0f} s.", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
