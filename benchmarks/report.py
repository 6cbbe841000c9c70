"""The pass/fail report every section writes: markdown tables, numbers as text, and each
claim's verdict, in one form (`**met**`, `**missed**`, `not measured`; `- FAILED: ...`); and
the file, written whole or not at all."""

from __future__ import annotations

import math
import os
from pathlib import Path

MISSING = "—"
VERDICTS = {True: "**met**", False: "**missed**", None: "not measured"}


def table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table; None cells print as a dash."""
    cells = [[MISSING if c is None else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def fmt(value, digits: int = 2, suffix: str = "") -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    return f"{value:,.{digits}f}{suffix}"


def ratio(value, reference, digits: int = 1) -> str | None:
    """value / reference as 'N.Nx'; '> N.Nx' when value is a lower bound (not reached)."""
    if value is None or reference is None or reference == 0:
        return None
    if math.isinf(reference):
        return None
    if math.isinf(value):
        return "∞ (never got there)"
    return f"{value / reference:.{digits}f}×"


def target_row(name: str, goal: str, measured: str, met: bool | None, margin: str) -> list:
    """A row of the Targets table: the claim, its goal, the median, the verdict, the margin."""
    return [name, goal, measured, VERDICTS[met], margin]


def failed(what: str) -> str:
    """The line a report gives to what did not hold, or a run that failed."""
    return f"- FAILED: {what}"


class Claims:
    """Claim rows (claim, goal, measured, verdict), and whether every one held; a claim not
    measured counts as not held."""

    def __init__(self):
        self.rows: list[list[str]] = []
        self.ok = True

    def add(self, name: str, goal: str, measured: str | None, met: bool | None) -> None:
        self.ok = self.ok and bool(met)
        self.rows.append([name, goal, measured or "no result", VERDICTS[met]])

    def failures(self, unmeasured: bool = True) -> list[str]:
        """A FAILED line for each claim missed, and for each not measured if `unmeasured`."""
        return [
            failed(f"{name}: {measured}")
            for name, _, measured, verdict in self.rows
            if verdict == VERDICTS[False] or (unmeasured and verdict == VERDICTS[None])
        ]


def verdict(value: float, fastest: float) -> str:
    """Fastest, or within 5% of it (a tie on this noisy machine), or slower by how much."""
    if value == fastest:
        return "**fastest**"
    if value <= fastest * 1.05:
        return "tie (within 5%)"
    return f"slower ({value / fastest:.2f}×)"


def margin_text(t: float | None, goal: float, best: float | None, target: float) -> str:
    if t is None:
        return "no result"
    if math.isinf(t):
        return f"best {fmt(best, 2)}%: {target - best:.2f} points short" if best else "no result"
    return f"{t - goal:+.1f} s ({t / goal:.2f}× the budget)"


def sklearn_target(sk98: float | None, ours: float | None, timeout: float) -> list:
    """MLPClassifier(512, 512) time to 98% over mlplab's: the goal is >= 15x."""
    name, goal = "Against MLPClassifier(512, 512) to 98%", "≥ 15× faster"
    if ours is None or sk98 is None:
        return target_row(name, goal, "no result", False, "a case failed")
    if math.isinf(ours):
        return target_row(name, goal, "mlplab did not reach 98%", False, "no ratio")
    if math.isinf(sk98):
        low = timeout / ours
        text = f"≥ {low:.1f}× (sklearn did not reach 98% in {timeout:.0f} s)"
        return target_row(name, goal, text, low >= 15, "lower bound only")
    times = sk98 / ours
    text = f"{times:.1f}× ({sk98:.1f} s vs {ours:.2f} s)"
    return target_row(name, goal, text, times >= 15, f"{times / 15:.2f}× of the goal")


def time_target(name: str, goal: str, t: float | None, limit: float) -> list:
    if t is None:
        return target_row(name, goal, "no result", None, "")
    if math.isinf(t):
        return target_row(name, goal, "not reached", False, "never reached")
    return target_row(
        name, goal, f"{t:.2f} s", t <= limit, f"{t - limit:+.2f} s ({t / limit:.2f}×)"
    )


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a reader (or a kill)
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
