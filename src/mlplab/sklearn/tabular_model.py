"""The network of TabularMLPClassifier: periodic number embeddings, a diagonal scale, and an
MLP whose k members share every weight matrix (TabM-mini).

- Periodic embeddings (Gorishniy et al. 2022, MLP-PLR; RealMLP's PBLD variant): each numeric
  input x_j becomes cos(2 pi f_j x_j + b_j) at n_frequencies learned frequencies f_j, drawn
  from N(0, frequency_scale^2), with learned phases b_j; a per-feature linear map takes
  these to embedding_dim - 1 numbers, and x_j itself is kept beside them.
- The front scale (RealMLP): one learned factor per input column, initialised to 1, so the
  network can turn a column up or off early.
- Parameter-efficient ensembling (TabM, Gorishniy et al. 2024): k members run the same MLP
  on the same rows; each member first multiplies the input by a vector of its own
  (initialised to random signs) and ends in a head of its own. The members differ only there,
  so k members cost k times the activations but almost no extra parameters. Each member is
  trained on its own loss; predictions average the members' probabilities.

Every parameter is stored raw and used as factor * raw. Adam's step does not depend on the
gradient's scale, so a factor c makes that parameter learn c times faster at the same
learning rate: RealMLP's per-parameter learning rates (its NTK parametrisation: weights
1 / sqrt(fan_in), biases and embeddings 0.1, the front scale 6) with one optimizer group for
the weights and one for the rest, which keeps the optimizer step to a few fused kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BIAS_RATE, EMBED_RATE, SCALE_RATE = 0.1, 0.1, 6.0  # RealMLP-TD's learning-rate factors
ADAPTER_RATE = 0.1  # the members' input vectors: slow, as the front scale is fast


def _raw(value: torch.Tensor, factor: float) -> nn.Parameter:
    """A parameter whose effective value factor * raw starts at `value`."""
    return nn.Parameter(value / factor)


class PeriodicEmbedding(nn.Module):
    """(B, n) -> (B, n * dim): per feature, [linear(cos(2 pi f x + b)), x]."""

    def __init__(self, n: int, frequencies: int, dim: int, scale: float):
        super().__init__()
        bound = 1 / math.sqrt(frequencies)
        self.frequency = _raw(scale * torch.randn(n, frequencies), EMBED_RATE)
        self.phase = _raw(math.pi * (2 * torch.rand(n, frequencies) - 1), EMBED_RATE)
        self.weight = _raw(bound * (2 * torch.rand(n, frequencies, dim - 1) - 1), EMBED_RATE)
        self.bias = _raw(bound * (2 * torch.rand(n, dim - 1) - 1), EMBED_RATE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, b = EMBED_RATE * self.frequency, EMBED_RATE * self.phase
        waves = torch.cos(2 * math.pi * x.unsqueeze(-1) * f + b)  # (B, n, frequencies)
        z = torch.einsum("bnf,nfd->bnd", waves, EMBED_RATE * self.weight)
        z = z + EMBED_RATE * self.bias  # (B, n, dim - 1)
        return torch.cat([z, x.unsqueeze(-1)], dim=-1).flatten(1)


class TabularNet(nn.Module):
    """(B, n_numeric + n_other) -> (B, k, n_classes) logits, one row of logits per member."""

    def __init__(
        self,
        n_numeric: int,
        n_other: int,
        n_classes: int,
        hidden: tuple[int, ...],
        members: int,
        embedding: tuple[int, int, float] | None,
        front_scale: bool,
    ):
        """embedding: (frequencies, dim, frequency_scale), or None for the raw numbers."""
        super().__init__()
        self.n_numeric = n_numeric
        self.embed = PeriodicEmbedding(n_numeric, *embedding) if embedding and n_numeric else None
        width = (n_numeric * embedding[1] if self.embed else n_numeric) + n_other
        self.scale = _raw(torch.ones(width), SCALE_RATE)
        self.scale.requires_grad_(front_scale)
        signs = torch.randint(0, 2, (members, width)) * 2.0 - 1.0
        self.adapter = _raw(signs, ADAPTER_RATE) if members > 1 else None
        sizes = (width, *hidden)
        # NTK parametrisation: N(0, 1) weights, used as weight / sqrt(fan_in).
        self.weights = nn.ParameterList(
            torch.randn(b, a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.biases = nn.ParameterList(torch.zeros(b) for b in hidden)
        self.head = nn.Parameter(torch.randn(members, sizes[-1], n_classes))
        self.head_bias = nn.Parameter(torch.zeros(members, n_classes))

    @property
    def members(self) -> int:
        return self.head.shape[0]

    def forward(self, x: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        if self.embed is not None:
            x = torch.cat([self.embed(x[:, : self.n_numeric]), x[:, self.n_numeric :]], dim=1)
        x = x * (SCALE_RATE * self.scale)  # (B, width)
        x = (
            x.unsqueeze(1)
            if self.adapter is None
            else x.unsqueeze(1) * (ADAPTER_RATE * self.adapter)
        )  # (B, k, w)
        for w, b in zip(self.weights, self.biases, strict=True):
            x = F.linear(x, w / math.sqrt(w.shape[1]), BIAS_RATE * b)
            x = F.dropout(F.selu(x), dropout, self.training) if dropout else F.selu(x)
        head = self.head / math.sqrt(self.head.shape[1])
        return torch.einsum("bkh,khc->bkc", x, head) + BIAS_RATE * self.head_bias


def parameter_groups(net: TabularNet) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(the weight matrices, which decay; every other trained parameter, which does not)."""
    decay = [*net.weights, net.head]
    ids = {id(p) for p in decay}
    return decay, [p for p in net.parameters() if p.requires_grad and id(p) not in ids]
