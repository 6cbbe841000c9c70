"""bf16 autocast keeps a short run's accuracy within MARGIN of float32.

mlplab's TrainConfig offers no mixed precision (no precision or amp field), so this test
wraps the model's forward and loss in torch.autocast directly, in a plain loop over mlplab's
own pieces (the model, the device-resident batches, mlplab.optim's Adam), and trains the
same network from the same init on the same batches twice: in float32, and in bf16 autocast.
Both are scored in float32 on the whole test split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from cuda_support import DEVICE, HAS_CUDA, needs_device

from conftest import head
from mlplab.data.sampler import BatchSampler
from mlplab.nn.model import build_model
from mlplab.nn.normalization import Normalization
from mlplab.training.evaluate import evaluate
from mlplab.training.optim import Schedule, make_optimizer

pytestmark = needs_device

MARGIN = 0.5  # points of test accuracy, bf16 autocast against float32
STEPS = 600 if HAS_CUDA else 150  # a CPU without bf16 units emulates it, slowly
NORM = Normalization(0.1307, 0.3081)


def short_run(data, bf16: bool) -> float:
    """Test accuracy after STEPS Adam steps (one-cycle) of batch 256, in bf16 autocast or
    float32."""
    torch.manual_seed(0)
    model = build_model("784-256-256-10:relu").to(DEVICE)
    params = list(model.parameters())
    optimizer = make_optimizer("adam", params)
    train = data.train.to(DEVICE)
    sampler = BatchSampler(len(train), 256, seed=0, device=DEVICE)
    schedule = Schedule("onecycle", 4e-3, STEPS)
    for step in range(STEPS):
        x, y = train.batch(sampler.next(), NORM)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # (B, 784) -> (B, 10)
            loss = F.cross_entropy(logits, y)
        assert logits.dtype == (torch.bfloat16 if bf16 else torch.float32)
        for p in params:
            p.grad = None
        loss.backward()
        optimizer.step([p.grad for p in params], schedule(step))
    assert all(p.dtype == torch.float32 for p in params)  # the weights stay float32
    return evaluate(model, data.test.to(DEVICE), NORM).accuracy


def test_bf16_autocast_keeps_accuracy_within_the_margin_of_float32(mnist):
    if HAS_CUDA:
        assert torch.cuda.is_bf16_supported()
    data = head(mnist, 20_000)
    full, half = short_run(data, bf16=False), short_run(data, bf16=True)
    assert full > (96.0 if HAS_CUDA else 90.0), full
    assert abs(half - full) <= MARGIN, (half, full)
