"""What each section of issue 4 launches, and the markdown it makes of the results.

Sections share one Suite: the runner, the budget, the thread count that won in the techniques
section (every later case, scikit-learn included, runs with it), and the list of targets.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field

from benchmarks.budget import AUG_99, CANDIDATES, E_CONFIG, TRAIN_SIZE, WIDE, Budget
from benchmarks.hardware import count_params, training_flops
from benchmarks.harness import (
    Run,
    Runner,
    accuracy_at,
    accuracy_by,
    last_accuracy,
    steady_epoch_seconds,
    wall_at,
    wide_step_seconds,
)
from benchmarks.report import (
    fmt,
    margin_text,
    ratio,
    sklearn_target,
    table,
    target_row,
    time_target,
    verdict,
)
from benchmarks.stats import median, median_time


@dataclass
class Suite:
    """One benchmark run: launches each section's cases and renders its tables."""

    runner: Runner
    budget: Budget
    files: dict[str, str]
    physical_cores: int
    device: str = "cpu"
    threads: int | None = None
    targets: list[list] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.budget.train_size or TRAIN_SIZE

    def common(self) -> dict:
        extra = {"threads": self.threads} if self.threads else {}
        return {
            **extra,
            **({"train_size": self.budget.train_size} if self.budget.train_size else {}),
        }

    def repeat(self, jobs: list[tuple[str, dict, float]]) -> list[list[Run]]:
        """Every job `repeats` times, interleaved (a, b, c, a, b, c, ...); runs grouped by job."""
        flat = self.runner.map(jobs * self.budget.repeats)
        return [flat[i :: len(jobs)] for i in range(len(jobs))]

    def mlplab_job(
        self,
        config: dict,
        evals_per_epoch: int = 1,
        shorten: bool = True,
        timeout: float | None = None,
        **params,
    ) -> tuple:
        steps = math.ceil(self.n / config["batch_size"])
        config = {**config, "eval_every": max(steps // evals_per_epoch, 1), "device": self.device}
        if self.budget.mlplab_epochs and shorten:
            config.pop("iterations", None)
            config["epochs"] = min(config.get("epochs", 8), self.budget.mlplab_epochs)
        job = {**self.common(), "config": config, **params}
        return ("mlplab", job, timeout or self.budget.timeout)

    # -- start-up ------------------------------------------------------------------------

    def startup(self) -> str:
        (runs,) = self.repeat([("startup", {}, self.budget.timeout)])
        stages: dict[str, list[float]] = {}
        for run in runs:
            started = run.first("started")
            stages.setdefault("python start-up (to the child's first line)", []).append(
                started["wall"] if started else None
            )
            for r in run.records:
                if r.get("kind") == "startup":
                    stages.setdefault(r["stage"], []).append(r["seconds"])
        rows = [[name, fmt(median(v), 3)] for name, v in stages.items()]
        return table(["stage (fresh process)", "seconds (median)"], rows)

    # -- techniques ----------------------------------------------------------------------

    def techniques(self) -> str:
        b = self.budget
        params = {
            "steps": b.tech_steps,
            "rounds": b.tech_rounds,
            "physical_cores": self.physical_cores,
            "compile": b.compile,
            **({"train_size": b.train_size} if b.train_size else {}),
        }
        if b.compile:
            # A fresh inductor cache: the first run pays a cold compile, later ones a warm one.
            cache = tempfile.mkdtemp(prefix="mlplab-bench-inductor-")
            params["env"] = {"TORCHINDUCTOR_CACHE_DIR": cache}
        passive = {
            **{k: v for k, v in params.items() if k != "env"},
            "only_threads": True,
            "threads_label": "torch.set_num_threads, OMP_WAIT_POLICY=PASSIVE",
            "env": {"OMP_WAIT_POLICY": "PASSIVE"},
        }
        jobs = [("techniques", params, max(b.timeout, 600.0))]
        jobs += [("techniques", passive, b.timeout)] if b.passive_omp else []
        runs, *passive_runs = self.repeat(jobs)
        if b.compile:
            shutil.rmtree(cache, ignore_errors=True)
        best = [r["best"] for run in runs for r in run.records if r.get("kind") == "threads"]
        if self.threads is None:
            self.threads = int(median(best)) if best else 1
        runs = runs + [run for group in passive_runs for run in group]
        head = ["technique", "variant", "time (median)", "speed-up vs first variant", "verdict"]
        return table(head, self._technique_rows(runs)) + (
            f"\n\nThreads for every later case: {self.threads} (each techniques run keeps more "
            "threads only when they win by ≥ 1.25× within that run, under the default OpenMP "
            "policy; the median of the runs' choices is used)."
        )

    def _technique_rows(self, runs: list[Run]) -> list[list]:
        """One row per (technique, variant), medians over the runs, then the compile times
        and the GPU techniques this machine cannot measure."""
        seconds: dict[tuple[str, str], list[float]] = {}
        compile_times: list[float] = []
        for run in runs:
            for r in run.records:
                if r.get("kind") == "technique":
                    seconds.setdefault((r["technique"], r["variant"]), []).append(r["seconds"])
                    if "compile_seconds" in r and r["variant"] == "torch.compile":
                        compile_times.append(r["compile_seconds"])
        by_technique: dict[str, list[tuple[str, float]]] = {}
        for (tech, variant), values in seconds.items():
            by_technique.setdefault(tech, []).append((variant, median(values)))
        rows = [row for tech, v in by_technique.items() for row in _variant_rows(tech, v)]
        if compile_times:
            rows.append(
                [
                    "torch.compile",
                    "compile time (first run: cold cache; later: warm)",
                    ", ".join(f"{t:.1f} s" for t in compile_times),
                    "paid once per process",
                    "n/a",
                ]
            )
        elif not self.budget.compile:
            rows.append(["torch.compile", "skipped in this mode", "n/a", "n/a", "n/a"])
        for gpu in ("CUDA graphs / torch.compile(mode='reduce-overhead')", "bf16 autocast"):
            rows.append([f"on GPU: {gpu}", "not measured", "n/a: no CUDA device", "n/a", "n/a"])
        return rows

    # -- 1. throughput -------------------------------------------------------------------

    def throughput(self) -> tuple[str, list[Run]]:
        b = self.budget
        tutorial = (
            "tutorial",
            {
                **self.common(),
                "epochs": b.tutorial_epochs,
                "batch_size": 100,
                "lr": 0.1,
                "seed": 0,
                "device": self.device,
            },
            b.timeout,
        )
        config = {**E_CONFIG, "epochs": b.throughput_epochs}
        mlplab = self.mlplab_job(config, shorten=False)
        autograd = self.mlplab_job({**config, "engine": "autograd"}, shorten=False)
        tutorial_runs, mlplab_runs, autograd_runs = self.repeat([tutorial, mlplab, autograd])
        rows, stats = [], []
        for name, runs in (
            ("tutorial loop (DataLoader, per-sample ToTensor)", tutorial_runs),
            ("mlplab.train (engine auto: fast)", mlplab_runs),
            ("mlplab.train, engine autograd (nn.Module and autograd)", autograd_runs),
        ):
            s_epoch = median(steady_epoch_seconds(run, b.throughput_epochs) for run in runs)
            acc = median(accuracy_at(run, b.throughput_epochs) for run in runs)
            wall = median(wall_at(run, b.throughput_epochs) for run in runs)
            rss = median(run.peak_rss_mb for run in runs)
            sps = self.n / s_epoch if s_epoch else None
            stats.append((sps, acc))
            rows.append(
                [name, fmt(s_epoch, 2), fmt(sps, 0), fmt(acc, 2), fmt(wall, 1), fmt(rss, 0)]
            )
        (t_sps, t_acc), (m_sps, m_acc), (f_sps, _) = stats
        speed = m_sps / t_sps if m_sps and t_sps else None
        for row, (sps, _) in zip(rows, stats, strict=True):
            row.insert(3, fmt(sps / t_sps if sps and t_sps else None, 1, "×"))
        equal = t_acc is not None and m_acc is not None and abs(m_acc - t_acc) <= 0.3
        if speed is not None:
            self.targets.append(
                target_row(
                    "Throughput, model E batch 100",
                    "≥ 8× tutorial samples/s, accuracy within 0.3 points",
                    f"{speed:.1f}× ({m_acc:.2f}% vs {t_acc:.2f}%)",
                    speed >= 8 and equal,
                    f"{speed / 8:.2f}× of the goal; accuracy gap {m_acc - t_acc:+.2f} points",
                )
            )
        head = [
            "loop (preset E, SGD lr 0.1, batch 100)",
            "s/epoch (median of epochs 2+, evals excluded)",
            "samples/s",
            "speed ratio",
            f"test accuracy after {b.throughput_epochs} epochs (%)",
            f"wall to epoch {b.throughput_epochs} incl. start-up (s)",
            "peak RSS (MiB)",
        ]
        return table(head, rows), tutorial_runs

    # -- 2. time to accuracy -------------------------------------------------------------

    def recipe_search(self) -> tuple[str, tuple, list[Run]]:
        """Each candidate once; the winner is then run `repeats` fresh times.

        With a single candidate nothing was selected, so its run counts as the first repeat.
        """
        candidates = CANDIDATES[: self.budget.candidates]
        jobs = [self.mlplab_job(cfg, evals) for _, cfg, evals in candidates]
        runs = self.runner.map(jobs)
        rows = []
        for (label, _, evals), run in zip(candidates, runs, strict=True):
            t97, t98 = (run.time_to(t) if run.ok else None for t in (97, 98))
            t97, t98 = (math.inf if t is None and run.ok else t for t in (t97, t98))
            rows.append([label, evals, fmt(t97, 2), fmt(t98, 2)])
            rows[-1].append(fmt(last_accuracy(run), 2))
        key = [(run.time_to(98) or math.inf, run.time_to(97) or math.inf) for run in runs]
        best = min(range(len(runs)), key=key.__getitem__)
        head = [
            "mlplab recipe (one run each)",
            "evals/epoch",
            "to 97% (s)",
            "to 98% (s)",
            "final %",
        ]
        return table(head, rows), candidates[best], runs if len(runs) == 1 else []

    def time_to_accuracy(
        self, winner: tuple, search_runs: list[Run], tutorial_runs: list[Run]
    ) -> str:
        b = self.budget
        label, config, evals = winner
        sk = {**self.common(), "files": self.files, "seed": 0}
        jobs = [
            self.mlplab_job(config, evals),
            self.mlplab_job({**config, "engine": "autograd"}, evals),
            ("sklearn", {**sk, "hidden": [100], "epochs": b.sklearn_small_epochs}, b.timeout),
            (
                "sklearn",
                {**sk, "hidden": [512, 512], "epochs": b.sklearn_large_epochs, "stop_at": 98.0},
                b.sklearn_large_timeout,
            ),
        ]
        if search_runs and b.repeats == 1:
            groups = [search_runs, *self.repeat(jobs[1:])]
        else:
            groups = self.repeat(jobs)
        names = [
            f"mlplab.train, fastest recipe: {label}",
            "the same recipe, engine autograd (nn.Module and autograd)",
            "scikit-learn MLPClassifier((100,)), defaults",
            "scikit-learn MLPClassifier((512, 512)), defaults, stopped at 98%",
        ]
        names.append(f"tutorial loop (preset E, SGD 0.1, {b.tutorial_epochs} epochs)")
        groups.append(tutorial_runs)
        ref = {t: median_time(run.time_to(t) for run in groups[0]) for t in (97, 98)}
        rows = [_time_row(name, runs, ref) for name, runs in zip(names, groups, strict=True)]
        self.targets.append(time_target("Time to 98%", "≤ 5 s from process start", ref[98], 5.0))
        sk98 = median_time(run.time_to(98) for run in groups[3])
        self.targets.append(sklearn_target(sk98, ref[98], b.sklearn_large_timeout))
        head = [
            "case (each its own process)",
            "to 97% (s)",
            "to 98% (s)",
            "× mlplab to 97%",
            "× mlplab to 98%",
            "runs reaching 98%",
            "final test accuracy (%)",
            "epochs run",
            "peak RSS (MiB)",
        ]
        return table(head, rows)

    def time_to_99(self) -> str:
        b = self.budget
        # time to 99% is the question, so a run ends at its first evaluation past 99%
        job = self.mlplab_job(
            {**AUG_99, "epochs": b.aug_epochs}, timeout=b.aug_timeout, stop_at=99.0
        )
        (runs,) = self.repeat([job])
        t99 = median_time(run.time_to(99) for run in runs)
        best = median(run.best_accuracy for run in runs)
        final = median(last_accuracy(run) for run in runs)
        at120 = median(accuracy_by(run, 120.0) for run in runs)
        self.targets.append(
            target_row(
                "Time to 99% (augmentation allowed)",
                "≤ 120 s from process start",
                f"{fmt(t99, 1)} s" if t99 is not None and math.isfinite(t99) else "not reached",
                t99 is not None and t99 <= 120,
                margin_text(t99, 120.0, best, 99.0),
            )
        )
        head = [
            "case",
            "to 99% (s)",
            "runs reaching 99%",
            "best test accuracy (%)",
            "final (%)",
            "best by 120 s (%)",
            "peak RSS (MiB)",
        ]
        row = [
            f"mlplab.train {AUG_99['model']}, Adam {AUG_99['lr']} one-cycle, batch "
            f"{AUG_99['batch_size']}, augment affine (±10°, ±10% scale, ±2 px, on the "
            f"device), dataset mean/std, {b.aug_epochs} epochs",
            fmt(t99, 1),
            f"{sum(run.time_to(99) is not None for run in runs)}/{len(runs)}",
            fmt(best, 2),
            fmt(final, 2),
            fmt(at120, 2),
            fmt(median(run.peak_rss_mb for run in runs), 0),
        ]
        return table(head, [row])

    # -- crash safety --------------------------------------------------------------------

    def checkpoints(self) -> str:
        """The default job with a state at every evaluation, at the end only, and in memory."""
        b = self.budget
        config = {"device": self.device}
        if b.checkpoint_epochs:
            config["epochs"] = b.checkpoint_epochs
        params = {**self.common(), "config": config, "rounds": b.checkpoint_rounds}
        runs = self.runner.map([("checkpoints", params, b.timeout * 4)])
        records = [r for run in runs for r in run.records if r.get("kind") == "checkpoints"]
        modes = {m: [r for r in records if r["mode"] == m] for m in ("memory", "end only")}
        every = [r for r in records if r["mode"] == "every evaluation"]
        base = median(r["seconds"] for r in modes["memory"])
        share = median(r["save_seconds"] / r["seconds"] * 100 for r in every)
        self.targets.append(
            target_row(
                "Checkpoint overhead (a state at every evaluation)",
                "≤ 3% of the default job's training time",
                f"{fmt(share, 1)}% (its saves, timed inside the run)",
                share is not None and share <= 3.0,
                "—"
                if share is None
                else f"{abs(3.0 - share):.1f} points " + ("under" if share <= 3.0 else "over"),
            )
        )
        rows = []
        for mode, found in (*modes.items(), ("every evaluation", every)):
            seconds = median(r["seconds"] for r in found)
            rows.append(
                [
                    mode,
                    fmt(seconds, 2),
                    fmt((seconds / base - 1) * 100 if base and seconds else None, 1),
                    fmt(median(r["saves"] for r in found), 0),
                    fmt(median(r["save_seconds"] * 1000 for r in found), 0),
                    fmt(median(r["save_seconds"] / r["seconds"] * 100 for r in found), 2),
                ]
            )
        head = [
            "default job",
            "training s (median)",
            "vs in memory (%)",
            "states saved",
            "time saving (ms)",
            "of the run's training time (%)",
        ]
        size = median(r["state_bytes"] for r in every if r["state_bytes"])
        note = f"\n\nOne state of the default model: {fmt(size / 2**20 if size else None, 1)} MiB."
        return table(head, rows) + note

    # -- data parallelism ----------------------------------------------------------------

    def parallel(self) -> str:
        """1 process x 2 threads against 2 torchrun ranks x 1 thread, and what the
        all-reduce would cost on GPU interconnects."""
        b = self.budget
        common = {k: v for k, v in self.common().items() if k != "threads"}
        rows = []
        for label, config, more in (
            ("quickstart-512 (the default job), Adam, batch 512", {"batch_size": 512}, 1),
            ("preset E, SGD, batch 100", E_CONFIG, 4),  # shorter steps: more of them
        ):
            steps = b.parallel_steps * more
            config = {**config, "iterations": steps, "eval_every": steps, "device": self.device}
            one = ("parallel", {**common, "config": {**config, "threads": 2}}, b.timeout)
            two = (
                "parallel",
                {**common, "config": {**config, "threads": 1}, "nproc": 2},
                b.timeout,
            )
            single, ranks = self.repeat([one, two])
            rows.append(_parallel_row(label, single, ranks))
        head = [
            "model",
            "1 process x 2 threads (samples/s)",
            "2 ranks x 1 thread (samples/s)",
            "2 ranks / 1 process",
            "share of a 2-rank step in all-reduce",
        ]
        return table(head, rows) + "\n\n" + _interconnect_table()

    # -- 3. hardware ---------------------------------------------------------------------

    def hardware(self) -> tuple[str, str]:
        b = self.budget
        counts = sorted({1, self.physical_cores}) if b.all_thread_counts else [self.threads or 1]
        matmul = (
            "matmul",
            {
                "sizes": list(b.matmul_sizes),
                "repeats": b.matmul_repeats,
                "thread_counts": counts,
                "device": self.device,
            },
            b.timeout,
        )
        wide, labels = self._wide_jobs(counts)
        if len(wide) > len(counts):  # the most threads again, under OMP_WAIT_POLICY=PASSIVE
            counts = [*counts, counts[-1]]
        matmul_runs, *wide_runs = self.repeat([matmul, *wide])
        matmul_md, peaks = _matmul_table(matmul_runs, counts)
        return matmul_md, self._wide_table(counts, labels, wide_runs, peaks)

    def _wide_jobs(self, counts: list[int]) -> tuple[list[tuple], list[str]]:
        """The wide MLP at each thread count, and at the most again under
        OMP_WAIT_POLICY=PASSIVE; each job's label for the threads column."""
        b = self.budget
        wide_config = dict(
            model=WIDE,
            optimizer="adam",
            lr=1e-3,
            batch_size=512,
            schedule="constant",
            iterations=b.wide_iterations,
            eval_every=b.wide_eval_every,
            normalization="tutorial",
            device=self.device,
        )
        wide = [
            ("mlplab", {**self.common(), "threads": t, "config": wide_config}, b.timeout)
            for t in counts
        ]
        labels = [f"{t}" for t in counts]
        if b.passive_omp and counts[-1] > 1:
            passive = {"OMP_WAIT_POLICY": "PASSIVE"}
            wide.append((wide[-1][0], {**wide[-1][1], "env": passive}, b.timeout))
            labels.append(f"{counts[-1]}, OMP_WAIT_POLICY=PASSIVE")
        return wide, labels

    def _wide_table(
        self, counts: list[int], labels: list[str], wide_runs: list[list[Run]], peaks: dict
    ) -> str:
        """What each wide run gets of the matmul peak; the best share goes on the Targets."""
        b = self.budget
        machine_peak = max(peaks.values())
        params = count_params([int(s) for s in WIDE.split(":")[0].split("-")])
        rows, best = [], None
        for threads, label, runs in zip(counts, labels, wide_runs, strict=True):
            per_step = median(wide_step_seconds(run, b.wide_eval_every) for run in runs)
            achieved = training_flops(params, 512) / per_step / 1e9 if per_step else None
            frac = achieved / machine_peak if achieved else None
            if frac is not None and (best is None or frac > best[0]):
                best = (frac, achieved, label)
            rows.append(
                [
                    f"mlplab.train {WIDE}, batch 512, Adam ({params:,} parameters)",
                    label,
                    fmt(per_step * 1000 if per_step else None, 1),
                    fmt(512 / per_step if per_step else None, 0),
                    fmt(achieved, 1),
                    fmt(100 * achieved / peaks[threads] if achieved else None, 1, "%"),
                    fmt(100 * frac if frac else None, 1, "%"),
                    fmt(median(run.peak_rss_mb for run in runs), 0),
                ]
            )
        if best is not None:
            frac, achieved, threads = best
            self.targets.append(
                target_row(
                    "Hardware efficiency, wide MLP batch 512",
                    "≥ 60% of measured matmul peak",
                    f"{100 * frac:.1f}% ({achieved:.1f} of {machine_peak:.1f} GFLOP/s, "
                    f"threads: {threads})",
                    frac >= 0.6,
                    f"{100 * (frac - 0.6):+.1f} points",
                )
            )
        return table(WIDE_HEAD, rows)

    # -- profiles ------------------------------------------------------------------------

    def profiles(self, winner: tuple) -> list[tuple[str, float, str]]:
        b = self.budget
        label, config, _ = winner
        steps = math.ceil(self.n / config["batch_size"])
        recipe = {**config, "iterations": min(b.profile_iterations, steps), "device": self.device}
        wide = dict(
            model=WIDE,
            batch_size=512,
            iterations=max(b.profile_iterations // 6, 2),
            device=self.device,
        )
        e = {
            **E_CONFIG,
            "iterations": min(b.profile_iterations * 3, math.ceil(self.n / 100)),
            "device": self.device,
        }
        runs = [
            {"label": "mlplab.train, preset E, SGD, batch 100 (throughput)", "config": e},
            {"label": f"mlplab.train, fastest 98% recipe ({label})", "config": recipe},
            {"label": f"mlplab.train, {WIDE}, batch 512", "config": wide},
        ]
        params = {**self.common(), "runs": runs, "rows": 12}
        (run,) = self.runner.map([("profile", params, max(b.timeout, 300.0))])
        return [
            (r["label"], r["seconds"], r["table"])
            for r in run.records
            if r.get("kind") == "profile"
        ]


def _matmul_table(runs: list[Run], counts: list[int]) -> tuple[str, dict[int, float]]:
    """GFLOP/s by thread count and size, and the peak (best size) at each thread count."""
    gflops: dict[tuple[int, int], list[float]] = {}
    for run in runs:
        for r in run.records:
            if r.get("kind") == "matmul":
                gflops.setdefault((r["threads"], r["size"]), []).append(r["gflops"])
    peaks = {t: max(median(v) for (tt, _), v in gflops.items() if tt == t) for t in counts}
    rows = [[t, n, fmt(median(v), 1)] for (t, n), v in sorted(gflops.items())]
    text = table(["threads", "n (n×n @ n×n, float32)", "GFLOP/s (median)"], rows)
    text += "\n\nPeak (best size): " + ", ".join(
        f"{fmt(p, 1)} GFLOP/s at {t} thread(s)" for t, p in peaks.items()
    )
    return text, peaks


WIDE_HEAD = [
    "run",
    "threads",
    "ms/step (median, evals excluded)",
    "samples/s",
    "GFLOP/s (6 × params × samples)",
    "of matmul peak at these threads",
    "of machine peak",
    "peak RSS (MiB)",
]


def _variant_rows(tech: str, variants: list[tuple[str, float]]) -> list[list]:
    """A technique's variants: each against the first, and against the fastest."""
    fastest = min(v[1] for v in variants)
    unit = "s per eval" if tech.startswith("evaluation") else "s per 60k samples"
    return [
        [
            tech,
            variant,
            f"{fmt(value, 3)} {unit}",
            ratio(variants[0][1], value, 2),
            verdict(value, fastest),
        ]
        for variant, value in variants
    ]


def _time_row(name: str, runs: list[Run], ref: dict[int, float | None]) -> list:
    """A case's medians to 97% and 98%, against mlplab's (`ref`), and how its runs ended."""
    t97 = median_time(run.time_to(97) for run in runs)
    t98 = median_time(run.time_to(98) for run in runs)
    reached = sum(run.time_to(98) is not None for run in runs)
    return [
        name,
        fmt(t97, 2),
        fmt(t98, 2),
        ratio(t97, ref[97]) or "n/a (no reference)",
        ratio(t98, ref[98]) or "n/a (no reference)",
        f"{reached}/{len(runs)}",
        fmt(median(last_accuracy(run) for run in runs), 2),
        fmt(median(run.evals()[-1]["epoch"] for run in runs if run.evals()), 2),
        fmt(median(run.peak_rss_mb for run in runs), 0),
    ]


def _parallel_row(label: str, single: list[Run], ranks: list[Run]) -> list:
    def med(runs, key):
        return median(r[key] for run in runs for r in run.records if r.get("kind") == "parallel")

    one, two = med(single, "samples_per_s"), med(ranks, "samples_per_s")
    share = med(ranks, "allreduce_share")
    return [
        label,
        fmt(one, 0),
        fmt(two, 0),
        fmt(two / one if one and two else None, 2),
        "—" if share is None else f"{share * 100:.1f}%",
    ]


# What one data-parallel step's all-reduce would cost on GPUs: arithmetic, not a measurement.
# A ring all-reduce moves 2 (N - 1) / N of the gradient bytes in and out of each GPU; on 2
# GPUs, the whole gradient once each way.
LINKS = {  # GB/s one way, of the kind vendors quote
    "NVLink 4 (H100 SXM, 450 GB/s each way)": 450e9,
    "PCIe 4.0 x16 (~25 GB/s achieved)": 25e9,
    "PCIe 5.0 x16 (~50 GB/s achieved)": 50e9,
}
H100_FP32 = 67e12  # FLOP/s: plain float32, what mlplab's matmuls use (TF32 off by default)


def _interconnect_table() -> str:
    from mlplab.nn.model import build_model, count_parameters

    rows = []
    for name, spec, batch in (
        ("quickstart-512", "quickstart-512", 512),
        ("preset E", "e", 100),
        ("wide MLP", WIDE, 512),
    ):
        params = count_parameters(build_model(spec))
        grad = params * 4  # float32 bytes
        compute = 6 * params * batch / H100_FP32  # forward + backward, the whole batch
        rows.append(
            [
                name,
                f"{params:,}",
                f"{grad / 1e6:.2f}",
                *(f"{grad / bw * 1e6:.1f}" for bw in LINKS.values()),
                f"{compute * 1e6:.1f}",
            ]
        )
    head = ["model", "parameters", "gradient (MB)", *(f"all-reduce µs, {k}" for k in LINKS)]
    head.append("whole step's FLOPs at H100 fp32 peak (µs)")
    return (
        table(head, rows)
        + "\n\nOn 2 GPUs each computes half the batch: the step saves at most half of the last "
        "column, and pays the all-reduce (plus NCCL's latency, tens of µs). Kernel launches "
        "(some 20 per step, a few µs each) already floor a step near 100 µs. So data "
        "parallelism pays for these MLPs only with far larger batches or models."
    )
