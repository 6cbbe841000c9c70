"""mlplab.MLPClassifier against sklearn.neural_network.MLPClassifier: fit time and accuracy.

Claim (issue 13): with equal settings (the same hidden sizes, solver adam, batch_size,
learning_rate_init, alpha and max_iter; early stopping off, tol stopping out of reach), our
estimator fits MNIST at least 10x faster than scikit-learn's, at a test accuracy within 0.3
points. Three data sets: MNIST (60k x 784 scaled to [0, 1], (512, 512), 10 epochs),
make_classification(100_000, 100, n_informative=40, n_classes=5) and load_digits, where
fixed start-up costs dominate. Both fit in this process on the same float64 arrays, one
after the other; each time is the median of --repeats fits (default 3), after one untimed
warm-up fit of each (it pays torch's and BLAS's first-call costs). Prints a markdown table.

    python -m benchmarks.sklearn_fit [--repeats 3] [--only mnist,blobs,digits] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from benchmarks.machine import git_commit
from benchmarks.report import table
from mlplab.data.dataset import load_dataset
from mlplab.sklearn import MLPClassifier


@dataclass(frozen=True)
class Case:
    name: str
    load: Callable[[bool], tuple[np.ndarray, ...]]
    hidden: tuple[int, ...]
    epochs: int


def mnist(smoke: bool):
    data = load_dataset("mnist")
    n, nt = (2000, 500) if smoke else (len(data.train), len(data.test))
    x = data.train.x[:n].reshape(n, -1).numpy() / 255.0
    xt = data.test.x[:nt].reshape(nt, -1).numpy() / 255.0
    return x, data.train.y[:n].numpy(), xt, data.test.y[:nt].numpy()


def classification(smoke: bool):
    n = 5000 if smoke else 100_000
    x, y = make_classification(
        n_samples=n, n_features=100, n_informative=40, n_classes=5, random_state=0
    )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return x_train, y_train, x_test, y_test


def digits(smoke: bool):
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x / 16.0, y, test_size=0.2, stratify=y, random_state=0
    )
    return x_train, y_train, x_test, y_test


CASES = {
    "mnist": Case("MNIST 60k x 784", mnist, (512, 512), 10),
    "classification": Case(
        "make_classification 100k x 100, 5 classes (80k fit)", classification, (100,), 10
    ),
    "digits": Case("load_digits 1,797 x 64 (1,437 fit)", digits, (100,), 50),
}


def settings(case: Case, epochs: int) -> dict:
    """What both estimators are given; n_iter_no_change > max_iter keeps tol from stopping
    either one early, so both train exactly `epochs` epochs."""
    return dict(
        hidden_layer_sizes=case.hidden,
        solver="adam",
        batch_size=200,
        learning_rate_init=1e-3,
        alpha=1e-4,
        max_iter=epochs,
        early_stopping=False,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )


def timed_fit(make, params: dict, arrays) -> tuple[float, float]:
    x, y, xt, yt = arrays
    clf = make(**params)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    seconds = time.perf_counter() - start
    return seconds, 100.0 * clf.score(xt, yt)


def measure(case: Case, repeats: int, smoke: bool, device: str) -> dict:
    arrays = case.load(smoke)
    epochs = 2 if smoke else case.epochs
    params = settings(case, epochs)
    ours = {**params, "device": device}
    warm = settings(case, 1)
    timed_fit(SkMLPClassifier, warm, arrays)
    timed_fit(MLPClassifier, {**warm, "device": device}, arrays)
    sk = [timed_fit(SkMLPClassifier, params, arrays) for _ in range(repeats)]
    us = [timed_fit(MLPClassifier, ours, arrays) for _ in range(repeats)]
    sk_s, us_s = (statistics.median(t for t, _ in runs) for runs in (sk, us))
    return {
        "case": case,
        "epochs": epochs,
        "rows": len(arrays[0]),
        "sk_s": sk_s,
        "us_s": us_s,
        "sk_acc": statistics.median(a for _, a in sk),
        "us_acc": statistics.median(a for _, a in us),
    }


def render(results: list[dict], repeats: int, device: str) -> str:
    head = ["data", "hidden, epochs", "scikit-learn fit", "mlplab fit", "speed-up"]
    head += ["scikit-learn test acc", "mlplab test acc"]
    rows = [
        [
            r["case"].name,
            f"{r['case'].hidden}, {r['epochs']}",
            f"{r['sk_s']:.2f} s",
            f"{r['us_s']:.2f} s",
            f"{r['sk_s'] / r['us_s']:.1f}x",
            f"{r['sk_acc']:.2f}%",
            f"{r['us_acc']:.2f}%",
        ]
        for r in results
    ]
    note = (
        f"Medians of {repeats} fits each. torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, "
        f"mlplab device {device}, commit {git_commit()}; "
        f"command: python -m benchmarks.sklearn_fit {' '.join(sys.argv[1:])}".rstrip()
    )
    return table(head, rows) + "\n\n" + note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sklearn_fit", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per estimator")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--device", default="auto", help="mlplab's device (auto, cpu, cuda)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and 2 epochs")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"--only: unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    results = [measure(CASES[n], args.repeats, args.smoke, args.device) for n in names]
    print(render(results, args.repeats, args.device))


if __name__ == "__main__":
    main()
