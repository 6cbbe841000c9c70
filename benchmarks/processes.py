"""The processes a benchmark starts: each bounded by a timeout, in a session (process group) of
its own, and always ended with its whole group, whatever it started in turn (torchrun's ranks,
uvicorn's workers) included.

Two shapes: run() waits for a command and returns its output; a Child runs beside the
benchmark (a server, the lab, a probe) until stop(). Sampler and Probe watch one from a
thread: what it costs in memory and CPU while it works.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # children start here: `-m benchmarks.X` resolves


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group `pid` leads, if any of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class Finished:
    """How a command of run() ended, and what it printed."""

    command: list[str]
    returncode: int | None
    stdout: str | bytes
    stderr: str | bytes
    timed_out: bool
    timeout: float

    def check(self) -> Finished:
        """Itself, or RuntimeError naming the command, how it ended and its last words."""
        if not self.timed_out and self.returncode == 0:
            return self
        ended = f"timed out after {self.timeout:.0f} s" if self.timed_out else "exited"
        if not self.timed_out:
            ended += f" {self.returncode}"
        err = self.stderr
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
        tail = " / ".join(err.strip().splitlines()[-20:])
        raise RuntimeError(f"`{' '.join(self.command)}` {ended}: {tail}")


def run(
    command: list[str],
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    text: bool = True,
    check: bool = False,
    own_session: bool = True,
) -> Finished:
    """Run `command` to its end, or for `timeout` seconds and then kill its whole group.

    Its stdout and stderr are captured (str, or bytes with text=False). What it printed
    before a timeout is kept. With check=True a failure or a timeout raises RuntimeError.
    own_session=False gives it a process group of its own inside this session instead, so
    that a supervisor which ends this session (a lent GPU machine's runner) ends it too.
    """
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        start_new_session=own_session,
        process_group=None if own_session else 0,
    )
    timed_out = False
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            signal_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
    finally:
        signal_group(proc.pid, signal.SIGKILL)  # anything it left behind, or on an exception
        proc.wait(30)
    done = Finished(list(command), proc.returncode, out, err, timed_out, timeout)
    return done.check() if check else done


class Child:
    """A process beside the benchmark, in a session of its own, its stdout and stderr in one
    file (`log`, or an anonymous temporary one). stop() always ends it: SIGTERM to the group,
    then SIGKILL after `grace` seconds; so does leaving a `with` block. stdin=True gives it a
    pipe (proc.stdin) that the caller may close as a signal; otherwise it reads nothing."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        stdin: bool = False,
    ):
        self._log = open(log, "w+b") if log else tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            raise
        self.stopped_by: str | None = None
        self._text: str | None = None  # the output, kept when stop() closes the file

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        """Everything it has written so far."""
        if self._text is not None:
            return self._text
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def tail(self, lines: int = 6) -> str:
        """Its last `lines` lines of output, on one line."""
        return " / ".join(self.output().strip().splitlines()[-lines:])

    def wait(self, timeout: float) -> int | None:
        """Its exit status once it exits within `timeout` seconds; None if it is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 30.0) -> int | None:
        """End the group (SIGTERM, then SIGKILL); the exit status. Stopping twice is harmless."""
        if self._text is not None:
            return self.proc.returncode
        try:
            if self.proc.poll() is None:
                signal_group(self.proc.pid, signal.SIGTERM)
                self.stopped_by = "SIGTERM"
                if self.wait(grace) is None:
                    self.stopped_by = f"SIGKILL ({grace:.0f} s after SIGTERM)"
                    signal_group(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            else:
                signal_group(self.proc.pid, signal.SIGKILL)  # anything it left behind
        finally:
            self._text = self.output()
            self._log.close()
            if self.proc.stdin:
                self.proc.stdin.close()
        return self.proc.returncode


def wait_for(
    what: str, check: Callable, deadline: float, child: Child, every: float = 0.1, lines: int = 6
):
    """Poll check() until it returns something; RuntimeError if the child exits first or the
    monotonic clock passes `deadline` (its last `lines` of output in the message)."""
    while True:
        found = check()
        if found:
            return found
        if child.proc.poll() is not None:
            raise RuntimeError(f"exited {child.proc.returncode} before {what}: {child.tail(lines)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within the timeout: {child.tail(lines)}")
        time.sleep(every)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_on_sigterm() -> None:
    """Make SIGTERM end this process as Ctrl-C does, through every `finally`, so that the
    children it started (in sessions of their own, which a terminal's signals miss) end too."""
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))


# --- watching a process ------------------------------------------------------------------


def repeat(every: float, fn: Callable[[], None], wait: Callable[[float], bool]) -> None:
    """fn() every `every` seconds on a fixed schedule until wait(delay), which waits up to
    `delay` seconds, returns True. A call that ran late is not made up for with a burst."""
    next_at = time.perf_counter()
    while True:
        fn()
        next_at += every
        delay = next_at - time.perf_counter()
        if delay < 0:  # fell behind (a slow request): go on from now
            next_at, delay = time.perf_counter(), 0.0
        if wait(delay):
            return


class Sampler(threading.Thread):
    """Calls fn() every `every` seconds on a thread of its own, from start() until stop()."""

    def __init__(self, every: float, fn: Callable[[], None], name: str):
        super().__init__(name=name, daemon=True)
        self.every, self.fn = every, fn
        self._halt = threading.Event()

    def run(self) -> None:
        repeat(self.every, self.fn, self._halt.wait)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class Probe:
    """A process's resident set size and CPU seconds every `every` seconds:
    (perf_counter time, RSS bytes, CPU seconds)."""

    def __init__(self, pid: int, every: float):
        import psutil

        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, int, float]] = []
        self._lock = threading.Lock()
        self.thread = Sampler(every, self.sample, "probe")
        self.thread.start()

    def sample(self) -> None:
        import psutil

        try:
            with self.process.oneshot():
                rss, cpu = self.process.memory_info().rss, self.process.cpu_times()
        except psutil.Error:
            return
        with self._lock:
            self.samples.append((time.perf_counter(), rss, cpu.user + cpu.system))

    def rss_since(self, start: float) -> list[tuple[float, int]]:
        """The RSS samples, timed from `start` (those before it negative)."""
        with self._lock:
            return [(t - start, rss) for t, rss, _ in self.samples]

    def cores(self, start: float, end: float) -> float | None:
        """CPU seconds per second between the samples nearest to start and end."""
        with self._lock:
            inside = [(t, cpu) for t, _, cpu in self.samples if start - 0.3 <= t <= end + 0.3]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.5:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def stop(self) -> None:
        self.thread.stop()


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its children (the workers of --workers N)."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total
