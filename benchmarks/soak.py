"""Soak `mlplab serve`: 20,000 requests, 32 at a time, on 127.0.0.1, good and bad mixed.

Claim: zero 5xx apart from deliberate 503s of overload (counted), zero dropped connections,
server memory (workers included) within 10% from the first to the last thousand requests,
and /healthz p99 under the load at most 100 ms. Prints a markdown table per worker count,
with requests/s and latency percentiles, and exits 1 if any claim fails.

    python -m benchmarks.soak [--requests 20000] [--workers 1 2] [--model RUN_DIR]

Without --model it trains the default network (784-512-512-10) for 300 iterations first.
The load generator runs on the same machine: its share of the cores is part of the numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import processes
from benchmarks.machine import cpu_model, git_commit, load_average
from benchmarks.report import failed, table
from benchmarks.serve_soak import mixed_cases, running_server, soak
from mlplab.data.dataset import load_dataset

TRAIN_TIMEOUT = 600.0  # seconds allowed for the 300 iterations of the model to serve
HEAD = ["workers", "requests", "concurrent", "requests/s", "p50", "p99", "/healthz p50"]
HEAD += ["/healthz p99", "503", "other 5xx", "dropped", "server RSS, first -> last 1,000"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=Path, help="a run directory (default: train one)")
    parser.add_argument("--healthz-p99-ms", type=float, default=100.0)
    return parser.parse_args(argv)


def train_default(out: Path) -> Path:
    """A short run of the default network, for something realistic to serve; what it says
    (its test accuracy, its folder) goes to stdout, ahead of the report."""
    command = [sys.executable, "-m", "mlplab", "train", "--iterations", "300"]
    command += ["--out", str(out), "--name", "soak", "--quiet"]
    print(processes.run(command, timeout=TRAIN_TIMEOUT, check=True).stdout, end="", flush=True)
    return next(out.iterdir())


def row(workers: int, s: dict) -> list:
    """One table row."""
    rss = s["rss_mib"]
    return [
        workers,
        f"{s['requests']:,}",
        s["concurrency"],
        f"{s['requests_per_s']:.0f}",
        f"{s['p50_ms']:.0f} ms",
        f"{s['p99_ms']:.0f} ms",
        f"{s['healthz_p50_ms']:.1f} ms",
        f"{s['healthz_p99_ms']:.0f} ms",
        s["overloaded_503"],
        s["server_errors_5xx"],
        s["errors"],
        f"{rss[0][1]:.0f} -> {rss[-1][1]:.0f} MiB ({s['rss_growth']:+.1%})",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes.stop_on_sigterm()
    digit = load_dataset("mnist").test.x[0].numpy()
    cases = mixed_cases(digit)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_default(Path(tmp))
        results = []
        for workers in args.workers:
            load_before = load_average()
            with running_server(model, "--workers", str(workers)) as (url, proc):
                time.sleep(2.0 * workers)  # let every worker finish loading the model
                stats = soak(
                    url, proc.pid, cases, args.requests, args.concurrency, args.healthz_p99_ms
                )
            results.append((workers, stats, load_before, load_average()))
    print(report(args, cases, results))
    return 1 if any(s["failures"] for _, s, _, _ in results) else 0


def report(args, cases, results) -> str:
    """The markdown: what ran where, the table, and whatever failed."""
    import torch

    good = sum(c.weight for c in cases if c.expect == 200)
    lines = [
        "## Soak: `mlplab serve` under a mixed load",
        "",
        f"`python -m benchmarks.soak --requests {args.requests} --concurrency "
        f"{args.concurrency} --workers {' '.join(map(str, args.workers))}`; "
        f"{cpu_model()}, torch {torch.__version__}, commit {git_commit()}.",
        f"Mix per round of {sum(c.weight for c in cases)}: {good} good (PNG, chunked PNG, "
        f"multipart, octet-stream, JSON, JSON batch of 4), "
        f"{len([c for c in cases if c.expect != 200])} bad, one of each kind.",
        "",
        table(HEAD, [row(w, s) for w, s, _, _ in results]),
        "",
    ]
    for workers, stats, before, after in results:
        lines.append(f"- {workers} worker(s): load average {before} before, {after} after.")
        lines += [f"  {failed(failure)}" for failure in stats["failures"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
