"""Exact evaluation of a language model, whatever objective trained it (docs/lm.md, "Evaluation: always exact").

Perplexity is exp of the summed negative log-likelihood over every token divided once by the token count,
with log p(w | c) = s(w, c) − log Z(c) and log Z(c) computed exactly over the whole vocabulary
(:func:`nce_lm.objectives.partition.exact_log_z`); the training objective's own loss is never reported as one.
Every token with a predecessor is scored once: the N − 1 targets are cut into B rows that overlap by one token,
each from the model's initial state (the conventional context, Zaremba et al. 2014), and the remainder
continues the last row. Sums stay on the device in float64; under torchrun (``ctx``) each rank evaluates a
contiguous share of the rows and the sums are all-reduced.

Self-normalization diagnostics (Mnih & Teh 2012; Devlin et al. 2014): ``mean_log_z``, ``std_log_z``,
``self_normalized_ppl`` = exp(mean −s) = ppl · exp(−mean log Z), and ``is_log_z_error`` of the
importance-sampling estimate (:func:`nce_lm.objectives.partition.importance_sampled_log_z`), its k samples
per window drawn from ``seed`` and shared by the window's rows, on every rank alike. ``info_nce_loss`` feeds
:mod:`nce_lm.objectives.mi_bound` (critic s − log q where the scores estimate log p, s for neg and infonce).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nce_lm.errors import NceLmError
from nce_lm.lm.batches import windows
from nce_lm.lm.checkpoint import load_run
from nce_lm.lm.data import eval_path, token_ids
from nce_lm.lm.model import LanguageNetwork, State
from nce_lm.objectives.losses import OBJECTIVES, Objective, build_objective
from nce_lm.objectives.mi_bound import info_nce_bound
from nce_lm.objectives.partition import exact_log_z, importance_sampled_log_z
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.training.distributed import DistributedContext

# Positions in the float64 vector of sums.
_NLL, _NEG_SCORE, _LOG_Z, _LOG_Z_SQ, _IS_ERROR, _INFO_NCE, _TOKENS = range(7)


def eval_streams(ids: np.ndarray, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N,) → ``(streams (B, L + 1), tail (R + 1,))``, int64, covering all N − 1 targets once.

    B = min(batch_size, N − 1) rows of L = (N − 1) // B targets; row r is ids[r·L : (r + 1)·L + 1], so it
    ends on the token row r + 1 starts from. The tail ids[B·L :] continues the last row: its R = N − 1 − B·L
    < B targets (R = 0: the tail is one token and predicts nothing).
    """
    targets = len(ids) - 1
    if targets < 1 or batch_size < 1:
        raise NceLmError(f"{len(ids)} tokens in {batch_size} streams: nothing to evaluate")
    rows = min(batch_size, targets)
    length = targets // rows
    all_ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    streams = all_ids[: rows * length + 1].unfold(0, length + 1, length).contiguous()  # (B, L + 1)
    return streams, all_ids[rows * length :]


def _exp(mean_nll: float) -> float:
    """A perplexity exp(mean_nll): infinity past the float range (a diverged model), not an OverflowError."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


def eval_cache_dir(run_dir: Path) -> Path:
    """Where ``lm eval`` caches token ids: the run's own ``cache`` folder, or, when the run folder cannot be
    written (a shared, read-only run), ``$XDG_CACHE_HOME/nce_lm/eval/<hash of the run's path>``."""
    own = run_dir / "cache"
    if os.access(own if own.is_dir() else run_dir, os.W_OK):
        return own
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nce_lm" / "eval" / hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]


def _last_row(state: State) -> State:
    """The state (each (layers, 1, d)) of the last of a batch of rows; None stays None."""
    return None if state is None else (state[0][:, -1:].contiguous(), state[1][:, -1:].contiguous())


class _Sums:
    """An evaluation's float64 sums on the device, at ``_NLL`` … ``_TOKENS``, added window by window: the exact
    terms; the importance-sampling error of log Z with ``noise`` (``is_samples`` samples per window, drawn from a
    generator seeded ``seed``); the loss of ``info_nce`` when given; and each window's log Z (B·T,) appended to
    ``log_z_sink`` when one is given. With ``log_probs`` (hidden (B·T, d) → normalized log-probabilities (B·T, V))
    the scores are its log-probabilities instead of the model's output layer's, so log Z = 0."""

    def __init__(
        self,
        device: torch.device,
        noise: NoiseDistribution | None,
        is_samples: int,
        seed: int,
        info_nce: Objective | None,
        log_z_sink: list[torch.Tensor] | None,
        log_probs: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.values = torch.zeros(7, dtype=torch.float64, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.noise, self.is_samples, self.info_nce, self.log_z_sink = noise, is_samples, info_nce, log_z_sink
        self.log_probs = log_probs

    def add(self, model: LanguageNetwork, hidden: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one window's hidden states (B·T, d) and targets (B·T,)."""
        sums, weight, bias = self.values, model.output_weight, model.output_bias
        if self.log_probs is not None:
            s_true = self.log_probs(hidden).gather(1, targets[:, None]).squeeze(1).double()  # (B·T,)
            log_z = torch.zeros_like(s_true)
        else:
            s_true = (hidden.double() * weight[targets].double()).sum(-1) + bias[targets].double()  # (B·T,)
            log_z = exact_log_z(hidden, weight, bias).double()  # (B·T,)
        sums[_NLL] += (log_z - s_true).sum()
        sums[_NEG_SCORE] -= s_true.sum()
        sums[_LOG_Z] += log_z.sum()
        sums[_LOG_Z_SQ] += (log_z * log_z).sum()
        if self.log_z_sink is not None:
            self.log_z_sink.append(log_z.float().cpu())
        if self.noise is not None:
            estimate, _ = importance_sampled_log_z(hidden, weight, bias, self.noise, self.is_samples, self.generator)
            sums[_IS_ERROR] += (estimate.double() - log_z).abs().sum()
        if self.info_nce is not None:
            sums[_INFO_NCE] += self.info_nce(hidden, weight, bias, targets).double().sum()
        sums[_TOKENS] += targets.numel()

    def figures(self, ctx: DistributedContext | None) -> dict[str, Any]:
        """:func:`evaluate_model`'s figures from the sums, all-reduced over the ranks when ``ctx`` is given."""
        if ctx is not None:
            ctx.all_reduce_sum_(self.values)
        nll, neg_score, log_z_sum, log_z_sq, is_error, info_nce_sum, tokens = self.values.tolist()  # one host sync
        mean_log_z = log_z_sum / tokens
        return {
            "ppl": _exp(nll / tokens),
            "nll": nll / tokens,
            "mean_log_z": mean_log_z,
            "std_log_z": math.sqrt(max(log_z_sq / tokens - mean_log_z**2, 0.0)),
            "self_normalized_ppl": _exp(neg_score / tokens),
            "is_log_z_error": is_error / tokens if self.noise is not None else None,
            "info_nce_loss": info_nce_sum / tokens if self.info_nce is not None else None,
            "tokens": int(tokens),
        }


@torch.no_grad()
def evaluate_model(
    model: LanguageNetwork,
    ids: np.ndarray,
    batch_size: int,
    seq_len: int,
    noise: NoiseDistribution | None = None,
    is_samples: int = 1024,
    seed: int = 0,
    progress: bool = False,
    label: str = "eval",
    ctx: DistributedContext | None = None,
    info_nce: Objective | None = None,
    log_z_sink: list[torch.Tensor] | None = None,
    log_probs: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Exact perplexity and log Z statistics of ``model`` on the token ids (N,), over all N − 1 targets.

    ``batch_size`` rows read ``seq_len`` tokens at a time (see the module docstring for what that means for
    the context). ``noise`` adds the importance-sampling error of log Z with ``is_samples`` samples.
    ``info_nce`` (a ranking or InfoNCE objective) adds its mean loss on every target, ``info_nce_loss``.
    ``progress`` shows a tqdm bar described as ``label`` (on rank 0 only). Under torchrun, ``ctx`` splits
    the rows among the ranks and all-reduces the sums: every rank calls this and gets the same dict.
    ``log_z_sink`` (a list) receives each window's log Z, (B·T,) float32 on the CPU: a host copy per window.
    ``log_probs`` replaces the model's output layer: hidden states (B·T, d) → normalized log-probabilities
    (B·T, V), e.g. ``torch.nn.AdaptiveLogSoftmaxWithLoss.log_prob`` (scripts/bench_lm.py); every token is scored
    the same way, and log Z is 0.
    """
    device = model.output_bias.device
    rank, world_size = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    streams, tail = eval_streams(ids, batch_size)
    rows = streams.shape[0]
    first, last = rows * rank // world_size, rows * (rank + 1) // world_size  # this rank's rows
    parts = [streams[first:last]] if last > first else []
    if last == rows and len(tail) > 1:
        parts.append(tail[None])  # continues the last row, which this rank holds
    total = sum(-(-(part.shape[1] - 1) // seq_len) for part in parts)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="window", leave=False, disable=not (progress and rank == 0))
    sums = _Sums(device, noise, is_samples, seed, info_nce, log_z_sink, log_probs)
    was_training = model.training
    model.eval()
    try:
        state = model.initial_state(last - first, device)
        for index, part in enumerate(parts):
            if index == 1:
                state = _last_row(state)
            for _, inputs, targets in windows(part.to(device), seq_len):
                hidden, state = model(inputs, state)
                hidden = hidden.reshape(-1, hidden.shape[-1])  # (B·T, d)
                sums.add(model, hidden, targets.reshape(-1))
                bar.update(1)
    finally:
        model.train(was_training)
        bar.close()
    return sums.figures(ctx)


def evaluate_lm(
    run_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    device: str | None = None,
    progress: bool = False,
    errors: str = "strict",
    log_z_sink: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Evaluate the best model of a run folder on a text file (or a dataset's or folder's test split);
    ``log_z_sink`` as for :func:`evaluate_model`."""
    run = load_run(Path(run_dir), which="best", device=device)
    ids = token_ids(eval_path(str(data)), run.vocab, eval_cache_dir(Path(run_dir)), errors, progress)
    config = run.config
    # The critic that matches the scores: s − log q (ranking NCE) where they estimate log p, s (InfoNCE) otherwise.
    critic = "ranking" if OBJECTIVES[config.objective].models_log_probability else "infonce"
    info_nce = build_objective(critic, run.noise, config.noise_samples, seed=config.seed + 1)
    settings = (config.eval_batch_size, config.seq_len, run.noise, config.is_samples, config.seed)
    metrics = evaluate_model(run.model, ids, *settings, progress=progress, info_nce=info_nce, log_z_sink=log_z_sink)
    metrics.update(info_nce_bound(critic, metrics["info_nce_loss"], config.noise_samples, config.noise_power))
    return metrics
