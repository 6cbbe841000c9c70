"""What a study holds, shown: a table of trials best first, the best configuration as an
`mlplab train` command line, Optuna's own pictures, and sweep.html holding them all."""

from __future__ import annotations

import base64
import html
import io
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig
from mlplab.io.atomic import atomic_write, atomic_write_text

PICTURES = {
    "optimization_history": "Optimization history (validation accuracy by trial)",
    "parallel_coordinate": "Parallel coordinates of the parameters",
    "param_importances": "Parameter importances",
}


@dataclass(frozen=True)
class TrialRow:
    """One trial as `mlplab sweep show` lists it."""

    number: int
    state: str  # complete, pruned, fail, running, waiting
    params: dict[str, Any]
    value: float | None
    iterations: int | None
    seconds: float | None
    run_dir: str | None
    error: str | None
    retry_of: int | None

    @classmethod
    def of(cls, trial) -> TrialRow:
        attrs = trial.user_attrs
        duration = trial.duration
        return cls(
            number=trial.number,
            state=trial.state.name.lower(),
            params=dict(trial.params),
            value=trial.value,
            iterations=attrs.get("iterations"),
            seconds=duration.total_seconds() if duration else None,
            run_dir=attrs.get("run_dir"),
            error=attrs.get("error"),
            retry_of=trial.system_attrs.get("failed_trial"),
        )


_ORDER = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}


def trial_rows(study) -> list[TrialRow]:
    """Every trial, best first: complete by validation accuracy, then pruned, then the rest."""
    rows = [TrialRow.of(t) for t in study.get_trials(deepcopy=False)]
    return sorted(
        rows,
        key=lambda r: (_ORDER.get(r.state, 5), -(r.value if r.value is not None else -1), r.number),
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table_rows(rows: list[TrialRow], names: list[str]) -> list[list[str]]:
    """Each trial as cells: number, state, parameters, val accuracy, iterations, seconds."""
    out = []
    for r in rows:
        state = r.state + (f" (retry of {r.retry_of})" if r.retry_of is not None else "")
        out.append(
            [str(r.number), state]
            + [_cell(r.params.get(n)) for n in names]
            + [
                f"{r.value:.2f}" if r.value is not None else "",
                _cell(r.iterations),
                f"{r.seconds:.1f}" if r.seconds is not None else "",
            ]
        )
    return out


def header(names: list[str]) -> list[str]:
    return ["trial", "state", *names, "val acc %", "iterations", "seconds"]


def format_table(rows: list[TrialRow], names: list[str]) -> str:
    """The trials as an aligned text table, with each failed trial's reason beneath it."""
    cells = [header(names), *table_rows(rows, names)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        error = rows[i - 1].error if i else None
        if error:
            lines.append(f"    {error}")
    return "\n".join(lines) + "\n"


def train_command(values: dict[str, Any]) -> str:
    """`mlplab train` with every field that differs from TrainConfig's default."""
    defaults = TrainConfig()
    parts = ["mlplab", "train"]
    for name, value in sorted(values.items()):
        if value is None or value == getattr(defaults, name, object()):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        else:
            parts += [flag, shlex.quote(repr(value) if isinstance(value, float) else str(value))]
    return " ".join(parts)


def write_pictures(study, out: Path) -> dict[str, Path]:
    """Optuna's matplotlib pictures of the study into OUT/plots/. A picture that needs more
    trials than the study has (importances need two complete ones), or a package that is
    not installed (matplotlib; scikit-learn for importances), is left out."""
    try:
        import matplotlib
    except ImportError:
        return {}  # pictures need the plots extra
    matplotlib.use("Agg")  # no display: the pictures go to files
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    written = {}
    for name in PICTURES:
        with warnings.catch_warnings():  # Optuna calls its matplotlib backend experimental
            warnings.simplefilter("ignore")
            try:
                axes = getattr(vis, f"plot_{name}")(study)
            except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
                continue  # too few trials for it, or (importances) no scikit-learn
        figure = getattr(axes, "figure", None) or axes.flat[0].figure
        figure.set_size_inches(9, 5)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written[name] = atomic_write(out / "plots" / f"{name}.png", buffer.getvalue())
    return written


def write_html(
    title: str,
    summary: str,
    command: str | None,
    rows: list[TrialRow],
    names: list[str],
    pictures: dict[str, Path],
    out: Path,
) -> Path:
    """OUT/sweep.html: the summary, the trial table and the pictures, in one offline page."""
    from mlplab.viz.report import STYLE  # the run report's look

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header(names))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(rows, names)
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(PICTURES[name])}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>'
        f"{html.escape(PICTURES[name])}</figcaption></figure>"
        for name, path in pictures.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{STYLE}
.headline {{ font-size: 1.2em; }} code {{ background: #f4f4f4; padding: 2px 4px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="headline">{html.escape(summary)}</p>
{f"<p><code>{html.escape(command)}</code></p>" if command else ""}
<h2>Trials, best first</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Pictures</h2>
{figures or "<p>Too few finished trials for pictures yet.</p>"}
</body></html>
"""
    return atomic_write_text(out / "sweep.html", page)
