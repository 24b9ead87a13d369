"""What each objective estimates, computed exactly: expected losses on a tabular problem, with no sampling.

A tabular problem has C contexts with probabilities π(c) and a known p(w | c) over V words; a model is a free
table of scores s (C, V). The expected loss of an objective is a finite sum, taken here with the objective's own
:meth:`nce_lm.objectives.losses.Objective.loss`, so a change to a formula in ``objectives.py`` changes these numbers:

* binary objectives (``nce``, ``neg``) add one term per negative, so by linearity
  E[loss] = Σ_c π(c) [Σ_w p(w | c) T(c, w) + k Σ_w q(w) N(c, w)], with T the data term and N one noise term,
  each read off ``loss`` (N as the loss with one negative minus the loss with none);
* (k + 1)-way objectives (``ranking``, ``infonce``) depend on the k negatives only through how many copies of
  each word they hold, a multinomial vector n ~ Mult(k, q). Every such n is enumerated (C(k + V' − 1, V' − 1)
  of them over the V' words with q > 0: 23,426 for k = 50, V = 4), and a candidate drawn n_w times enters the
  softmax once with its score raised by log n_w, which adds exactly n_w copies of exp(score) to the
  normaliser. With ``remove_accidental_hits`` the column of the target is masked, all its copies at once;
* ``full``: Σ_c π(c) Σ_w p(w | c) (log Σ_v exp s(v, c) − s(w, c)).

:func:`minimise` finds the table that minimises the expected loss (L-BFGS in float64, to a gradient norm of
1e-7 by default); :func:`theoretical_optimum` states each optimum listed in :mod:`nce_lm.objectives.losses`,
and :func:`mutual_information` the exact I(w; c) the (k + 1)-way bounds are compared with (docs/objectives.md,
"The table, computed exactly"; ``scripts/theory_table.py`` prints it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import torch

from nce_lm.errors import NceLmError
from nce_lm.objectives.losses import BinaryNCE, FullSoftmax, Objective, RankingNCE


@dataclass(frozen=True)
class TabularProblem:
    """log p(w | c) (C, V) and the context probabilities π(c) (C,), float64; every p(w | c) > 0."""

    log_p: torch.Tensor
    context_probs: torch.Tensor

    @property
    def marginal(self) -> torch.Tensor:
        """p(w) = Σ_c π(c) p(w | c), (V,)."""
        return self.context_probs @ self.log_p.exp()

    def noise(self, power: float) -> torch.Tensor:
        """log q(w) (V,) for q ∝ p(w)^power, the noise the package builds from counts (1: unigram, 0: uniform)."""
        weights = self.marginal**power
        return (weights / weights.sum()).log()


def random_problem(contexts: int, words: int, spread: float = 1.5, seed: int = 0) -> TabularProblem:
    """A problem with a spread of probabilities: log p(w | c) = log softmax of N(0, spread²) scores, π uniform."""
    g = torch.Generator().manual_seed(seed)
    log_p = torch.log_softmax(torch.randn(contexts, words, generator=g, dtype=torch.float64) * spread, dim=1)
    return TabularProblem(log_p, torch.full((contexts,), 1.0 / contexts, dtype=torch.float64))


def mutual_information(problem: TabularProblem) -> float:
    """I(w; c) = Σ_c π(c) Σ_w p(w | c) log(p(w | c) / p(w)), in nats."""
    p = problem.log_p.exp()
    return (problem.context_probs[:, None] * p * (problem.log_p - problem.marginal.log())).sum().item()


def count_vectors(size: int, total: int) -> torch.Tensor:
    """Every vector of ``size`` non-negative integers summing to ``total``: (M, size) float64.

    M = C(total + size − 1, size − 1). Stars and bars: size − 1 bars placed among total + size − 1 slots.
    """
    rows = []
    for bars in combinations(range(total + size - 1), size - 1):
        edges = (-1, *bars, total + size - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(size)])
    return torch.tensor(rows, dtype=torch.float64)


def multinomial_log_probs(counts: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log Mult(n; k, q) for each row n of ``counts`` (M, V'), k = the row sum; log_q (V',) finite."""
    k = counts.sum(1)
    return torch.lgamma(k + 1) - torch.lgamma(counts + 1).sum(1) + (counts * log_q).sum(1)


def expected_loss(
    objective: Objective, scores: torch.Tensor, problem: TabularProblem, log_q: torch.Tensor
) -> torch.Tensor:
    """The exact expected loss (0-d) of ``objective`` for the score table ``scores`` (C, V), negatives w ~ q.

    ``log_q`` (V,) is log q(w); k is ``objective.num_noise``. See the module docstring for the three sums.
    """
    contexts, words = scores.shape
    weight = problem.context_probs[:, None] * problem.log_p.exp()  # (C, V): π(c) p(w | c)
    if isinstance(objective, FullSoftmax):
        return (
            weight * objective.loss(scores.reshape(-1), scores.repeat_interleave(words, 0)).reshape(contexts, words)
        ).sum()
    s = scores.reshape(-1)  # (C·V,): row (c, w)
    logq = log_q.repeat(contexts)  # (C·V,)
    if isinstance(objective, BinaryNCE):
        data_term = objective.loss(s, s[:, None][:, :0], logq, logq[:0])  # (C·V,): no negatives
        noise_term = objective.loss(s, s[:, None], logq, logq[:, None]) - data_term  # (C·V,): w as the negative
        weighted_noise = torch.where(torch.isfinite(log_q), log_q.exp() * noise_term.reshape(contexts, words), 0.0)
        expected_noise = objective.num_noise * weighted_noise.sum(1)  # (C,): words q cannot draw add nothing
        return (weight * data_term.reshape(contexts, words)).sum() + (problem.context_probs * expected_noise).sum()
    if not isinstance(objective, RankingNCE) or not objective.needs_noise:
        raise NceLmError(f"no exact expectation for objective {objective.name!r} with these options")
    support = torch.isfinite(log_q).nonzero().squeeze(1)  # (V',): words q can draw
    counts = count_vectors(len(support), objective.num_noise)  # (M, V')
    log_mult = multinomial_log_probs(counts, log_q[support])  # (M,)
    many = len(counts)
    # Rows (c, w0, n): the target's score, and each support word once with its score raised by log n_w.
    s_true = scores[:, :, None].expand(contexts, words, many).reshape(-1)  # (C·V·M,)
    s_noise = (scores[:, support][:, None, None, :] + counts.log()[None, None]).expand(contexts, words, many, -1)
    logq_true = log_q[None, :, None].expand(contexts, words, many).reshape(-1)
    hits = (torch.arange(words)[:, None] == support[None, :])[None, :, None, :].expand_as(s_noise)
    losses = objective.loss(
        s_true, s_noise.reshape(len(s_true), -1), logq_true, log_q[support], hits.reshape(len(s_true), -1)
    ).reshape(contexts, words, many)
    return (weight * (losses * log_mult.exp()).sum(2)).sum()


def minimise(
    objective: Objective, problem: TabularProblem, log_q: torch.Tensor, tolerance: float = 1e-7, max_rounds: int = 50
) -> tuple[torch.Tensor, float]:
    """The score table (C, V) that minimises :func:`expected_loss`, from all-zero scores, and its loss.

    L-BFGS with a strong-Wolfe line search in float64, restarted until the gradient's largest entry is below
    ``tolerance``; an :class:`NceLmError` if ``max_rounds`` restarts do not get there.
    """
    scores = torch.zeros_like(problem.log_p, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [scores],
        lr=1.0,
        max_iter=500,
        tolerance_grad=tolerance,
        tolerance_change=0.0,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = expected_loss(objective, scores, problem, log_q)
        loss.backward()
        return loss

    for _ in range(max_rounds):
        optimiser.step(closure)  # returns the loss where the step started, not where it ended
        if scores.grad.abs().max() < tolerance:
            with torch.no_grad():
                return scores.detach(), expected_loss(objective, scores, problem, log_q).item()
    raise NceLmError(f"{objective.name}: L-BFGS stopped at gradient {scores.grad.abs().max():.2e} > {tolerance:g}")


def theoretical_optimum(name: str, problem: TabularProblem, log_q: torch.Tensor, k: int) -> tuple[torch.Tensor, bool]:
    """What theory says the minimiser is: ``(target (C, V), up_to_constant)``, the constant one per context.

    For ``full`` the target is for log softmax(s), for the others for s itself.
    """
    log_p = problem.log_p
    if name in ("full", "nce"):
        return log_p, False
    if name == "neg":
        return log_p - math.log(k) - log_q, False
    if name in ("ranking", "sampled"):
        return log_p, True
    if name == "infonce":
        return log_p - log_q, True
    raise NceLmError(f"no theoretical optimum known for objective {name!r}")


def optimum_error(name: str, scores: torch.Tensor, target: torch.Tensor, up_to_constant: bool) -> float:
    """max over (c, w) of |estimate − target|, after one constant per context where only differences count."""
    estimate = torch.log_softmax(scores, dim=1) if name == "full" else scores
    diff = estimate - target
    if up_to_constant:
        diff = diff - diff.mean(1, keepdim=True)
    return diff.abs().max().item()
