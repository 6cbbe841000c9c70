"""Each engine takes the same steps on CUDA as on the CPU, in float64.

Two copies of one float64 network, one per device, take the same six batches (the last one
short, as an epoch's last batch is). cuBLAS and the CPU's BLAS sum in different orders, so
the two agree to rounding, not bit for bit: every loss, every logit and, after the last step,
every weight agree to TOLERANCE. A kernel that ran in float32 (or TF32) on one side misses it
by several orders of magnitude, and so does any step that differs.
"""

from __future__ import annotations

import pytest
import torch
from cuda_support import DEVICE, needs_device

from mlplab.config import TrainConfig
from mlplab.nn.model import build_model
from mlplab.training.engines import make_engine
from mlplab.training.optim import Schedule

pytestmark = needs_device

TOLERANCE = dict(rtol=1e-9, atol=1e-10)  # float64 rounding is ~1e-16; float32 would be ~1e-6
STEPS, BATCH = 6, 16

CASES = {
    "autograd": dict(model="784-32-16-10:relu", optimizer="adam", lr=1e-2, weight_decay=0.01),
    "fast": dict(model="784-32-16-10:tanh", optimizer="adam", lr=1e-2, label_smoothing=0.1),
    "scratch": dict(model="784-32-10:sigmoid", optimizer="sgd", lr=0.5),
}


def batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for i in range(STEPS):
        n = 5 if i == STEPS - 1 else BATCH
        yield torch.randn(n, 784, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,))


def twins(config: TrainConfig):
    """The same float64 network's engine on the CPU and on the device."""
    torch.manual_seed(0)
    model = build_model(config.model_spec).double()
    twin = build_model(config.model_spec).double()
    twin.load_state_dict(model.state_dict())
    start = {k: v.clone() for k, v in model.state_dict().items()}
    return make_engine(config, model), make_engine(config, twin.to(DEVICE)), start


@pytest.mark.parametrize("engine", CASES)
def test_every_engine_steps_alike_on_cuda_and_cpu_in_float64(engine):
    config = TrainConfig(engine=engine, batch_size=BATCH, schedule="onecycle", **CASES[engine])
    on_cpu, on_device, start = twins(config)
    schedule = Schedule(config.schedule, config.lr, STEPS)
    for i, (x, y) in enumerate(batches()):
        loss_a, logits_a = on_cpu.step(x, y, schedule(i))
        loss_b, logits_b = on_device.step(x.to(DEVICE), y.to(DEVICE), schedule(i))
        assert logits_b.device.type == DEVICE.type and logits_b.dtype == torch.float64
        torch.testing.assert_close(loss_b.cpu(), loss_a, **TOLERANCE)
        torch.testing.assert_close(logits_b.cpu(), logits_a, **TOLERANCE)
    ours = on_cpu.module().state_dict()
    theirs = on_device.module().state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert not torch.equal(ours[name], start[name])  # the steps moved it
        torch.testing.assert_close(theirs[name].cpu(), ours[name], **TOLERANCE)
