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

The update never waits for the host: summing each row's entries first needs the rows grouped, and
``torch.unique`` (a sort, and a host sync to size its output) would do it at the cost of a round trip per
call on a GPU. Instead each row elects one of its entries as its slot: ``slot[ids] = arange(N)`` in a (V,)
scratch table (of duplicates, one write wins, whichever), then ``slot[ids[i]]`` names the same entry for
every i of a row. Sums go into that entry of an (N, d) buffer with ``index_add_``; the other entries stay 0
and add exactly nothing to the accumulator and the table. That is O(N·d) work and memory on fixed shapes,
where a dense (V, d) scratch would cost O(V·d) per call and a sort O(N log N) plus the sync. On the CPU the
sums are formed in entry order, as with ``torch.unique``, so the results are the same bit for bit.
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

    def __init__(
        self, sizes: dict[str, int], device: torch.device, state: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.accumulators = {name: torch.zeros(rows, device=device) for name, rows in sizes.items()}
        # (V,) scratch for the slot of each row named in a call; every call writes before it reads.
        self._slot = torch.zeros(max(sizes.values(), default=0), dtype=torch.int64, device=device)
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
        row ``ids[i]`` from one example, (N, d) or (N,). Rows named several times are summed first. No host
        sync: every shape is N or the table's (see the module docstring).
        """
        rows = descent if descent.dim() == 2 else descent[:, None]  # (N, d)
        ids = ids.to(torch.int64)  # scatter_ takes no int32 index; a no-op for int64
        self._slot.scatter_(0, ids, torch.arange(len(ids), device=ids.device))
        slot = self._slot[ids]  # (N,): the entry that holds row ids[i]'s sum
        summed = torch.zeros_like(rows).index_add_(0, slot, rows)  # (N, d): a row's sum at its slot, else 0
        accumulator = self.accumulators[name]
        accumulator.index_add_(0, ids, summed.square().mean(1))
        update = summed * (lr / (accumulator[ids].sqrt() + EPSILON))[:, None]  # (N, d), 0 outside the slots
        table.index_add_(0, ids, update if table.dim() == 2 else update[:, 0])
