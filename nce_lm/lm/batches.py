"""Contiguous-stream batches for language modelling, as in the standard PTB and WikiText-2 set-ups.

The token stream (with ``<eos>`` after every line) is cut into ``batch_size`` equal streams laid side by
side, and read ``seq_len`` tokens at a time; the hidden state of a recurrent model carries over from one
window to the next (truncated back-propagation through time; Zaremba et al. 2014). Targets are the inputs
shifted by one token.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from nce_lm.errors import NceLmError


def batchify(ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """Token ids (N,) → (batch_size, N // batch_size) int64 streams; the remainder is dropped."""
    length = len(ids) // batch_size
    if length < 2:
        raise NceLmError(f"{len(ids)} tokens are too few for {batch_size} streams")
    return torch.from_numpy(np.asarray(ids[: length * batch_size], dtype=np.int64)).view(batch_size, length)


def rank_rows(streams: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """The rows of the global batch (B, L) that one of ``world_size`` ranks trains on: B / world_size rows."""
    rows = streams.shape[0]
    if rows % world_size:
        raise NceLmError(f"batch size {rows} is not divisible by the {world_size} ranks")
    share = rows // world_size
    return streams[rank * share : (rank + 1) * share]


def windows(streams: torch.Tensor, seq_len: int, start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(position, inputs (B, T), targets (B, T))`` windows from ``start``; T ≤ seq_len."""
    for position in range(start, streams.shape[1] - 1, seq_len):
        length = min(seq_len, streams.shape[1] - 1 - position)
        yield position, streams[:, position : position + length], streams[:, position + 1 : position + 1 + length]


def num_windows(streams: torch.Tensor, seq_len: int) -> int:
    return (streams.shape[1] - 2) // seq_len + 1
