"""The tutorials' experiments with their own hyperparameters, beside the numbers they published.

Nothing here is tuned to match: each experiment is the tutorial's recipe, run over several
seeds, and the table says how far each mean lands from the published number.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from mlplab.config import TrainConfig
from mlplab.data.dataset import Dataset
from mlplab.training.trainer import TrainResult, train


@dataclass(frozen=True)
class Experiment:
    """One tutorial recipe and the test accuracy (%) the tutorial published, if any."""

    key: str
    title: str
    config: TrainConfig
    published: float | None
    source: str


def _tutorial_abcde(preset: str, published: float) -> Experiment:
    return Experiment(
        key=f"preset-{preset}",
        title=f"preset {preset} ({TrainConfig(preset=preset).model_spec})",
        config=TrainConfig(
            preset=preset,
            dataset="mnist",
            normalization="none",
            optimizer="sgd",
            lr=0.1,
            batch_size=100,
            iterations=3000,
            schedule="constant",
            eval_every=500,
        ),
        published=published,
        source="feedforward tutorial: ToTensor, batch 100, SGD lr 0.1, 3000 iterations",
    )


EXPERIMENTS: tuple[Experiment, ...] = (
    _tutorial_abcde("a", 91.0),
    _tutorial_abcde("b", 95.0),
    _tutorial_abcde("c", 95.0),
    _tutorial_abcde("d", 96.0),
    _tutorial_abcde("e", 97.0),
    Experiment(
        key="logsoftmax-nll",
        title="784-100-10 ReLU, log-softmax + NLL",
        config=TrainConfig(
            model="784-100-10:relu",
            loss="nll",
            dataset="mnist",
            normalization="tutorial",
            optimizer="sgd",
            lr=0.01,
            batch_size=64,
            epochs=10,
            schedule="constant",
        ),
        published=96.0,
        source=(
            "log-softmax tutorial (A Neural Net in PyTorch): Normalize(0.5, 0.5), batch 64, "
            "SGD lr 0.01, 10 epochs"
        ),
    ),
    Experiment(
        key="quickstart-fashion",
        title="quickstart-512 on Fashion-MNIST",
        config=TrainConfig(
            preset="quickstart-512",
            dataset="fashion-mnist",
            normalization="none",
            optimizer="sgd",
            lr=1e-3,
            batch_size=64,
            epochs=10,
            schedule="constant",
        ),
        published=None,
        source="PyTorch quickstart: ToTensor, batch 64, SGD lr 1e-3, 10 epochs",
    ),
)

QUICK_ITERATIONS = 150


@dataclass
class Row:
    """One experiment's test accuracies over seeds, and how they compare."""

    experiment: Experiment
    accuracies: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    @property
    def gap(self) -> float | None:
        """Our mean minus the published number, in points; None when nothing was published."""
        pub = self.experiment.published
        return None if pub is None else self.mean - pub


def quick_config(config: TrainConfig) -> TrainConfig:
    """The same recipe on a budget small enough for a test."""
    return config.replace(iterations=QUICK_ITERATIONS, eval_every=QUICK_ITERATIONS // 3)


def reproduce(
    load: Callable[[str], Dataset],
    seeds: tuple[int, ...] = (0, 1, 2),
    quick: bool = False,
    keys: tuple[str, ...] | None = None,
    device=None,
    on_result: Callable[[Experiment, int, TrainResult], None] | None = None,
) -> list[Row]:
    """Run the experiments (all, or those named by key) over seeds; load(name) gives data."""
    rows = []
    for exp in EXPERIMENTS:
        if keys and exp.key not in keys:
            continue
        data = load(exp.config.dataset)
        row = Row(exp)
        for seed in seeds:
            config = exp.config.replace(seed=seed)
            if quick:
                config = quick_config(config)
            result = train(config, data, device)
            row.accuracies.append(result.test.accuracy)
            row.seconds.append(result.seconds)
            if on_result:
                on_result(exp, seed, result)
        rows.append(row)
    return rows


def format_table(rows: list[Row], quick: bool = False) -> str:
    """A Markdown table: ours (mean ± std over seeds) beside the published number."""
    lines = [
        "| experiment | recipe | seeds | test accuracy % (mean ± std) | published % | "
        "difference (points) | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        exp = row.experiment
        pub = "—" if exp.published is None else f"{exp.published:.0f}"
        gap = row.gap
        if gap is None:
            diff = "no published number"
        elif quick:
            diff = f"{gap:+.2f} (quick budget: not comparable)"
        elif gap >= 0:
            diff = f"{gap:+.2f} (reached)"
        else:
            diff = f"{gap:+.2f} (short by {-gap:.2f})"
        lines.append(
            f"| {exp.title} | {exp.source} | {len(row.accuracies)} | "
            f"{row.mean:.2f} ± {row.std:.2f} | {pub} | {diff} | "
            f"{statistics.fmean(row.seconds):.1f} |"
        )
    return "\n".join(lines) + "\n"
