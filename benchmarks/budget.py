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
_R512 = dict(
    model="784-512-10:relu",
    lr=4e-3,
    batch_size=128,
    label_smoothing=0.1,
    normalization="dataset",
)
CANDIDATES = (
    (
        "784-512-10, Adam 4e-3 one-cycle, batch 128, 700 steps (1.5 epochs), smoothing 0.1, "
        "dataset mean/std",
        {**_R512, "iterations": 700},
        4,
    ),
    ("same, 600 steps", {**_R512, "iterations": 600}, 4),
    ("same, 2 epochs", {**_R512, "epochs": 2}, 4),
    (
        "same, 700 steps, normalization tutorial (mlplab's default)",
        {**_R512, "iterations": 700, "normalization": "tutorial"},
        4,
    ),
    (
        "same, batch 256, lr 6e-3, 350 steps",
        {**_R512, "batch_size": 256, "lr": 6e-3, "iterations": 350},
        4,
    ),
    (
        "same, batch 256, lr 6e-3, 350 steps, threads 2",
        {**_R512, "batch_size": 256, "lr": 6e-3, "iterations": 350, "threads": 2},
        4,
    ),
    ("the first, threads 2", {**_R512, "iterations": 700, "threads": 2}, 4),
    ("the first, threads 2, evaluated 2x per epoch", {**_R512, "iterations": 700, "threads": 2}, 2),
    (
        "784-256-256-10, otherwise the first",
        {**_R512, "model": "784-256-256-10:relu", "iterations": 700},
        4,
    ),
)
# time to 99%: mlplab.train with on-device affine jitter
AUG_99 = dict(
    model="784-512-512-10:relu",
    lr=2e-3,
    batch_size=256,
    augment="affine",
    normalization="dataset",
)
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
    mlplab_epochs: int | None = None
    sklearn_small_epochs: int = 20
    sklearn_large_epochs: int = 8
    sklearn_large_timeout: float = 200.0
    aug_epochs: int = 18
    aug_timeout: float = 150.0
    wide_iterations: int = 40
    wide_eval_every: int = 10
    profile_iterations: int = 120
    checkpoint_rounds: int = 3
    checkpoint_epochs: int | None = None  # None: the default job's 8
    parallel_steps: int = 150  # per run; preset E runs 4x as many (its steps are shorter)
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
    aug_epochs=1,
    aug_timeout=60.0,
    wide_iterations=4,
    wide_eval_every=2,
    profile_iterations=4,
    checkpoint_rounds=1,
    checkpoint_epochs=1,
    parallel_steps=20,
    timeout=60.0,
)
