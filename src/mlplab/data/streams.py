"""A run's random streams across devices.

Each random stream of a run (the sampler's shuffling, augmentation, dropout, mixup) has its
own generator, whose state is saved with the run. A CPU generator's state and a CUDA one's
are different things (Mersenne Twister against Philox), so a run saved on one kind of device
and resumed on the other cannot take up its streams where they were. It goes on with each
stream seeded anew, with a warning: it trains on, but no longer step for step as it would
have on the first device.
"""

from __future__ import annotations

import hashlib
import warnings

import torch

from mlplab.errors import MlplabWarning


def restore(generator: torch.Generator, saved: torch.Tensor, seed: int, stream: str) -> bool:
    """Load `saved` into `generator`, or, when it was saved by a generator of another kind
    of device, seed the generator from (seed, stream) and warn. Returns whether it loaded."""
    try:
        generator.set_state(saved.cpu())
        return True
    except RuntimeError:
        digest = hashlib.sha256(f"mlplab:{seed}:{stream}:resumed".encode()).digest()
        generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        warnings.warn(
            f"{stream}: its random state was saved on another kind of device and cannot "
            f"continue on {generator.device.type}; it starts anew, so the run goes on but "
            "not step for step as it would have where it began",
            MlplabWarning,
            stacklevel=3,
        )
        return False
