"""Where the seconds before the first training step go, in a fresh process.

The imports are inside run() on purpose: timing them is the point of this module.
"""

from __future__ import annotations

import time


def run(params: dict, emit) -> None:
    """Child entry: one `startup` record per stage, with its own seconds."""
    clock = time.perf_counter

    def stage(name: str, fn):
        start = clock()
        value = fn()
        emit({"kind": "startup", "stage": name, "seconds": clock() - start})
        return value

    torch = stage("import torch", lambda: __import__("torch"))
    mlplab = stage("import mlplab", lambda: __import__("mlplab"))
    data = stage("load MNIST (IDX -> uint8 tensors)", lambda: mlplab.load_dataset(download=False))
    stage(
        "dataset mean/std computed (mlplab uses the published values instead)",
        lambda: __import__("mlplab.nn.normalization", fromlist=["value_stats"]).value_stats(
            data.train.x
        ),
    )
    model = stage("build model (quickstart-512)", lambda: mlplab.build_model("quickstart-512"))
    stage(
        "mlplab.optim.Adam, mlplab's optimizer",
        lambda: __import__("mlplab.training.optim", fromlist=["Adam"]).Adam(
            list(model.parameters())
        ),
    )
    stage(
        "first torch.optim optimizer (imports torch._dynamo; mlplab makes none)",
        lambda: torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    stage("a second torch.optim optimizer", lambda: torch.optim.Adam(model.parameters(), lr=1e-3))
