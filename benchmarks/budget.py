"""What the benchmark runs: the recipes it compares, and how much of each (full or smoke)."""

from __future__ import annotations

from dataclasses import dataclass

TRAIN_SIZE = 60_000
E_CONFIG = dict(
    preset="e",
    optimizer="sgd",
    lr=0.1,
    batch_size=100,
    schedule="constant",
    normalization="none",
)
# mlplab recipes for time to 98%: (label, TrainConfig fields, evaluations per epoch).
_SMALL = dict(model="784-256-256-10:relu", lr=4e-3, batch_size=128, epochs=2, label_smoothing=0.1)
CANDIDATES = (
    (
        "256-256, Adam 4e-3 one-cycle, batch 128, 2 epochs, smoothing 0.1, dataset mean/std",
        {**_SMALL, "normalization": "dataset"},
        4,
    ),
    ("same, evaluated 2x per epoch", {**_SMALL, "normalization": "dataset"}, 2),
    ("same, pixels in [0, 1] (normalization none)", {**_SMALL, "normalization": "none"}, 4),
    ("same, normalization tutorial (mlplab's default)", _SMALL, 4),
    ("512, same otherwise", {**_SMALL, "model": "784-512-10:relu", "normalization": "dataset"}, 4),
    (
        "256-256, batch 256, 3 epochs, no smoothing, dataset mean/std",
        {
            **_SMALL,
            "batch_size": 256,
            "epochs": 3,
            "label_smoothing": 0.0,
            "normalization": "dataset",
        },
        4,
    ),
)
FAST_98 = dict(spec="784-256-256-10:relu", lr=4e-3, batch_size=128, epochs=2.0, label_smoothing=0.1)
FAST_E = dict(
    spec="784-100-100-100-10:relu",
    optimizer="sgd",
    lr=0.1,
    batch_size=100,
    schedule="constant",
    normalization="none",
)
AUG_99 = dict(spec="784-512-512-10:relu", lr=2e-3, batch_size=256, augment="affine")
WIDE = "784-1024-1024-10:relu"


@dataclass(frozen=True)
class Budget:
    """How much of everything to run: the full benchmark, or the smoke test's crumbs."""

    repeats: int = 3
    jobs: int = 1
    threads: int | None = None  # None: the winner of the techniques section
    all_thread_counts: bool = True  # also measure the peak and the wide MLP on every core
    passive_omp: bool = True  # the thread comparison again under OMP_WAIT_POLICY=PASSIVE
    train_size: int | None = None
    tutorial_epochs: int = 5
    throughput_epochs: int = 5
    tech_steps: int = 60
    tech_rounds: int = 3
    compile: bool = True
    matmul_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    matmul_repeats: int = 9
    candidates: int = len(CANDIDATES)
    mlplab_epochs: float | None = None
    sklearn_small_epochs: int = 20
    sklearn_large_epochs: int = 8
    sklearn_large_timeout: float = 200.0
    aug_epochs: float = 18.0
    aug_timeout: float = 150.0
    wide_iterations: int = 40
    wide_eval_every: int = 10
    profile_iterations: int = 120
    timeout: float = 300.0


FULL = Budget()
SMOKE = Budget(
    repeats=1,
    jobs=3,
    threads=1,
    all_thread_counts=False,
    passive_omp=False,
    train_size=2000,
    tutorial_epochs=2,
    throughput_epochs=2,
    tech_steps=4,
    tech_rounds=1,
    compile=False,
    matmul_sizes=(128, 256),
    matmul_repeats=3,
    candidates=1,
    mlplab_epochs=1,
    sklearn_small_epochs=2,
    sklearn_large_epochs=1,
    sklearn_large_timeout=60.0,
    aug_epochs=1.0,
    aug_timeout=60.0,
    wide_iterations=4,
    wide_eval_every=2,
    profile_iterations=4,
    timeout=60.0,
)
