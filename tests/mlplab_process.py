"""`python -m mlplab` as a real process in a test: started with one CPU thread, waited for (and
killed past a timeout), polled for a condition while it runs; and the run folder it makes.
Shared by the end-to-end tests that kill and resume runs (tests/cli, tests/cuda)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mlplab:
    """`python -m mlplab BEFORE ARGS AFTER` in a folder, never waited for past `timeout` s."""

    timeout: float
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    poll: float = 0.0002  # seconds between two looks at a condition

    def start(self, *args: str, cwd: Path) -> subprocess.Popen:
        """The process, started with one CPU thread, its stdout and stderr piped as text."""
        command = [sys.executable, "-m", "mlplab", *self.before, *args, *self.after]
        return subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen) -> tuple[int, str, str]:
        """Wait for the process (killed past the timeout); its exit code, stdout and stderr."""
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return proc.returncode, out, err

    def wait_for(self, condition, proc: subprocess.Popen) -> bool:
        """Poll `condition` until it holds (True) or the process ends first (False)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if proc.poll() is not None:
                return False
            time.sleep(self.poll)
        proc.kill()
        raise TimeoutError("the condition never held")


def run_dir(out: Path) -> Path | None:
    """The one run folder under `out`, if there is one yet."""
    found = [p for p in out.glob("*") if p.is_dir()] if out.is_dir() else []
    return found[0] if found else None
