"""Max-norm, the weight average (ema) and mixup: what each does to a step, the fast engine
against autograd in float64, the Trainer's wiring, exact resumes, and data parallelism."""

from __future__ import annotations

import pytest
import torch
from test_engines import engine_pair

from conftest import head
from mlplab.cli import build_parser
from mlplab.cli.train import config_from_args
from mlplab.config import TrainConfig
from mlplab.errors import ConfigError
from mlplab.training.callbacks import Callback
from mlplab.training.distributed import Distributed
from mlplab.training.engines import resolve_engine
from mlplab.training.evaluate import evaluate
from mlplab.training.techniques import WeightAverage, max_norm_, mixup
from mlplab.training.trainer import Trainer, check_parallel

# --- max-norm -------------------------------------------------------------------------------


def test_max_norm_caps_long_rows_and_leaves_short_ones_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 30, generator=g) * torch.linspace(0.05, 0.5, 40).view(-1, 1)
    before, radius = w.clone(), 1.5
    norms = before.norm(dim=1)
    long, short = norms > radius, norms <= radius
    assert long.sum() >= 5 and short.sum() >= 5  # both kinds of rows are there
    max_norm_([w], radius, dim=1)
    after = w.norm(dim=1)
    assert torch.equal(w[short], before[short])
    assert (after <= radius * (1 + 1e-6)).all()
    torch.testing.assert_close(after[long], torch.full_like(after[long], radius))
    # a long row keeps its direction
    cosine = (w[long] * before[long]).sum(1) / (after[long] * norms[long])
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


def test_max_norm_along_columns_and_of_a_zero_row():
    w = torch.zeros(5, 3)
    w[:, 0] = 10.0  # the fast engine's layout: a unit's incoming weights are a column
    max_norm_([w], 2.0, dim=0)
    assert w[:, 0].norm() == pytest.approx(2.0)
    assert torch.equal(w[:, 1:], torch.zeros(5, 2))  # 0/0 stays 0, not nan


def _batches(count: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(size, 784, generator=g, dtype=torch.float64)
        yield x, torch.randint(0, 10, (size,), generator=g)


PAIR_CASES = {
    "max-norm": dict(max_norm=0.5),
    "mixup": dict(mixup=0.4),
    "mixup-smoothing-max-norm": dict(mixup=1.0, label_smoothing=0.1, max_norm=0.6),
    "mixup-nll": dict(mixup=0.4, loss="nll"),
}


@pytest.mark.parametrize("kw", PAIR_CASES.values(), ids=PAIR_CASES.keys())
def test_fast_and_autograd_agree_in_float64(kw):
    config = TrainConfig(model="784-32-16-10:relu", optimizer="adam", lr=2e-2, batch_size=16, **kw)
    fast, reference = engine_pair(config)
    g = torch.Generator().manual_seed(5)
    for x, y in _batches(6, 16):
        state = g.get_state()
        steps = []
        for engine in (fast, reference):
            g.set_state(state)
            batch, mix = mixup(x, y, config.mixup, g) if config.mixup else (x, None)
            steps.append(engine.forward_backward(batch, y, mix))
            engine.update(config.lr)
            if config.max_norm:
                engine.constrain(config.max_norm)
        (loss_a, logits_a), (loss_b, logits_b) = steps
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(logits_a, logits_b, rtol=1e-12, atol=1e-12)
    ours, theirs = fast.module().state_dict(), reference.module().state_dict()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-10, atol=1e-12)
    if config.max_norm:
        rows = torch.cat([layer.weight.norm(dim=1) for layer in fast.module().linears()])
        assert rows.max() <= config.max_norm * (1 + 1e-12)
        assert (rows > config.max_norm * (1 - 1e-9)).sum() > 10  # the constraint bites


class _Watch(Callback):
    """After every step: the largest row norm and a copy of the live weights."""

    def __init__(self):
        self.norms, self.weights = [], []

    def on_step(self, trainer):
        model = trainer.model()
        with torch.no_grad():
            self.norms.append(max(float(m.weight.norm(dim=1).max()) for m in model.linears()))
            self.weights.append({k: v.double().clone() for k, v in model.state_dict().items()})


@pytest.fixture(scope="module")
def small(mnist):
    return head(mnist, 2000, 1000)


COMMON = dict(batch_size=64, normalization="dataset", seed=1, device="cpu", lr=1e-2)


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_the_trainer_keeps_every_row_within_the_radius_after_every_step(small, engine):
    config = TrainConfig(**COMMON, model="784-64-10", engine=engine, iterations=20, max_norm=0.6)
    watch = _Watch()
    Trainer(config, small, callbacks=[watch]).run()
    assert len(watch.norms) == 20
    assert max(watch.norms) <= 0.6 * (1 + 1e-6)
    free = _Watch()  # without the constraint Adam's steps take rows past it
    Trainer(config.replace(max_norm=None), small, callbacks=[free]).run()
    assert max(free.norms) > 0.7


# --- the weight average ---------------------------------------------------------------------


def test_the_weight_average_is_the_bias_corrected_closed_form():
    decay, k = 0.9, 12
    g = torch.Generator().manual_seed(2)
    live = [torch.zeros(3, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)]
    average = WeightAverage(decay, live)
    sequence = []
    for _ in range(k):
        step = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in live]
        for t, s in zip(live, step, strict=True):
            t.copy_(s)
        average.update()
        sequence.append(step)
    for j, got in enumerate(average.value()):
        # (1 - d) sum_i d^(k - i) w_i over i = 1..k, over 1 - d^k: the weights' share sums to 1
        closed = sum((1 - decay) * decay ** (k - i) * sequence[i - 1][j] for i in range(1, k + 1))
        torch.testing.assert_close(got, closed / (1 - decay**k), rtol=1e-12, atol=1e-14)
    assert average.updates == k


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_evaluations_and_the_result_use_the_average(small, engine):
    decay, k = 0.8, 15
    config = TrainConfig(**COMMON, model="784-32-10", engine=engine, iterations=k, ema=decay)
    watch = _Watch()
    result = Trainer(config, small, callbacks=[watch]).run()
    assert len(watch.weights) == k
    got = result.model.state_dict()
    for name in got:
        closed = sum(
            (1 - decay) * decay ** (k - i) * watch.weights[i - 1][name] for i in range(1, k + 1)
        )
        closed = closed / (1 - decay**k)
        torch.testing.assert_close(got[name].double(), closed, rtol=1e-4, atol=1e-6)
    # the reported test metrics are the averaged model's, not the live one's
    scored = evaluate(result.model, small.test, result.norm, small.num_classes)
    assert scored.accuracy == result.test.accuracy
    live = watch.weights[-1]["fc1.weight"]
    assert not torch.allclose(got["fc1.weight"].double(), live, atol=1e-4)


# --- mixup ----------------------------------------------------------------------------------


def test_a_mixed_batch_is_the_convex_combination_with_the_drawn_weight():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 784, generator=g), torch.randint(0, 10, (9,), generator=g)
    mixed, mix = mixup(x, y, 0.4, torch.Generator().manual_seed(3))
    assert 0.0 <= mix.lam <= 1.0
    torch.testing.assert_close(mixed, mix.lam * x + (1 - mix.lam) * x.flip(0))
    assert torch.equal(mix.partner, y.flip(0))
    again = mixup(x, y, 0.4, torch.Generator().manual_seed(3))[1]
    other = mixup(x, y, 0.4, torch.Generator().manual_seed(4))[1]
    assert again.lam == mix.lam != other.lam  # seeded


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_the_weights_follow_beta_alpha_alpha(alpha):
    g, x, y = torch.Generator().manual_seed(1), torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)
    lams = torch.tensor([mixup(x, y, alpha, g)[1].lam for _ in range(4000)])
    variance = 1 / (4 * (2 * alpha + 1))  # Beta(a, a): mean 1/2
    assert abs(float(lams.mean()) - 0.5) < 0.03
    assert float(lams.var()) == pytest.approx(variance, rel=0.1)


def test_mixup_learns_on_mnist(small):
    config = TrainConfig(**COMMON, preset="c", iterations=300, mixup=0.2)
    trainer = Trainer(config, small)
    assert trainer.engine_name == "fast"
    # 2,000 training images; measured 90.4% (88.4% without mixup)
    assert trainer.run().test.accuracy > 88.0


# --- resuming -------------------------------------------------------------------------------

RESUME_CASES = {
    "fast": dict(model="784-32-10", max_norm=0.8, ema=0.9, mixup=0.3, augment="shift"),
    "autograd-bn-dropouts": dict(
        model="784-32-16-10:relu,dropout=0.2,input_dropout=0.2,bn",
        max_norm=1.0,
        ema=0.95,
        mixup=0.5,
    ),
}


def _tensors(tree, prefix=""):
    """Every tensor of a state tree by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    if isinstance(tree, dict):
        pairs = tree.items()
    elif isinstance(tree, list):
        pairs = enumerate(tree)
    else:
        return {}
    return {k: v for key, sub in pairs for k, v in _tensors(sub, f"{prefix}/{key}").items()}


@pytest.mark.parametrize("kw", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_a_resumed_run_is_the_uninterrupted_one(small, tmp_path, kw):
    config = TrainConfig(**COMMON, iterations=30, eval_every=10, val_size=200, **kw)
    straight = Trainer(config, small)
    straight.run()
    first = Trainer(config, small)
    for _ in range(13):
        first.step()
    first.save_state(tmp_path / "state")
    torch.rand(7)  # the caller's RNG must not matter
    second = Trainer(config, small)
    second.load_state(tmp_path / "state")
    second.run()
    a, b = _tensors(straight.state_dict()), _tensors(second.state_dict())
    assert a.keys() == b.keys()
    assert any(k.startswith("/average/") for k in a) and "/generators/mixup" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in straight.state.records]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second.state.records]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(ema=None), "/state.json: ema: the saved state has a weight average"),
        (dict(ema=0.5), "state.json: ema: the saved state averages with decay 0.9, the config 0.5"),
        (dict(mixup=0.0), "/state.json: mixup: the saved run mixes its batches"),
    ],
)
def test_resuming_with_other_techniques_is_refused(small, tmp_path, change, message):
    config = TrainConfig(**COMMON, iterations=5, model="784-16-10", ema=0.9, mixup=0.2)
    trainer = Trainer(config, small)
    trainer.step()
    trainer.save_state(tmp_path / "state")
    with pytest.raises(ConfigError, match=message):
        Trainer(config.replace(**change), small).load_state(tmp_path / "state")


# --- configuration, engines, flags, data parallelism ----------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(max_norm=0.0), "max_norm: must be positive, got 0.0"),
        (dict(max_norm=-1.0), "max_norm: must be positive, got -1.0"),
        (dict(ema=1.0), "ema: must be in (0, 1), got 1.0"),
        (dict(ema=0), "ema: must be in (0, 1), got 0"),
        (dict(mixup=-0.1), "mixup: must be >= 0, got -0.1"),
        (dict(mixup="a lot"), "mixup: must be float, got 'a lot'"),
    ],
)
def test_bad_values_are_named(kw, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kw)


@pytest.mark.parametrize(
    "kw, engine",
    [
        (dict(max_norm=3.0, ema=0.999, mixup=0.2), "fast"),
        (dict(model="784-100-10:relu,input_dropout=0.2"), "autograd"),
    ],
)
def test_auto_picks_the_engine_that_can(kw, engine):
    assert resolve_engine(TrainConfig(**kw)) == engine


@pytest.mark.parametrize(
    "kw",
    [
        dict(max_norm=3.0),
        dict(ema=0.9),
        dict(mixup=0.2),
        dict(model="784-100-10:sigmoid,input_dropout=0.2"),
    ],
)
def test_scratch_refuses_them(kw):
    base = dict(model="784-100-10:sigmoid", engine="scratch", optimizer="sgd")
    with pytest.raises(ConfigError, match="^engine: scratch has no input dropout, max-norm"):
        resolve_engine(TrainConfig(**{**base, **kw}))
    with pytest.raises(ConfigError, match="^engine: fast has no input dropout"):
        resolve_engine(TrainConfig(model="784-100-10:relu,input_dropout=0.2", engine="fast"))


def test_the_flags_set_the_fields_and_config_json_keeps_them():
    args = build_parser().parse_args(
        ["train", "--max-norm", "3.5", "--ema", "0.999", "--mixup", "0.2"]
    )
    config = config_from_args(args)
    assert (config.max_norm, config.ema, config.mixup) == (3.5, 0.999, 0.2)
    assert TrainConfig.from_dict(config.to_dict()) == config
    defaults = TrainConfig()
    assert (defaults.max_norm, defaults.ema, defaults.mixup) == (None, None, 0.0)


def test_mixup_is_refused_in_a_data_parallel_run():
    job = Distributed(rank=0, world_size=2)
    with pytest.raises(ConfigError, match="^mixup: pairs images across the whole batch"):
        check_parallel(TrainConfig(mixup=0.2, device="cpu"), "fast", job)
    check_parallel(TrainConfig(max_norm=2.0, ema=0.99, device="cpu"), "fast", job)


def test_two_ranks_constrain_and_average_as_one_process(tmp_path):
    """Max-norm and the average act after the all-reduced step, alike on every rank: the
    saved (averaged) model of two ranks is the one process's, to float32 rounding (see
    test_distributed), and every row of it is within the radius (an average of vectors in
    a ball stays in it; the initial rows, of norm about 0.58, were outside)."""
    from safetensors.torch import load_file
    from test_distributed import (
        SMALL,
        finish,
        max_difference,
        mlplab,
        only_run,
        standalone,
        torchrun,
    )

    more = ("--max-norm", "0.3", "--ema", "0.95")
    rc, _, err = mlplab(*SMALL, *more, "--out", "one", cwd=tmp_path)
    assert rc == 0, err
    rc, _, err = finish(torchrun(*SMALL, *more, "--out", "two", cwd=tmp_path, extra=standalone(2)))
    assert rc == 0, err[-3000:]
    one, two = only_run(tmp_path / "one"), only_run(tmp_path / "two")
    assert max_difference(one, two) < 1e-5
    weights = load_file(two / "model.safetensors")
    for name in ("fc1.weight", "fc2.weight"):
        assert float(weights[name].norm(dim=1).max()) <= 0.3 * (1 + 1e-5), name
