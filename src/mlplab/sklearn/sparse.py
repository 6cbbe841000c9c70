"""A scipy sparse matrix as training rows: kept sparse (CSR) on the device, densified per batch.

OneHotEncoder's output, say, can be far larger dense than sparse. SparseRows holds only the
nonzeros, as three tensors on the training device, and stands in for a Split's x: a batch
of rows (index_select) and a chunk of rows for evaluation (split) come out as dense float32
tensors, built on the device from the rows' nonzeros alone. Only a batch is ever dense.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

CHUNK = 1 << 24  # at most this many numbers (64 MiB of float32) in one dense chunk of split()


class SparseRows:
    """Rows of a CSR matrix (float32 values), on one device; see the module docstring.

    Args:
        indptr: (N + 1,) int64, where each row's nonzeros begin and end.
        indices: (nnz,) int64, each nonzero's column.
        values: (nnz,) float32, each nonzero's value.
        shape: (N, features).
    """

    def __init__(
        self,
        indptr: torch.Tensor,
        indices: torch.Tensor,
        values: torch.Tensor,
        shape: tuple[int, int],
    ):
        self.indptr, self.indices, self.values = indptr, indices, values
        self.shape = torch.Size(shape)

    @classmethod
    def from_scipy(cls, matrix) -> SparseRows:
        """From any scipy sparse matrix or array (n, features); duplicate entries add up."""
        csr = matrix.tocsr()
        return cls(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(csr.data, dtype=np.float32)),
            csr.shape,
        )

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: torch.device | str) -> SparseRows:
        return SparseRows(
            self.indptr.to(device), self.indices.to(device), self.values.to(device), self.shape
        )

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each selected row's nonzero count (B,) and where its nonzeros are, in row order."""
        starts = self.indptr[idx]
        counts = self.indptr[idx + 1] - starts
        # (the output's length is the batch's nonzero count: on a GPU, a wait for it)
        first = torch.repeat_interleave(starts - (counts.cumsum(0) - counts), counts)
        return counts, first + torch.arange(len(first), device=first.device)

    def index_select(self, dim: int, idx: torch.Tensor) -> torch.Tensor:
        """The rows at idx, dense: (B, features) float32."""
        if dim != 0:
            raise ValueError(f"SparseRows selects rows (dim 0), not dim {dim}")
        idx = idx.to(self.device)
        counts, at = self._gather(idx)
        rows = torch.repeat_interleave(torch.arange(len(idx), device=self.device), counts)
        out = torch.zeros(len(idx), self.shape[1], device=self.device)
        return out.index_put_((rows, self.indices[at]), self.values[at], accumulate=True)

    def __getitem__(self, idx: torch.Tensor) -> SparseRows:
        """The rows at idx, still sparse (a validation split held out of the training rows)."""
        idx = torch.as_tensor(idx, device=self.device)
        counts, at = self._gather(idx)
        indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return SparseRows(indptr, self.indices[at], self.values[at], (len(idx), self.shape[1]))

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive dense chunks of `size` rows (the last one may be shorter), or fewer
        rows where that many would be more than CHUNK numbers."""
        size = max(1, min(size, CHUNK // max(1, self.shape[1])))
        for start in range(0, len(self), size):
            stop = min(start + size, len(self))
            yield self.index_select(0, torch.arange(start, stop, device=self.device))
