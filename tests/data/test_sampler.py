"""BatchSampler: every index once per epoch, seeded, restorable mid-epoch, shared across ranks."""

from __future__ import annotations

import pytest
import torch

from mlplab.data.dataset import Split
from mlplab.data.sampler import BatchSampler
from mlplab.errors import ConfigError, DataError
from mlplab.nn.normalization import Normalization

IDENTITY = Normalization(0.0, 1.0)


def _indexed_split(n: int) -> Split:
    """Image i carries i in its first two pixels (little-endian); label is i % 10."""
    i = torch.arange(n)
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 0, 0] = (i % 256).to(torch.uint8)
    x[:, 0, 1] = (i // 256).to(torch.uint8)
    return Split(x, i % 10)


def _epoch(sampler: BatchSampler) -> tuple[torch.Tensor, list[int]]:
    batches = list(sampler.epoch_batches())
    return torch.cat(batches), [len(b) for b in batches]


def test_an_epoch_covers_every_index_once_shuffled():
    order, sizes = _epoch(BatchSampler(1_000, 64, seed=0))
    assert sizes == [64] * 15 + [40]
    assert torch.equal(order.sort().values, torch.arange(1_000))
    assert not torch.equal(order, torch.arange(1_000))


def test_batches_keep_images_and_labels_paired_and_normalised():
    split = _indexed_split(300)
    norm = Normalization(0.1307, 0.3081)
    for idx in BatchSampler(300, 128, seed=3).epoch_batches():
        x, y = split.batch(idx, norm)
        assert x.dtype == torch.float32 and x.shape == (len(idx), 784)
        assert y.dtype == torch.int64
        assert torch.equal(x, norm.apply(split.x[idx]))
        pixels = torch.round((x[:, :2] * 0.3081 + 0.1307) * 255).long()
        assert torch.equal(pixels[:, 0] + 256 * pixels[:, 1], idx)
        assert torch.equal(y, idx % 10)


def test_permutations_are_seeded_and_the_seed_matters():
    a, _ = _epoch(BatchSampler(700, 100, seed=5))
    b, _ = _epoch(BatchSampler(700, 100, seed=5))
    c, _ = _epoch(BatchSampler(700, 100, seed=6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_the_first_epoch_is_torch_randperm_of_the_seeded_generator():
    """The order a run has always drawn: randperm from a generator seeded with the seed."""
    first, _ = _epoch(BatchSampler(500, 50, seed=11))
    assert torch.equal(first, torch.randperm(500, generator=torch.Generator().manual_seed(11)))


def test_successive_epochs_differ_and_count():
    sampler = BatchSampler(300, 128, seed=0)
    first, _ = _epoch(sampler)
    assert (sampler.epoch, sampler.position, sampler.epoch_done) == (1, 3, True)
    second, _ = _epoch(sampler)
    assert sampler.epoch == 2
    assert not torch.equal(first, second)
    assert torch.equal(second.sort().values, torch.arange(300))


def test_without_shuffling_the_order_is_the_splits():
    order, sizes = _epoch(BatchSampler(250, 100, shuffle=False))
    assert sizes == [100, 100, 50]
    assert torch.equal(order, torch.arange(250))


def test_exact_multiple_and_oversized_batch():
    assert _epoch(BatchSampler(200, 50))[1] == [50, 50, 50, 50]
    assert _epoch(BatchSampler(200, 1_000))[1] == [200]


@pytest.mark.parametrize("batch_size", [0, -5])
def test_non_positive_batch_size_is_refused(batch_size):
    with pytest.raises(DataError, match=f"batch size must be positive, got {batch_size}"):
        BatchSampler(10, batch_size)


@pytest.mark.parametrize("stop_after", [0, 1, 7, 10, 11, 23])
def test_restore_lands_on_exactly_the_same_remaining_batches(stop_after):
    """Stop anywhere (before the first batch, mid-epoch, at an epoch's end), save, restore
    into a fresh sampler, and the batches that follow are the same ones."""
    reference = BatchSampler(1_000, 96, seed=4)  # 11 batches an epoch, the last of 40
    expected = [reference.next() for _ in range(40)]
    interrupted = BatchSampler(1_000, 96, seed=4)
    for _ in range(stop_after):
        interrupted.next()
    state = interrupted.state_dict()
    resumed = BatchSampler(1_000, 96, seed=123)  # the seed is in the state
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.position) == (state["epoch"], state["position"])
    for i in range(stop_after, 40):
        assert torch.equal(resumed.next(), expected[i]), i


def test_restore_refuses_another_split_or_batch_size():
    state = BatchSampler(1_000, 96).state_dict()
    with pytest.raises(ConfigError, match="^size: the saved sampler has 1000, this one 999"):
        BatchSampler(999, 96).load_state_dict(state)
    with pytest.raises(ConfigError, match="^batch_size: the saved sampler has 96"):
        BatchSampler(1_000, 64).load_state_dict(state)


def test_ranks_split_each_global_batch_into_equal_disjoint_shares():
    one = BatchSampler(1_000, 100, seed=2)
    ranks = [BatchSampler(1_000, 100, seed=2, rank=r, world_size=4) for r in range(4)]
    for _ in range(12):
        whole = one.next()
        shares = [r.next() for r in ranks]
        assert [len(s) for s in shares] == [25, 25, 25, 25]
        assert torch.equal(torch.cat(shares), whole)
    with pytest.raises(ConfigError, match=r"^rank: must be in \[0, 2\), got 2"):
        BatchSampler(10, 2, rank=2, world_size=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_the_gpu():
    split = _indexed_split(1_000).to("cuda")
    sampler = BatchSampler(1_000, 128, seed=0, device="cuda")
    seen = []
    for idx in sampler.epoch_batches():
        x, y = split.batch(idx, IDENTITY)
        assert x.device.type == "cuda" and y.device.type == "cuda"
        pixels = torch.round(x[:, :2] * 255).long()
        seen.append((pixels[:, 0] + 256 * pixels[:, 1]).cpu())
    order = torch.cat(seen)
    assert torch.equal(order.sort().values, torch.arange(1_000))
    assert not torch.equal(order, torch.arange(1_000))


def test_a_state_saved_by_another_kind_of_generator_starts_its_stream_anew_with_a_warning():
    """A CUDA generator's state is 16 bytes of Philox seed and offset; a CPU generator cannot
    take it (a CUDA run resumed on the CPU), so the stream is seeded anew, with a warning."""
    from mlplab.errors import MlplabWarning

    sampler = BatchSampler(100, 10, seed=3)
    for _ in range(13):
        sampler.next()
    state = sampler.state_dict()
    state["generator"] = torch.arange(16, dtype=torch.uint8)  # what torch.cuda's looks like
    resumed = BatchSampler(100, 10, seed=3)
    with pytest.warns(MlplabWarning, match=r"^shuffle, epoch 2: its random state was saved on"):
        resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.position) == (2, 3)
    rest = torch.cat([resumed.next() for _ in range(7)])
    assert sorted(rest.tolist()) == sorted(set(rest.tolist())) and len(rest) == 70
    again = BatchSampler(100, 10, seed=3)
    with pytest.warns(MlplabWarning):
        again.load_state_dict(state)
    assert torch.equal(torch.cat([again.next() for _ in range(7)]), rest)  # seeded alike
