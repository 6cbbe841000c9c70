"""One command that checks and measures mlplab on a CUDA device (issue 31).

Claim: on a lent H100 or H200, from a fresh checkout, within about 8 minutes (the budgets
in STEPS add up to 470 s), this tells whether mlplab is right on CUDA and how fast it is. Each
step runs in child processes with a time limit, in order:
  0. setup: the wheels and MNIST carried in .gpu/ (made here by --prepare) installed for the
     machine's own Python and its CUDA torch, mlplab beside them without its dependencies;
     what is still missing, in one line;
  1. the device's facts: name, memory, torch and CUDA versions, TF32 and bf16 support;
  2. the CUDA tests, pytest tests/cuda (on the CPU in --smoke mode, where they can run);
  3. the GPU speed table, python -m benchmarks.gpu;
  4. the recipe mnist-plain, its accuracy and time;
  5. one lesson executed on the device (tutorials/03_seven_steps.py).
Everything goes to one Markdown file, $OUT/gpu-check.md when OUT is set, else gpu-check.md
here, rewritten atomically after each step, so that a kill keeps the steps done. A step that
fails or runs out of time is recorded and the later steps still run; the exit code is 0 only
when every step passed. This module holds the steps' list and the command line: the runner is
gpu_runner.py, step 0 gpu_setup.py, steps 1 to 5 gpu_steps.py, --prepare gpu_prepare.py.

    python -m benchmarks.gpu_check                       # on the GPU machine (docs/development.md)
    python -m benchmarks.gpu_check --device cpu --smoke  # the same steps on a CPU, 1-3 min
    python -m benchmarks.gpu_check --prepare             # here, online: fill .gpu/ to carry
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.gpu import DEVICES, OneLineParser
from benchmarks.gpu_prepare import prepare
from benchmarks.gpu_runner import FORCED, Step, check
from benchmarks.gpu_setup import children_env, setup
from benchmarks.gpu_steps import child_facts, child_lesson, cuda_tests, facts, lesson, recipe, speed

# The budgets on a GPU add up to 470 s, so that a second run fits in a 15-minute lending;
# the smoke budgets are ceilings for a 2-core machine shared with others: idle, the whole
# smoke run took 60 s; at a load average of 4 to 5, 157 s (2026-12-06).
STEPS = {
    "setup": Step("Setup", 50, 45, setup),
    "facts": Step("The device's facts", 15, 30, facts),
    "tests": Step("The CUDA tests (pytest tests/cuda)", 130, 150, cuda_tests),
    "speed": Step("The GPU speed table (python -m benchmarks.gpu)", 160, 150, speed),
    "recipe": Step("The recipe mnist-plain", 70, 60, recipe),
    "lesson": Step("A lesson executed on the device", 45, 60, lesson),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--smoke", action="store_true", help="short budgets, for a CPU")
    parser.add_argument("--steps", default=",".join(STEPS), help="a comma-separated subset")
    parser.add_argument("--force", action="append", default=[], metavar="STEP=fail|timeout")
    parser.add_argument("--prepare", action="store_true", help="fill .gpu/ here, online")
    parser.add_argument("--child", choices=("facts", "lesson"), help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not DEVICES.fullmatch(args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    args.steps = args.steps.split(",")
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"--steps: unknown {unknown[0]!r}; the steps are {', '.join(STEPS)}")
    forced = [f.partition("=") for f in args.force]
    bad = [f"{s}={k}" for s, _, k in forced if s not in STEPS or k not in FORCED]
    if bad:
        parser.error(f"--force: {bad[0]!r} is not STEP=fail or STEP=timeout")
    args.force = {s: k for s, _, k in forced}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "facts":
        child_facts(args.device)
        return 0
    if args.child == "lesson":
        child_lesson(args.path)
        return 0
    return prepare() if args.prepare else check(args, STEPS, children_env())


if __name__ == "__main__":
    sys.exit(main())
