"""Row-sparse gradients for embedding tables: gather, clip and exchange only the rows a step touched.

A sampled objective (NCE, negative sampling, ranking NCE, InfoNCE) touches, per step, the rows of the
batch's targets and of its k noise words in the output table, and the rows of the batch's inputs in the
input table — not all V rows. Through a dense ``weight[ids]`` autograd still hands the optimizer a dense
(V, d) gradient, so every step costs O(V·d) in the optimizer, the clipping norm and the all-reduce. Here:

* :func:`gather_rows` is ``table[ids]`` whose gradient is a sparse COO tensor of the table's shape with one
  row per gathered id (uncoalesced: a repeated id appears several times and the rows add up);
* :func:`clip_grad_norm_` is ``torch.nn.utils.clip_grad_norm_`` for a mix of dense and sparse gradients:
  the norm over the dense entries plus the touched rows, computed on the coalesced rows (duplicates summed
  first, so it equals the norm of the dense gradient), never densifying;
* :func:`average_sparse_grads_` averages sparse gradients over the ranks of a process group by exchanging
  the touched rows (ids and values) with ``all_gather``: per step each rank receives the touched rows of
  every rank, R·n·(d + 1) numbers for n touched rows, against 2·V·d moved by a dense ring all-reduce.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist


class _GatherRows(torch.autograd.Function):
    """table (V, ...) and ids (N,) → table[ids] (N, ...); the table's gradient is sparse with N rows."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(ids)
        ctx.table_shape = table.shape
        return table[ids]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (ids,) = ctx.saved_tensors
        rows = torch.sparse_coo_tensor(ids[None, :], grad, ctx.table_shape, check_invariants=False)  # repeats add up
        return rows, None


def gather_rows(table: torch.Tensor, ids: torch.Tensor, sparse: bool = True) -> torch.Tensor:
    """``table[ids]`` for a table (V,) or (V, d) and ids of any shape; a sparse table gradient when ``sparse``."""
    if not (sparse and table.requires_grad and torch.is_grad_enabled()):
        return table[ids]
    flat = ids.reshape(-1)
    return _GatherRows.apply(table, flat).reshape(*ids.shape, *table.shape[1:])


def coalesce_grads_(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Sum the repeated rows of every sparse gradient in place (once per step, before norms and updates)."""
    for parameter in parameters:
        if parameter.grad is not None and parameter.grad.is_sparse and not parameter.grad.is_coalesced():
            parameter.grad = parameter.grad.coalesce()


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The 2-norm of all gradients together, dense and (coalesced) sparse, as a 0-d float32 tensor."""
    squares = []
    for parameter in parameters:
        grad = parameter.grad
        if grad is None:
            continue
        values = grad.coalesce()._values() if grad.is_sparse else grad
        squares.append(values.float().pow(2).sum())
    if not squares:
        return torch.zeros(())
    return torch.stack(squares).sum().sqrt()


def clip_grad_norm_(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale every gradient by min(1, max_norm / norm) as torch does; returns the norm before clipping.

    Sparse gradients are coalesced in place first; the scale is applied on the device without a host sync.
    """
    parameters = [p for p in parameters if p.grad is not None]
    coalesce_grads_(parameters)
    norm = grad_norm(parameters)
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for parameter in parameters:
        if parameter.grad.is_sparse:
            grad = parameter.grad
            parameter.grad = torch.sparse_coo_tensor(
                grad._indices(),
                grad._values() * scale.to(grad.dtype),
                grad.shape,
                is_coalesced=True,
                check_invariants=False,
            )
        else:
            parameter.grad.mul_(scale.to(parameter.grad.dtype))
    return norm


def average_sparse_grads_(parameters: list[torch.nn.Parameter], world_size: int) -> None:
    """Replace the sparse gradients of ``parameters`` by their mean over the ranks, exchanging touched rows only.

    Each gradient is coalesced (its n touched rows, each once); one ``all_gather`` tells every rank the
    others' counts for all the tables at once (the one host synchronisation of the exchange), then each
    table's ids (n,) and rows (n, ...) are all-gathered padded to the largest n, summed by coalescing and
    divided by ``world_size``, as DistributedDataParallel averages dense gradients.
    """
    grads = [p.grad.coalesce() for p in parameters]
    counts = torch.tensor([g._nnz() for g in grads], device=grads[0].device)
    all_counts = [torch.empty_like(counts) for _ in range(world_size)]
    dist.all_gather(all_counts, counts)
    sizes = torch.stack(all_counts).tolist()  # [rank][table]
    for table, (parameter, grad) in enumerate(zip(parameters, grads)):
        largest = max(row[table] for row in sizes)
        ids, values = grad._indices()[0], grad._values()
        padded_ids = torch.zeros(largest, dtype=ids.dtype, device=ids.device)
        padded_ids[: ids.numel()] = ids
        padded_values = values.new_zeros((largest, *values.shape[1:]))
        padded_values[: ids.numel()] = values
        all_ids = [torch.empty_like(padded_ids) for _ in range(world_size)]
        all_values = [torch.empty_like(padded_values) for _ in range(world_size)]
        dist.all_gather(all_ids, padded_ids)
        dist.all_gather(all_values, padded_values)
        merged_ids = torch.cat([i[: row[table]] for i, row in zip(all_ids, sizes)])
        merged_values = torch.cat([v[: row[table]] for v, row in zip(all_values, sizes)]) / world_size
        parameter.grad = torch.sparse_coo_tensor(
            merged_ids[None, :], merged_values, parameter.shape, check_invariants=False
        ).coalesce()
