"""The full softmax cross-entropy without a (N, V) logit matrix: vocabulary chunks, forward and backward.

For hidden states h (N, d), an output layer W (V, d), b (V,) and targets t (N,), the loss per token is

    ℓ_i = log Z(h_i) − s(t_i, h_i),    s(w, h) = h · W_w + b_w,    Z(h) = Σ_w exp(s(w, h)),

and its gradients, with p_iw = exp(s(w, h_i) − log Z(h_i)) the softmax and g_i the incoming gradient, are

    ∂/∂h_i = g_i (Σ_w p_iw W_w − W_{t_i}),  ∂/∂W_w = Σ_i g_i (p_iw − [t_i = w]) h_i,
    ∂/∂b_w = Σ_i g_i (p_iw − [t_i = w]).

``F.cross_entropy(F.linear(h, W, b), t)`` materialises the float32 logits (N, V), their log-softmax, and in
backward their gradient: for V = 10⁶ and N = 700 that is 2.8 GB each. :class:`ChunkedCrossEntropy` keeps none
of them. Forward streams the vocabulary in chunks of C rows and keeps only log Z (N,)
(:func:`nce_lm.objectives.partition.exact_log_z`); backward recomputes each chunk's scores (N, C), turns them into
g · p, adds g · p @ W_chunk to ∂h and writes ∂W, ∂b for the chunk's rows, and finally subtracts the target
terms with one gather and two index-adds. Memory beyond the parameters and their gradients is O(N · C);
the cost is three (N, d) × (d, V) products per step (2·N·V·d FLOPs each): forward, recompute, gradients —
the unchunked softmax needs two, plus the (N, V) traffic.

Precision: scores, log-sum-exps and gradients are computed in float32 (float64 for float64 inputs), with
autocast switched off inside, whatever dtype the inputs come in — a bf16 hidden state from
``torch.autocast`` is upcast, only a chunk of W at a time is cast (a float32 parameter not at all). The full
softmax is the exact reference the sampled objectives are measured against, so it does not trade precision
for bf16 matrix throughput; the gradients are returned in the inputs' dtypes.
"""

from __future__ import annotations

from typing import Any

import torch

from nce_lm.errors import NceLmError
from nce_lm.objectives.partition import compute_dtype, exact_log_z, scores

DEFAULT_CHUNK_SIZE = 8_192  # vocabulary rows per chunk: (N, 8192) float32 scores are 23 MB for N = 700


class ChunkedCrossEntropy(torch.autograd.Function):
    """log Z(h_i) − s(t_i, h_i) per token (N,), computed and differentiated in vocabulary chunks.

    Shapes: hidden (N, d), weight (V, d), bias (V,) or None, targets (N,) int64 in [0, V); returns (N,)
    in float32 (float64 for float64 inputs). Call through :func:`chunked_cross_entropy`.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk_size: int,
    ) -> torch.Tensor:
        dtype = compute_dtype(hidden, weight, bias)
        log_z = exact_log_z(hidden, weight, bias, chunk_size)  # (N,)
        with torch.autocast(hidden.device.type, enabled=False):
            s_true = (hidden.to(dtype) * weight[targets].to(dtype)).sum(-1)  # (N,)
            if bias is not None:
                s_true = s_true + bias[targets].to(dtype)
        ctx.save_for_backward(hidden, weight, bias, targets, log_z)
        ctx.chunk_size = chunk_size
        return log_z - s_true

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, log_z = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        dtype = log_z.dtype
        with torch.no_grad(), torch.autocast(hidden.device.type, enabled=False):
            g = grad_loss.to(dtype)  # (N,)
            h = hidden.to(dtype)  # (N, d)
            grad_hidden = torch.zeros_like(h) if need_hidden else None  # (N, d)
            grad_weight = torch.empty(weight.shape, dtype=dtype, device=weight.device) if need_weight else None
            grad_bias = torch.empty(weight.shape[0], dtype=dtype, device=weight.device) if need_bias else None
            for start in range(0, weight.shape[0], ctx.chunk_size):
                end = start + ctx.chunk_size
                w = weight[start:end].to(dtype)  # (C, d)
                chunk_scores = scores(h, w, bias[start:end] if bias is not None else None, dtype)  # (N, C)
                weighted = torch.exp_(chunk_scores.sub_(log_z[:, None])).mul_(g[:, None])  # g · p, (N, C)
                if grad_hidden is not None:
                    grad_hidden.addmm_(weighted, w)
                if grad_weight is not None:
                    torch.mm(weighted.T, h, out=grad_weight[start:end])
                if grad_bias is not None:
                    torch.sum(weighted, dim=0, out=grad_bias[start:end])
            # The target terms: −g_i W_{t_i} for h_i, −g_i h_i for W_{t_i}, −g_i for b_{t_i}.
            if grad_hidden is not None:
                grad_hidden.sub_(g[:, None] * weight[targets].to(dtype))
                grad_hidden = grad_hidden.to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.index_add_(0, targets, h * g[:, None], alpha=-1)
                grad_weight = grad_weight.to(weight.dtype)
            if grad_bias is not None:
                grad_bias.index_add_(0, targets, g, alpha=-1)
                grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """``F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="none")`` in O(N · chunk_size) memory.

    hidden (N, d), weight (V, d), bias (V,) or None, targets (N,) → loss (N,), float32 (float64 for float64
    inputs), differentiable in hidden, weight and bias. See :class:`ChunkedCrossEntropy`.
    """
    if chunk_size < 1:
        raise NceLmError(f"chunk_size must be positive, got {chunk_size}")
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise NceLmError(f"need hidden (N, d) and weight (V, d), got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    return ChunkedCrossEntropy.apply(hidden, weight, bias, targets, chunk_size)
