"""python -m benchmarks [--smoke] [--out PATH]: run every section, print it, write the report.

The full run (about 20 minutes on two slow cores) writes BENCHMARKS.md at the repository root;
--smoke runs every row on crumbs in under a minute and writes to a temporary file instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks import processes
from benchmarks.budget import FULL, SMOKE, Budget
from benchmarks.harness import Runner
from benchmarks.machine import load_average, machine_info, python_loop_seconds
from benchmarks.processes import ROOT
from benchmarks.report import table
from benchmarks.sections import Suite
from mlplab.data.sources import locate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny budgets: every row, no meaning")
    parser.add_argument("--out", type=Path, help="where to write the report")
    parser.add_argument("--repeats", type=int, help="runs per case (default 3; smoke 1)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="where mlplab, the tutorial loop and the matmul peak run: cpu or cuda "
        "(scikit-learn is CPU-only)",
    )
    return parser.parse_args(argv)


NOTES = "<!-- Hand-written notes below this line are kept when the benchmark rewrites the file. -->"


def kept_notes(path: Path) -> str:
    """The hand-written tail of an earlier report, so that a re-run keeps the analysis."""
    try:
        text = path.read_text()
    except OSError:
        return f"\n{NOTES}\n"
    return "\n" + text[text.index(NOTES) :] if NOTES in text else f"\n{NOTES}\n"


def run_sections(suite: Suite, log) -> list[tuple[str, str]]:
    """Every section in report order. With jobs > 1 (smoke) independent ones overlap."""
    pool = ThreadPoolExecutor(6) if suite.budget.jobs > 1 else None

    def start(fn, *args):
        if pool is None:
            log(f"{fn.__name__}")
            return _Done(fn(*args))
        return pool.submit(fn, *args)

    # Sequential order matters: techniques decide the thread count for everything after.
    startup = start(suite.startup)
    techniques = start(suite.techniques)
    search = start(suite.recipe_search)
    throughput = start(suite.throughput)
    t99 = start(suite.time_to_99)
    hardware = start(suite.hardware)
    checkpoints = start(suite.checkpoints)
    parallel = start(suite.parallel)
    search_md, winner, search_runs = search.result()
    profiles = start(suite.profiles, winner)
    throughput_md, tutorial_runs = throughput.result()
    tta = start(suite.time_to_accuracy, winner, search_runs, tutorial_runs)
    matmul_md, wide_md = hardware.result()
    profile_md = "\n\n".join(
        f"**{label}** ({seconds:.2f} s under the profiler)\n\n```\n{text.rstrip()}\n```"
        for label, seconds, text in profiles.result()
    )
    sections = [
        ("Where the start-up goes", startup.result()),
        ("Techniques, side by side", techniques.result()),
        ("1. Throughput at equal accuracy", throughput_md),
        ("2a. mlplab recipe search (one run each)", search_md),
        ("2b. Time to 97% and 98% from process start", tta.result()),
        ("2c. Time to 99% from process start", t99.result()),
        ("3a. float32 matmul peak (torch.mm)", matmul_md),
        ("3b. Hardware efficiency: wide MLP", wide_md),
        ("4. Crash safety: what checkpointing costs", checkpoints.result()),
        ("5. Data parallelism: 1 process against 2 ranks", parallel.result()),
        ("Profiles (torch.profiler, operators by self CPU time)", profile_md or "none"),
    ]
    if pool is not None:
        pool.shutdown()
    for title, module, args in SCRIPTS:
        log(module)
        sections.append((title, script_section(module, args, suite.budget is SMOKE)))
    return sections


SCRIPT_TIMEOUT = 3600.0  # seconds one script section may take before it is killed
# Sections that are scripts of their own (each runs alone too), run one after another at the
# end so that nothing else competes for the cores: (title, module, arguments).
SCRIPTS = (
    ("6. scikit-learn: mlplab.MLPClassifier against MLPClassifier", "sklearn_fit", []),
    ("7. Sweeps: Optuna's bookkeeping per trial", "sweep_overhead", []),
    ("8. Soak: mlplab serve under a mixed load", "soak", []),
    ("9. The lab: training with the page open", "lab", []),
    ("10. Tracking: TensorBoard and MLflow at once", "tracking", []),
)


def script_section(module: str, args: list[str], smoke: bool) -> str:
    """The markdown a benchmark script prints (its own headings one level down). The smoke
    run leaves these out: each has a test of its own, and together they take minutes."""
    command = f"python -m benchmarks.{module} {' '.join(args)}".strip()
    if smoke:
        return f"Not in the smoke run; `{command}` runs it alone."
    done = processes.run([sys.executable, "-m", f"benchmarks.{module}", *args], SCRIPT_TIMEOUT)
    text = ("\n" + done.stdout).replace("\n## ", "\n### ")
    if done.returncode or done.timed_out:
        ended = f"timed out after {SCRIPT_TIMEOUT:.0f} s" if done.timed_out else "exited"
        ended += "" if done.timed_out else f" {done.returncode}"
        tail = done.stderr.strip().splitlines()[-3:]
        text += f"\n\n`{command}` {ended}: " + " / ".join(tail)
    return f"Command: `{command}`\n\n{text.strip()}"


class _Done:
    """An already-computed value behind the Future.result() interface."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes.stop_on_sigterm()
    budget = SMOKE if args.smoke else FULL
    if args.repeats:
        budget = type(budget)(**{**budget.__dict__, "repeats": args.repeats})
    out = args.out or (
        Path(tempfile.gettempdir()) / "mlplab-bench-smoke.md"
        if args.smoke
        else ROOT / "BENCHMARKS.md"
    )
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    before = {"start": time.time(), "load": load_average()}
    files = {role: str(path) for role, path in locate("mnist").items()}
    cores = psutil.cpu_count(logical=False) or 1
    suite = Suite(Runner(budget.jobs, log), budget, files, cores, device=args.device)
    before["loop"] = loop_text(args.smoke)
    suite.threads = budget.threads
    sections = run_sections(suite, log)
    for title, body in sections:
        print(f"\n## {title}\n\n{body}\n", flush=True)
    targets_md = targets_table(suite.targets)
    print(f"\n## Targets\n\n{targets_md}\n", flush=True)
    command_text = f"`{command}`" + ("" if args.smoke else " (what `make bench` runs)")
    doc = "\n\n".join(
        [f"# BENCHMARKS{' (smoke run: meaningless numbers)' if args.smoke else ''}"]
        + [header(suite, budget, command_text, before), f"## Targets\n\n{targets_md}"]
        + [f"## {title}\n\n{body}" for title, body in sections]
    )
    out.write_text(doc + "\n" + kept_notes(out))
    log(f"wrote {out} in {time.time() - before['start']:.0f} s")
    return 0


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)


def loop_text(smoke: bool) -> str:
    """How slow this machine is: a pure-Python loop of 10M additions (the smoke run times 1M
    and scales)."""
    scale = 10 if smoke else 1
    loop = python_loop_seconds(10_000_000 // scale)
    return (
        f"{loop[0] * scale:.2f} s at module scope, {loop[1] * scale:.2f} s inside a function "
        "(how slow this machine is)"
    )


# The Targets table's order: a row takes the place of the last of these its name starts with.
TARGET_ORDER = [
    "Throughput",
    "Time to 98%",
    "Time to 98% (",
    "Time to 99%",
    "Against",
    "Hardware",
    "Checkpoint",
]


def targets_table(targets: list[list]) -> str:
    """The Targets table, its rows in TARGET_ORDER."""

    def place(row: list) -> int:
        return max(i for i, p in enumerate(TARGET_ORDER) if row[0].startswith(p))

    rows = sorted(targets, key=place)
    return table(["target", "goal", "measured (median)", "verdict", "margin"], rows)


def header(suite: Suite, budget: Budget, command: str, before: dict[str, str | float]) -> str:
    """The facts at the top of the report: this machine, its load before and after, the run."""
    info = machine_info()
    info["threads used by every case"] = str(suite.threads)
    info["load average (1/5/15 min) before"] = before["load"]
    info["load average (1/5/15 min) after"] = load_average()
    info["pure-Python loop of 10M additions"] = before["loop"]
    info["date (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    info["benchmark wall time"] = f"{time.time() - before['start']:.0f} s"
    info["command"] = command
    info["repeats per case"] = str(budget.repeats)
    return table(["", ""], [[k, v] for k, v in info.items()])


if __name__ == "__main__":
    raise SystemExit(main())
