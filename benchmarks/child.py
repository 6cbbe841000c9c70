"""One timed case in its own process: python -m benchmarks.child CASE PARAMS_JSON LAUNCH_TIME.

LAUNCH_TIME is the parent's time.time() just before it started this process, so the `wall`
of every record includes interpreter start-up and every import. Heavy imports happen in the
case's module, after the `started` record, so that the start-up breakdown can see them.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time

CASES = {
    "tutorial": "benchmarks.tutorial",
    "mlplab": "benchmarks.trainer",
    "sklearn": "benchmarks.scikit",
    "matmul": "benchmarks.hardware",
    "techniques": "benchmarks.techniques",
    "startup": "benchmarks.startup",
    "profile": "benchmarks.profiling",
    "checkpoints": "benchmarks.checkpoints",
    "parallel": "benchmarks.parallel",
}


def peak_rss_mb() -> float:
    """Peak resident set of this process in MiB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec,
    so a child of a parent that imported torch would start at the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    case, params, t0 = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])

    # Under torchrun every rank shares one stdout; rank 0 alone reports, so lines never mix.
    speaks = os.environ.get("RANK", "0") == "0"

    def emit(record: dict) -> None:
        record = {**record, "wall": time.time() - t0, "rss_mb": peak_rss_mb()}
        if speaks:
            print("@bench " + json.dumps(record), flush=True)

    emit({"kind": "started"})
    threads = params.pop("threads", None)
    os.environ.update(params.pop("env", {}))  # before torch is imported
    module = importlib.import_module(CASES[case])
    if threads and case == "sklearn":
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)  # numpy's BLAS gets the thread count torch gets
    elif threads:
        import torch

        torch.set_num_threads(threads)
    emit({"kind": "imported"})
    module.run(params, emit)
    emit({"kind": "finished"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
