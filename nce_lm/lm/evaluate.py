"""Exact evaluation of a language model, whatever objective trained it.

Perplexity is exp of the summed negative log-likelihood over every token divided once by the token count,
with log p(w | c) = s(w, c) − log Z(c) and log Z(c) computed exactly over the whole vocabulary
(:func:`nce_lm.partition.exact_log_z`). The training objective's own loss is never reported as a
perplexity: for NCE it is not a likelihood at all.

Self-normalization diagnostics (Mnih & Teh 2012; Devlin et al. 2014):

* ``mean_log_z``, ``std_log_z``: statistics of the exact log Z(c) over the evaluated contexts;
* ``self_normalized_ppl``: exp of the mean of −s(w, c), the perplexity a server would report if it trusted
  exp(s) to be a probability (log Z = 0) and never computed Z — equal to ``ppl`` exactly when
  mean log Z = 0 (it is exp(mean(−s)) = ppl · exp(−mean log Z));
* ``is_log_z_error``: mean |log Ẑ(c) − log Z(c)| of the importance-sampling estimate with the training
  noise distribution (:func:`nce_lm.partition.importance_sampled_log_z`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nce_lm.lm.batches import batchify, windows
from nce_lm.lm.model import LanguageModel
from nce_lm.noise import NoiseDistribution
from nce_lm.partition import exact_log_z, importance_sampled_log_z


@torch.no_grad()
def evaluate_model(
    model: LanguageModel,
    ids: np.ndarray,
    batch_size: int,
    seq_len: int,
    noise: NoiseDistribution | None = None,
    is_samples: int = 1024,
    seed: int = 0,
) -> dict[str, Any]:
    """Exact perplexity and log Z statistics of ``model`` on the token ids (N,)."""
    device = model.output_bias.device
    was_training = model.training
    model.eval()
    streams = batchify(ids, min(batch_size, max(1, len(ids) // 2))).to(device)
    state = model.initial_state(streams.shape[0], device)
    nll = neg_score = log_z_sum = log_z_sq = is_error = 0.0
    tokens = 0
    generator = torch.Generator(device=device).manual_seed(seed)
    weight, bias = model.output_weight, model.output_bias
    for _, inputs, targets in windows(streams, seq_len):
        hidden, state = model(inputs, state)
        hidden = hidden.reshape(-1, hidden.shape[-1]).float()  # (B·T, d)
        flat_targets = targets.reshape(-1)
        s_true = (hidden * weight[flat_targets].float()).sum(-1) + bias[flat_targets].float()  # (B·T,)
        log_z = exact_log_z(hidden, weight.float(), bias.float()).double()  # (B·T,)
        nll += (log_z - s_true.double()).sum().item()
        neg_score += (-s_true.double()).sum().item()
        log_z_sum += log_z.sum().item()
        log_z_sq += (log_z * log_z).sum().item()
        if noise is not None:
            estimate, _ = importance_sampled_log_z(hidden, weight.float(), bias.float(), noise, is_samples, generator)
            is_error += (estimate.double() - log_z).abs().sum().item()
        tokens += flat_targets.numel()
    model.train(was_training)
    mean_log_z = log_z_sum / tokens
    return {
        "ppl": math.exp(nll / tokens),
        "nll": nll / tokens,
        "mean_log_z": mean_log_z,
        "std_log_z": math.sqrt(max(log_z_sq / tokens - mean_log_z**2, 0.0)),
        "self_normalized_ppl": math.exp(neg_score / tokens),
        "is_log_z_error": is_error / tokens if noise is not None else None,
        "tokens": tokens,
    }


def evaluate_lm(
    run_dir: str | os.PathLike[str], data: str | os.PathLike[str], device: str | None = None
) -> dict[str, Any]:
    """Evaluate the best model of a run folder on a text file (or a dataset name's test split)."""
    from nce_lm.lm.checkpoint import load_run
    from nce_lm.lm.train import resolve_path, token_ids

    run = load_run(Path(run_dir), which="best", device=device)
    path = resolve_path(str(data), "test")
    ids = token_ids(path, run.vocab, Path(run_dir) / "cache")
    config = run.config
    return evaluate_model(run.model, ids, config.eval_batch_size, config.seq_len, run.noise, config.is_samples, config.seed)
