"""The order of training batches: one seeded permutation per epoch, made on the device.

The sampler is stateful so that a run can stop anywhere and continue exactly: its state is
the epoch, the position inside it, and its generator's state at the start of that epoch,
from which the epoch's permutation is drawn again on restore. With rank and world_size,
each of several processes takes its own equal share of every global batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mlplab.data.streams import restore
from mlplab.errors import ConfigError, DataError


class BatchSampler:
    """Index batches over `size` samples, epoch after epoch, on `device`.

    Args:
        size: samples in the split.
        batch_size: the global batch; the last batch of an epoch may be smaller.
        seed: seeds the permutations; shuffle=False keeps the split's order.
        rank, world_size: this process's share of each global batch (1 process: all of it).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise DataError(f"batch size must be positive, got {batch_size}")
        if size < 1:
            raise DataError(f"cannot sample batches from {size} samples")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank: must be in [0, {world_size}), got {rank}", field="rank")
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.batches_per_epoch = math.ceil(size / batch_size)
        self.epoch = 0  # epochs begun; the first batch begins epoch 1
        self.position = 0  # batches taken in the current epoch
        self._order: torch.Tensor | None = None
        self._epoch_state = self.generator.get_state()
        self.share = (0, 0)  # the last batch's (first row of this rank's share, global size)

    @property
    def epoch_done(self) -> bool:
        """Whether the current epoch's last batch has been taken."""
        return self.position == self.batches_per_epoch

    @property
    def in_partial_epoch(self) -> bool:
        return 0 < self.position < self.batches_per_epoch

    def next(self) -> torch.Tensor:
        """The indices of the next batch (this rank's share), starting a new epoch if due."""
        if self._order is None or self.epoch_done:
            self._begin_epoch()
        start = self.position * self.batch_size
        idx = self._order[start : start + self.batch_size]
        self.position += 1
        total = len(idx)
        if self.world_size > 1:
            # tensor_split: the first total % world_size shares are one larger
            base, extra = divmod(total, self.world_size)
            self.share = (self.rank * base + min(self.rank, extra), total)
            return idx.tensor_split(self.world_size)[self.rank]
        self.share = (0, total)
        return idx

    def epoch_batches(self):
        """The rest of the current epoch (all of the next one at an epoch boundary)."""
        if self._order is None or self.epoch_done:
            self._begin_epoch()
        while not self.epoch_done:
            yield self.next()

    def _begin_epoch(self) -> None:
        self._epoch_state = self.generator.get_state()
        self._order = self._draw()
        self.epoch += 1
        self.position = 0

    def _draw(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.size, generator=self.generator, device=self.device)
        return torch.arange(self.size, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "position": self.position,
            "generator": self._epoch_state.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state: the same epoch, position and remaining batches."""
        for key in ("size", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise ConfigError(
                    f"{key}: the saved sampler has {state[key]}, this one {getattr(self, key)}",
                    field=key,
                )
        restore(self.generator, state["generator"], self.seed, f"shuffle, epoch {state['epoch']}")
        self._epoch_state = self.generator.get_state()
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        # The epoch's permutation, drawn again from the generator as it was at its start.
        self._order = self._draw() if self.epoch else None
