"""The InfoNCE lower bound on mutual information, reported with the condition that makes it a bound.

For a (k + 1)-way loss L = −log softmax_0([f(w_0, c), f(w_1, c), …, f(w_k, c)]) with any critic f,

    I(w; c) ≥ log(k + 1) − E[L]

when w_1..w_k are independent draws from the *marginal* p(w) of the predicted words and none is removed
(van den Oord et al. 2018; Poole et al. 2019). InfoNCE's loss is this with f = s; ranking NCE's with
f = s − log q, so both give the bound. With any other noise q it is not a bound: log(k + 1) − E[L] can exceed
I (an exact case with I = 0 is in tests/test_objective_theory.py). In this package the noise is the unigram
marginal exactly when its power is 1 (``--noise-power 1``); binary NCE and negative sampling have no such loss.

:func:`info_nce_bound` returns the three metric fields every report uses, and :func:`bound_line` the line
a command prints.
"""

from __future__ import annotations

import math
from typing import Any

from nce_lm.objectives.kinds import objective_kind


def info_nce_bound(
    objective: str, mean_loss: float | None, k: int, noise_power: float, subsample: float = 0.0
) -> dict[str, Any]:
    """``{"mi_bound": log(k + 1) − mean_loss or None, "mi_bound_valid": bool, "mi_bound_reason": str}``.

    ``mean_loss`` is the mean (k + 1)-way loss in nats of ``objective`` (None where none was computed), with k
    negatives from q ∝ count^``noise_power``. They are draws from the marginal of the predicted words when the
    power is 1 and the words were not subsampled (``subsample`` > 0 keeps frequent words less often, so their
    marginal is no longer the count's).
    """
    if not objective_kind(objective).bounds_mutual_information or mean_loss is None:
        return {
            "mi_bound": None,
            "mi_bound_valid": False,
            "mi_bound_reason": f"{objective}'s loss is binary, not a (k + 1)-way InfoNCE loss",
        }
    value = math.log(k + 1) - mean_loss
    why_not = []
    if noise_power != 1.0:
        why_not.append(f"the noise is unigram^{noise_power:g}, not the marginal")
    if subsample > 0:
        why_not.append(f"subsampling (sample {subsample:g}) changes the marginal")
    if why_not:
        reason = f"not a bound: {'; '.join(why_not)}, so log(k + 1) − L can exceed I(w; c)"
    else:
        reason = "a lower bound on I(w; c): negatives drawn from the marginal p(w) (noise power 1)"
    return {"mi_bound": value, "mi_bound_valid": not why_not, "mi_bound_reason": reason}


def bound_line(metrics: dict[str, Any]) -> str:
    """One line saying log(k + 1) − L and whether it bounds I(w; c), from :func:`info_nce_bound`'s fields."""
    if metrics.get("mi_bound") is None:
        return f"InfoNCE bound: none ({metrics['mi_bound_reason']})"
    return f"InfoNCE log(k + 1) − L = {metrics['mi_bound']:.4f} nats: {metrics['mi_bound_reason']}"
