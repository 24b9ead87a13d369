"""Row-wise Adagrad for embedding tables updated by sparse, summed row gradients.

Adagrad (Duchi, Hazan & Singer 2011) divides each step by the root of the summed squared gradients seen so
far. The row-wise form keeps one accumulator per row instead of one per entry, as PyTorch-BigGraph does for
its embedding tables (Lerer et al. 2019): for a row w whose gradient summed over a batch is g_w (d,),

    G_w ← G_w + mean(g_w²),    x_w ← x_w − lr · g_w / (√G_w + ε).

Why the skip-gram trainer offers it: with plain SGD the steps of all the pairs of a batch are summed into
each row, so a frequent word's row moves by (its count in the batch) × lr at once. Batches of 1,024 pairs
keep that sum small; the batches a GPU needs (tens of thousands of pairs) make it diverge (docs/skipgram.md).
Dividing by √G_w bounds the step of a frequent row whatever its count, while a rare row, seen once, gets a
full step.
"""

from __future__ import annotations

import torch

EPSILON = 1e-10


class RowwiseAdagrad:
    """Accumulators for named tables, and the update.

    Args:
        sizes: the number of rows of each table, by name.
        device: where the accumulators live (the tables' device).
        state: accumulators to continue from (a checkpoint's), by name; float32 (rows,).
    """

    def __init__(self, sizes: dict[str, int], device: torch.device, state: dict[str, torch.Tensor] | None = None):
        self.accumulators = {name: torch.zeros(rows, device=device) for name, rows in sizes.items()}
        for name, saved in (state or {}).items():
            if name not in self.accumulators or saved.shape != self.accumulators[name].shape:
                raise ValueError(f"optimizer state {name!r} does not match the tables")
            self.accumulators[name].copy_(saved)

    def state(self) -> dict[str, torch.Tensor]:
        """The accumulators, on the CPU, for a checkpoint."""
        return {name: accumulator.cpu() for name, accumulator in self.accumulators.items()}

    def step_(self, name: str, table: torch.Tensor, ids: torch.Tensor, descent: torch.Tensor, lr: float) -> None:
        """Apply one batch's steps to ``table`` (V, d) or (V,) in place.

        ``descent`` holds one row per entry of ``ids`` (N,): the negative gradient of the loss with respect to
        row ``ids[i]`` from one example, (N, d) or (N,). Rows named several times are summed first.
        """
        unique, inverse = torch.unique(ids, return_inverse=True)  # (U,), (N,)
        rows = descent if descent.dim() == 2 else descent[:, None]  # (N, d)
        summed = torch.zeros(len(unique), rows.shape[1], device=rows.device, dtype=rows.dtype)
        summed.scatter_add_(0, inverse[:, None].expand(-1, rows.shape[1]), rows)  # (U, d)
        accumulator = self.accumulators[name]
        accumulator.index_add_(0, unique, summed.square().mean(1))
        update = summed * (lr / (accumulator[unique].sqrt() + EPSILON))[:, None]  # (U, d)
        table.index_add_(0, unique, update if table.dim() == 2 else update[:, 0])
