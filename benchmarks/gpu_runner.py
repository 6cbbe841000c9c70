"""How the GPU check (benchmarks/gpu_check.py) runs its steps: each within its budget, through
child processes bounded by what is left of it. A step that fails, runs out of time or breaks
is recorded and the next one runs; the Markdown file is rewritten whole after each step, so
that a kill keeps the steps done."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import processes
from benchmarks.gpu_prepare import commit
from benchmarks.report import table, write_atomic


class StepTimeout(Exception):
    """A step ran past its budget; `partial` is what it had to say by then: a child's output
    (shown as a code block), or Markdown of its own where `markdown`."""

    def __init__(self, budget: float, partial: str = "", markdown: bool = False):
        super().__init__(f"timed out after {budget:.0f} s")
        self.partial, self.markdown = partial, markdown


@dataclass
class Context:
    """What every step gets: the arguments, the children's environment, a scratch folder."""

    device: str
    smoke: bool
    work: Path
    log: Path | None
    env: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # module -> why it cannot import
    budget: float = 0.0  # the current step's
    deadline: float = 0.0  # time.monotonic() when the current step's budget runs out

    def run(
        self, command: list[str], limit: float | None = None, env: dict | None = None
    ) -> tuple[int, str]:
        """A child of this step, bounded by `limit` and by what is left of the step's budget:
        (exit code, stdout then stderr). Raises StepTimeout, with the output so far, when
        the step's budget runs out."""
        left = self.deadline - time.monotonic()
        limit = left if limit is None else min(limit, left)
        if limit <= 0:
            raise StepTimeout(self.budget)
        env = {**self.env, **(env or {})}
        done = processes.run(command, limit, env=env, own_session=False)
        text = done.stdout + ("\n" + done.stderr if done.stderr.strip() else "")
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"\n$ {' '.join(command)}\n{text}")
        if done.timed_out:
            raise StepTimeout(self.budget if limit == left else limit, text)
        return done.returncode, text


@dataclass
class Outcome:
    """What a step found: passed or not, a one-line result, and its section's Markdown."""

    ok: bool
    result: str
    body: str = ""


@dataclass(frozen=True)
class Step:
    title: str
    budget: float  # seconds on a GPU machine
    smoke_budget: float  # seconds with --smoke on 2 CPU cores
    check: Callable[[Context], Outcome]

    def cap(self, smoke: bool) -> float:
        return self.smoke_budget if smoke else self.budget


FORCED = {  # --force STEP=KIND, to check that a failure or a timeout is recorded
    "fail": "import sys; sys.exit('forced failure (--force)')",
    "timeout": "import time; time.sleep(3600)",
}


def json_line(text: str):
    """The last line of a child's output that is JSON (its answer; warnings may follow)."""
    for line in reversed(text.splitlines()):
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON in the output: {last_line(text)}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def fenced(text: str, lines: int = 60) -> str:
    """The last `lines` lines of a child's output, as a code block."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return f"```\n{tail}\n```" if tail else ""


def run_step(step: Step, ctx: Context, force: str | None) -> dict:
    """One step within its budget; what happened, whatever happened."""
    start = time.monotonic()
    ctx.budget = 2.0 if force == "timeout" else step.cap(ctx.smoke)
    ctx.deadline = start + ctx.budget
    try:
        if force:
            rc, text = ctx.run([sys.executable, "-c", FORCED[force]])
            outcome = Outcome(rc == 0, last_line(text), fenced(text))
        else:
            outcome = step.check(ctx)
        status = "passed" if outcome.ok else "failed"
    except StepTimeout as e:
        body = e.partial if e.markdown else fenced(e.partial)
        outcome, status = Outcome(False, f"{e} (its budget)", body), "timed out"
    except Exception as e:  # a bug in the step itself: recorded, and the next step runs
        first = f"{type(e).__name__}: {e}".splitlines()[0]
        outcome, status = Outcome(False, first, fenced(traceback.format_exc())), "failed"
    return {"status": status, "seconds": time.monotonic() - start, "outcome": outcome}


def render(args, steps: dict[str, Step], done: dict[str, dict], started: str, seconds: float):
    """The whole file: what ran where, a summary line per step, then each step's section."""
    keys = [k for k in steps if k in args.steps]
    budget = sum(steps[k].cap(args.smoke) for k in keys)
    passed = sum(d["status"] == "passed" for d in done.values())
    state = (
        f"done: {passed} of {len(keys)} steps passed"
        if len(done) == len(keys)
        else f"running: {len(done)} of {len(keys)} steps done"
    )
    facts = [
        ["command", f"`{' '.join(['python -m benchmarks.gpu_check', *args.argv])}`"],
        ["device", args.device + (" (smoke: short budgets)" if args.smoke else "")],
        ["commit", commit()],
        ["started (UTC)", started],
        ["status", state],
        ["wall time", f"{seconds:.0f} s of a {budget:.0f} s budget"],
    ]
    rows, sections = [], []
    for key in keys:
        i, d, step = list(steps).index(key), done.get(key), steps[key]
        took = f"{d['seconds']:.1f}" if d else ""
        result = f"**{d['status']}**: {d['outcome'].result}" if d else "not yet run"
        rows.append([f"{i}. {step.title}", f"{step.cap(args.smoke):.0f}", took, result])
        if d:
            sections.append(f"## {i}. {step.title}\n\n**{d['status']}**: {d['outcome'].result}")
            sections += [d["outcome"].body] if d["outcome"].body else []
    parts = ["# GPU check", table(["", ""], facts)]
    parts.append(table(["step", "budget (s)", "took (s)", "result"], rows))
    return "\n\n".join(parts + sections) + "\n"


def check(args, steps: dict[str, Step], env: dict[str, str]) -> int:
    """Every step asked for, in order, the file rewritten after each; 0 when all passed."""
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path.cwd()
    out = out_dir / "gpu-check.md"
    log = out_dir / "gpu-check.log" if os.environ.get("OUT") else None
    work = Path(tempfile.mkdtemp(prefix="mlplab-gpu-check-"))
    ctx = Context(args.device, args.smoke, work, log, {**env, "PYTHONUNBUFFERED": "1"})
    started, start = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), time.monotonic()
    done: dict[str, dict] = {}
    processes.stop_on_sigterm()
    try:
        write_atomic(out, render(args, steps, done, started, 0))
        for key in (k for k in steps if k in args.steps):
            print(f"{key}: running...", flush=True)
            done[key] = d = run_step(steps[key], ctx, args.force.get(key))
            print(
                f"{key}: {d['status']} in {d['seconds']:.1f} s: {d['outcome'].result}", flush=True
            )
            write_atomic(out, render(args, steps, done, started, time.monotonic() - start))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")
    return 0 if all(d["status"] == "passed" for d in done.values()) else 1
