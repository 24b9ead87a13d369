"""The partition function Z(c) = Σ_w exp(s(w, c)): exactly and by importance sampling.

A self-normalized model (NCE with log Z fixed at 0; Mnih & Teh 2012) is only as good as its claim that
log Z(c) ≈ 0, so it has to be checked. :func:`exact_log_z` computes log Z(c) by log-sum-exp over the whole
vocabulary, chunk by chunk, so that a (B, V) score matrix never exists: memory is (B, chunk_size). Scores are
computed in float32 whatever the inputs (bf16 hidden states from autocast included), in float64 for float64
inputs; the full softmax (:mod:`nce_lm.objectives.chunked_softmax`) uses the same :func:`scores` and
:func:`exact_log_z`.

:func:`importance_sampled_log_z` estimates it from k samples w_j ~ q, the estimator behind the
importance-sampled softmax (Bengio & Senécal 2008):

    Ẑ(c) = (1/k) Σ_j exp(s(w_j, c)) / q(w_j),    E_q[Ẑ(c)] = Z(c)  (unbiased),

with standard error sd_j(exp(s_j)/q_j) / √k. Unbiased for the sum over the words q can draw: a word with
q(w) = 0 (excluded from the noise, or unseen) is never sampled, so E_q[Ẑ(c)] = Σ_{w: q(w) > 0} exp(s(w, c)),
short of Z(c) by whatever those words hold. Its logarithm is biased low (Jensen: E[log Ẑ] ≤ log Z), by
about Var(Ẑ)/(2 Z²) for large k; the relative standard error se(Ẑ)/Ẑ is the delta-method standard error
of log Ẑ.
"""

from __future__ import annotations

import math

import torch

from nce_lm.errors import NceLmError
from nce_lm.pipeline.noise import NoiseDistribution

DEFAULT_CHUNK_SIZE = 32_768


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float32, or float64 when any input is float64: the precision of scores and log-sum-exps."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def scores(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """s = hidden @ weight.T + bias computed in ``dtype``, autocast off: (B, d) × (n, d) + (n,) → (B, n).

    Only the (n, d) rows given are cast, so a vocabulary chunk costs O(n · d) beyond the (B, n) result.
    """
    with torch.autocast(hidden.device.type, enabled=False):
        result = hidden.to(dtype) @ weight.to(dtype).T
        if bias is not None:
            result = result + bias.to(dtype)
    return result


@torch.no_grad()
def exact_log_z(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """log Z(c) = log Σ_w exp(h_c · u_w + b_w) for each row of hidden (B, d); weight (V, d), bias (V,).

    Returns (B,) in float32 (float64 for float64 inputs; see :func:`compute_dtype`). Streams the vocabulary
    in chunks of ``chunk_size`` rows, combining partial sums with log-add-exp, so memory is
    O(B · chunk_size) whatever V is.
    """
    if chunk_size < 1:
        raise NceLmError(f"chunk_size must be positive, got {chunk_size}")
    dtype = compute_dtype(hidden, weight, bias)
    log_z = torch.full((hidden.shape[0],), float("-inf"), dtype=dtype, device=hidden.device)  # (B,)
    for start in range(0, weight.shape[0], chunk_size):
        end = start + chunk_size
        chunk_bias = bias[start:end] if bias is not None else None
        chunk_scores = scores(hidden, weight[start:end], chunk_bias, dtype)  # (B, chunk)
        log_z = torch.logaddexp(log_z, torch.logsumexp(chunk_scores, dim=1))
    return log_z


@torch.no_grad()
def importance_sampled_log_z(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    noise: NoiseDistribution,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampling estimate of log Z(c) from ``num_samples`` draws of q shared by the batch.

    Returns ``(log_z_hat, stderr)``, both float32 (B,): log Ẑ(c) with Ẑ = (1/k) Σ_j exp(s_j) / q(w_j), and
    se(Ẑ)/Ẑ, the standard error of Ẑ relative to Ẑ (the delta-method standard error of log Ẑ).
    """
    if num_samples < 2:
        raise NceLmError(f"importance sampling needs at least 2 samples, got {num_samples}")
    noise = noise.to(hidden.device)
    samples = noise.sample((num_samples,), generator)  # (K,)
    bias_k = bias[samples] if bias is not None else None
    log_ratio = scores(hidden, weight[samples], bias_k) - noise.log_probs[samples]  # (B, K)
    log_z_hat = torch.logsumexp(log_ratio, dim=1) - math.log(num_samples)  # (B,)
    relative = torch.exp(log_ratio - log_z_hat[:, None])  # (B, K): ratio / Ẑ, mean 1
    stderr = relative.std(dim=1, unbiased=True) / math.sqrt(num_samples)
    return log_z_hat, stderr
