"""On CUDA the training batches never leave the device: the sampler's permutations, the
batch gather, the normalisation and every augmentation run there, and a training step
copies nothing between host and device and waits for nothing.

Two checks. torch.cuda.set_sync_debug_mode("error") makes any operation that would wait for
the device (a .item(), a copy to the host, a copy from pageable host memory) raise, around
three epochs of batches. torch.profiler counts the host<->device copies and the
synchronisations in twenty training steps of the Trainer itself (no evaluation due).
"""

from __future__ import annotations

import pytest
import torch
from cuda_support import needs_cuda
from torch.profiler import ProfilerActivity, profile

from conftest import head
from mlplab.config import TrainConfig
from mlplab.data.augment import augment
from mlplab.data.dataset import Split
from mlplab.data.sampler import BatchSampler
from mlplab.nn.normalization import Normalization
from mlplab.training.trainer import Trainer

pytestmark = needs_cuda

KINDS = ("none", "shift", "affine", "elastic", "affine-elastic")


@pytest.mark.parametrize("kind", KINDS)
def test_sampler_and_augmentation_never_wait_for_the_host(kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1000, 784), dtype=torch.uint8, generator=g)
    split = Split(x, torch.randint(0, 10, (1000,), generator=g)).to("cuda")
    sampler = BatchSampler(len(split), 128, seed=0, device="cuda")
    norm = Normalization(0.1307, 0.3081)
    jitter = torch.Generator(device="cuda").manual_seed(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        # three epochs: each begins with a new permutation, drawn on the device
        for _ in range(3 * sampler.batches_per_epoch):
            xb, yb = split.batch(sampler.next(), norm)
            xb = augment(xb, kind, norm.blank, jitter, part=sampler.share)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert xb.device.type == "cuda" and yb.device.type == "cuda"
    assert xb.shape == (1000 - 7 * 128, 784) and xb.dtype == torch.float32


def host_traffic(prof) -> dict[str, int]:
    """Copies between host and device, and synchronisations, among a profile's events."""
    names = [e.name for e in prof.events()]
    return {
        "host to device": sum("HtoD" in n for n in names),
        "device to host": sum("DtoH" in n for n in names),
        "stream syncs": sum(n == "cudaStreamSynchronize" for n in names),
        "device syncs": sum(n == "cudaDeviceSynchronize" for n in names),
    }


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_a_training_step_copies_nothing_between_host_and_device(engine, mnist):
    config = TrainConfig(
        model="784-128-10:relu",
        engine=engine,
        batch_size=128,
        augment="affine",
        iterations=10_000,
        eval_every=10_000,
        device="cuda",
    )
    trainer = Trainer(config, head(mnist, 4000, 500))
    trainer.begin()
    for _ in range(5):  # warm-up: cuBLAS handles, the caching allocator's first blocks
        trainer.step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            trainer.step()
        torch.cuda.synchronize()  # the one wait allowed: ours, so the profile is whole
    traffic = host_traffic(prof)
    copies = traffic["host to device"] + traffic["device to host"]
    assert copies == traffic["stream syncs"] == 0 and traffic["device syncs"] <= 1, traffic
    assert trainer.state.iteration == 25
