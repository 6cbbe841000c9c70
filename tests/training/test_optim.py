"""mlplab.optim against torch.optim, step for step, and the schedules against torch's."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.training.optim import SGD, Adam, Schedule, make_optimizer


def _tensors(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((7, 5), (5,), (3,))]


def _run_both(ours_factory, theirs_factory, lrs=(0.1, 0.05, 0.2, 0.01, 0.1)):
    """The same gradients and lrs through both; returns (ours, theirs) parameters."""
    ours_params = _tensors(0)
    theirs_params = [p.clone().requires_grad_() for p in ours_params]
    ours = ours_factory(ours_params)
    theirs = theirs_factory(theirs_params)
    for step, lr in enumerate(lrs):
        grads = _tensors(100 + step)
        ours.step(grads, lr)
        for p, g in zip(theirs_params, grads, strict=True):
            p.grad = g.clone()
        for group in theirs.param_groups:
            group["lr"] = lr
        theirs.step()
    return ours_params, theirs_params


SGD_CASES = {
    "plain": {},
    "momentum": dict(momentum=0.9),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "weight-decay": dict(momentum=0.5, weight_decay=0.01),
}


@pytest.mark.parametrize("kw", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_matches_torch_optim(kw):
    ours, theirs = _run_both(lambda p: SGD(p, **kw), lambda p: torch.optim.SGD(p, lr=1.0, **kw))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
@pytest.mark.parametrize(
    "decoupled, weight_decay",
    [(False, 0.0), (False, 0.1), (True, 0.1)],
    ids=["adam", "adam-l2", "adamw"],
)
def test_adam_and_adamw_match_torch_optim(fused, decoupled, weight_decay):
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours, theirs = _run_both(
        lambda p: Adam(p, weight_decay=weight_decay, decoupled=decoupled, fused=fused),
        lambda p: cls(p, lr=1.0, weight_decay=weight_decay),
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-12)


def test_adam_uses_the_fused_kernel_on_the_cpu():
    assert Adam([torch.zeros(3)]).fused
    assert not Adam([torch.zeros(3)], fused=False).fused


def test_make_optimizer_takes_numbers():
    params = [torch.zeros(3)]
    sgd = make_optimizer("sgd", params, momentum=0.9, nesterov=True)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9 and sgd.nesterov
    adamw = make_optimizer("adamw", params, weight_decay=0.05)
    assert isinstance(adamw, Adam) and adamw.decoupled and adamw.weight_decay == 0.05
    adam = make_optimizer("adam", params)
    assert isinstance(adam, Adam) and not adam.decoupled
    with pytest.raises(ConfigError, match="^optimizer: must be one of sgd, adam, adamw"):
        make_optimizer("lion", params)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: Adam(p, weight_decay=1e-2),
        lambda p: Adam(p, weight_decay=1e-2, decoupled=True, fused=False),
    ],
    ids=["sgd-nesterov", "adam-fused", "adamw-foreach"],
)
def test_optimizer_state_round_trip_continues_exactly(make):
    """Steps 1-3, state saved; a fresh optimizer loads it and takes steps 4-6: the same
    parameters as six uninterrupted steps."""
    g = torch.Generator().manual_seed(0)
    start = [
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(3, generator=g, dtype=torch.float64),
    ]
    grads = [[torch.randn_like(p) for p in start] for _ in range(6)]
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1, 0.3]

    straight = [p.clone() for p in start]
    opt = make(straight)
    for gs, lr in zip(grads, lrs, strict=True):
        opt.step(gs, lr)

    first = [p.clone() for p in start]
    opt = make(first)
    for gs, lr in zip(grads[:3], lrs[:3], strict=True):
        opt.step(gs, lr)
    state = opt.state_dict()
    resumed = [p.clone() for p in first]
    opt = make(resumed)
    opt.load_state_dict(state)
    for gs, lr in zip(grads[3:], lrs[3:], strict=True):
        opt.step(gs, lr)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_optimizer_state_for_another_model_is_refused():
    state = Adam([torch.zeros(3)]).state_dict()
    with pytest.raises(ConfigError, match=r"^optimizer: the saved Adam m shapes \[\(3,\)\]"):
        Adam([torch.zeros(4)]).load_state_dict(state)


def _torch_lrs(make_schedule, total: int, lr: float) -> list[float]:
    """The lr torch's scheduler gives each of `total` steps."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = make_schedule(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return lrs


@pytest.mark.parametrize("total", [2, 7, 20, 937])
def test_onecycle_is_torchs_onecycle(total):
    schedule = Schedule("onecycle", 0.01, total)
    theirs = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.01, total_steps=total, cycle_momentum=False
        ),
        total,
        0.01,
    )
    ours = [schedule(it) for it in range(total)]
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-18)


def test_step_and_cosine_schedules_are_torchs_lambda_schedules():
    total = 20
    step = Schedule("step", 0.1, total, step_size=6, gamma=0.5)
    theirs = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=6, gamma=0.5), total, 0.1
    )
    assert [step(it) for it in range(total)] == pytest.approx(theirs, rel=1e-12)
    cosine = Schedule("cosine", 0.1, total)
    theirs = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total, 0.1
    )
    assert [cosine(it) for it in range(total)] == pytest.approx(theirs, rel=1e-9, abs=1e-15)
    assert {Schedule("constant", 0.3, 9)(it) for it in range(9)} == {0.3}


def test_training_never_imports_torch_dynamo():
    """torch.optim's first optimizer imports torch._dynamo (seconds); training must not."""
    code = (
        "import sys, torch\n"
        "from mlplab.config import TrainConfig\n"
        "from mlplab.data.dataset import Dataset, Split\n"
        "from mlplab.training.trainer import train\n"
        "x = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)\n"
        "y = torch.arange(64) % 10\n"
        "data = Dataset('mnist', tuple('0123456789'), Split(x, y), Split(x, y), {})\n"
        "for engine in ('fast', 'autograd', 'scratch'):\n"
        "    opt = 'sgd' if engine == 'scratch' else 'adam'\n"
        "    config = TrainConfig(preset='c', engine=engine, optimizer=opt, iterations=3,\n"
        "                         batch_size=32, device='cpu')\n"
        "    train(config, data)\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
