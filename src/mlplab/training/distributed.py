"""Data-parallel training on torch.distributed, launched by torchrun (never by a launcher of
our own).

Every process (rank) holds the whole model and takes its equal share of every global batch
from the same seeded permutation. After the backward pass one all-reduce sums, in a single
flat buffer, each rank's gradients weighted by its share of the batch (so that the sum is the
gradient of the whole batch, as one process would compute it, even for an epoch's uneven last
batch) together with the step's loss and accuracy sums and whether any rank was asked to
stop. Every rank then takes the same optimizer step, keeps the same totals, and stops at the
same step. Evaluation is sharded: each rank scores its slice, and the counts are summed.
Only rank 0 writes files. gloo on CPUs, NCCL on GPUs (one per rank, cuda:LOCAL_RANK).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from mlplab.errors import ConfigError
from mlplab.training.device import pick_device

BACKENDS = ("gloo", "nccl")
SCALARS = 4  # loss sum, correct predictions, samples, stop requests: after the gradients


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job, and how its process group is made."""

    rank: int
    world_size: int
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # None: nccl for CUDA, gloo otherwise
    timeout: float = 300.0  # seconds any collective (the first included) may wait
    run_id: str | None = None  # torchrun's rendezvous id: the same across restarts
    restart: int = 0  # how many times torchrun restarted the workers
    master_addr: str = "127.0.0.1"  # where the job's key-value store listens
    master_port: int = 29500
    agent_store: bool = False  # torchrun's agent hosts that store (else rank 0 does)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """This rank's device: its own GPU (cuda:LOCAL_RANK) where the config asks for CUDA."""
        device = pick_device(name)
        if device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def threads(self) -> int:
        """CPU threads per rank so that the ranks on a machine share its cores."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return max(1, (cores or os.cpu_count() or 1) // self.local_world_size)


def from_environment(
    environ: Mapping[str, str], backend: str | None = None, timeout: float = 300.0
) -> Distributed | None:
    """The torchrun job this process belongs to, from the variables torchrun sets; None for a
    process on its own (or a world of one)."""
    if int(environ.get("WORLD_SIZE", "1")) < 2:
        return None
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(
            f"dist_backend: must be one of {', '.join(BACKENDS)}, got {backend!r}",
            field="dist_backend",
        )
    return Distributed(
        rank=int(environ["RANK"]),
        world_size=int(environ["WORLD_SIZE"]),
        local_rank=int(environ.get("LOCAL_RANK", "0")),
        local_world_size=int(environ.get("LOCAL_WORLD_SIZE", "1")),
        backend=backend,
        timeout=timeout,
        run_id=environ.get("TORCHELASTIC_RUN_ID"),
        restart=int(environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
        master_port=int(environ.get("MASTER_PORT", "29500")),
        agent_store=environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
    )


@contextmanager
def process_group(job: Distributed) -> Iterator[None]:
    """The job's process group for the block (torchrun's env:// rendezvous), then torn down.

    On a machine with GPUs the group has NCCL for CUDA tensors (the training) and gloo for
    CPU tensors (the few bytes of config and state rank 0 shares); elsewhere, gloo.
    """
    backend = job.backend
    if backend is None or backend == "nccl":
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(job.local_rank)
    timeout = timedelta(seconds=job.timeout)
    dist.init_process_group(
        backend,
        store=_store(job, timeout),
        rank=job.rank,
        world_size=job.world_size,
        timeout=timeout,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def _store(job: Distributed, timeout: timedelta) -> dist.Store:
    """torchrun's key-value store, with a prefix for each restart of the job.

    torchrun keeps one store across restarts (same MASTER_PORT), so without the prefix a
    restarted rank can read the address its dead predecessor published and fail to connect
    (measured here with torch 2.13: gloo "Connection refused" whenever rank 0 restarts
    slower than rank 1).
    """
    store = dist.TCPStore(
        job.master_addr,
        job.master_port,
        job.world_size,
        is_master=not job.agent_store and job.rank == 0,
        timeout=timeout,
        multi_tenant=not job.agent_store,
    )
    return dist.PrefixStore(f"mlplab/attempt-{job.restart}", store)


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over every rank, in place; returns the tensor."""
    dist.all_reduce(tensor)
    return tensor


class StepReducer:
    """Sums one step over the ranks in a single all-reduce (see the module docstring)."""

    def __init__(self, flat_grads: torch.Tensor | None):
        self.flat = flat_grads  # the fast engine's: its gradients are views into it

    def __call__(
        self, grads: list[torch.Tensor], scalars: list[float | torch.Tensor], share: float
    ) -> torch.Tensor:
        """grads *= share, summed over ranks in place; returns the summed scalars."""
        n = sum(g.numel() for g in grads)
        flat = self.flat
        if flat is None:  # the gradients are separate tensors: gather them into one buffer
            flat = grads[0].new_empty(n + SCALARS)
            torch.cat([g.reshape(-1) for g in grads], out=flat[:n])
        flat[:n].mul_(share)
        flat[n:] = torch.stack([torch.as_tensor(v, dtype=flat.dtype) for v in scalars])
        dist.all_reduce(flat)
        if self.flat is None:
            for g, summed in zip(grads, flat[:n].split([g.numel() for g in grads]), strict=True):
                g.copy_(summed.view_as(g))
        return flat[n:]


def check_same_config(config_dict: dict, device: torch.device) -> None:
    """Every rank must train with the same settings; a digest of them is compared at start.

    The settings that may differ between machines (where the data is, where rank 0 writes,
    threads) are left out of the digest.
    """
    same = {k: v for k, v in config_dict.items() if k not in ("data_dir", "out", "threads")}
    digest = hashlib.sha256(json.dumps(same, sort_keys=True).encode()).digest()
    mine = torch.tensor(list(digest[:8]), dtype=torch.int64, device=device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    for rank, theirs in enumerate(everyone):
        if not torch.equal(theirs, everyone[0]):
            raise ConfigError(
                f"config: rank {rank}'s settings differ from rank 0's; every process of a "
                "data-parallel run must be given the same flags",
                field="config",
            )


def broadcast_bytes(data: bytes | None, device: torch.device) -> bytes:
    """Rank 0's bytes, on every rank (as a uint8 tensor: nothing is pickled)."""
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64, device=device)
    dist.broadcast(size, 0)
    buffer = torch.empty(int(size), dtype=torch.uint8, device=device)
    if dist.get_rank() == 0 and data:
        buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buffer, 0)
    return bytes(buffer.cpu().numpy())
