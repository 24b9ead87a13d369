"""What each objective converges to, shown on a problem small enough to know the answer.

An unconstrained table of scores s(w, c) (8 contexts × 50 words) is fitted by Adam to data drawn from a
known p(w | c), with noise q = the data's unigram. At the population optimum:

* ``full`` and ``ranking`` give log softmax(s) = log p (ranking NCE is consistent up to the normalizer,
  Ma & Collins 2018);
* ``nce`` gives s − log Z = log p, and self-normalized NCE (log Z = 0) gives s = log p itself, so that
  Σ_w exp(s(w, c)) = 1 without ever computing it (Mnih & Teh 2012);
* ``neg`` gives s = log p − log(k q): shifted PMI (Levy & Goldberg 2014), *not* log p;
* ``infonce`` gives s = log p − log q + const(c) (van den Oord et al. 2018).

The error reported is Σ_w p(w | c) |ŝ(w, c) − target(w, c)| averaged over contexts: weighting by p keeps
the rare words, which the finite sample barely sees, from dominating. Tolerance 0.1 for the large budget
(k = 50, 1500 steps of 1024 examples): about 1.5 million examples over 400 cells leave a sampling error of
a few hundredths in log p for the words that carry the weight, and the learning-rate schedule leaves a
similar optimisation error; measured errors are 0.02–0.06. A small budget (k = 5, 300 steps) must do
worse, which shows the estimate improving as k and the number of steps grow.

The fits run on one thread: on matrices this small, thread hand-offs cost more than the arithmetic, and on
a loaded two-core machine 50 times more. Each fit is cached, so a test that reuses one pays nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import pytest
import torch

from nce_lm.noise import NoiseDistribution
from nce_lm.objectives import Objective, build_objective

CONTEXTS, WORDS, BATCH = 8, 50, 1024
SMALL, LARGE = (5, 300), (50, 1500)
TOLERANCE = 0.1


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def problem() -> tuple[torch.Tensor, NoiseDistribution]:
    """log p(w | c) (C, V) with a spread of probabilities, and q = the marginal unigram of the data."""
    g = torch.Generator().manual_seed(0)
    log_p = torch.log_softmax(torch.randn(CONTEXTS, WORDS, generator=g) * 1.5, dim=1)
    return log_p, NoiseDistribution(log_p.exp().mean(0) * 1e6, power=1.0)


@functools.cache
def data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` batches of (context, word) pairs drawn from p(w | c): contexts and targets (steps, B)."""
    log_p, _ = problem()
    g = torch.Generator().manual_seed(2)
    contexts = torch.randint(0, CONTEXTS, (steps, BATCH), generator=g)
    cumulative = log_p.exp().cumsum(1)  # (C, V): inverse-CDF sampling of every batch at once
    uniform = torch.rand(steps, BATCH, generator=g) * cumulative[contexts, -1]
    targets = torch.searchsorted(cumulative[contexts], uniform[..., None]).squeeze(-1).clamp_max(WORDS - 1)
    return contexts, targets


@functools.cache
def fit(name: str, k: int, steps: int, **options) -> tuple[torch.Tensor, Objective]:
    """Fit a (C, V) score table with objective ``name``; returns the scores (float64) and the objective."""
    log_p, noise = problem()
    objective = build_objective(name, noise, k, generator=torch.Generator().manual_seed(1), **options)
    scores = torch.zeros(CONTEXTS, WORDS, requires_grad=True)
    optimizer = torch.optim.Adam([scores, *objective.parameters()], lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    for contexts, targets in zip(*data(steps)):
        rows = scores[contexts]  # (B, V)
        s_true = rows.gather(1, targets[:, None]).squeeze(1)  # (B,)
        noise_ids = objective.sample_noise(targets)
        if noise_ids is None:  # the full softmax scores the whole vocabulary
            loss = objective.loss(s_true, rows, None, None)
        else:
            hits = targets[:, None] == noise_ids[None, :]  # (B, K)
            loss = objective.loss(s_true, rows[:, noise_ids], noise.log_probs[targets], noise.log_probs[noise_ids], hits)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        schedule.step()
    return scores.detach().double(), objective


def weighted_error(estimate: torch.Tensor, target: torch.Tensor, up_to_constant: bool = False) -> float:
    log_p, _ = problem()
    p = log_p.double().exp()
    diff = estimate - target
    if up_to_constant:
        diff = diff - (p * diff).sum(1, keepdim=True)
    return (p * diff.abs()).sum(1).mean().item()


def error_of(name: str, k: int, steps: int, **options) -> float:
    scores, objective = fit(name, k, steps, **options)
    log_p, noise = problem()
    log_p, log_q = log_p.double(), noise.log_probs.double()
    if name in ("full", "ranking"):
        return weighted_error(torch.log_softmax(scores, 1), log_p)
    if name == "nce":
        log_z = objective.log_z.item() if objective.log_z is not None else 0.0
        return weighted_error(scores - log_z, log_p)
    if name == "neg":
        return weighted_error(scores, log_p - math.log(k) - log_q)
    assert name == "infonce"
    return weighted_error(scores, log_p - log_q, up_to_constant=True)


@pytest.mark.parametrize(
    "name, options",
    [("full", {}), ("ranking", {}), ("nce", {}), ("nce", {"normalizer": "learned"}), ("neg", {}), ("infonce", {})],
)
def test_each_objective_recovers_what_theory_says(name: str, options: dict) -> None:
    large = error_of(name, *LARGE, **options)
    assert large < TOLERANCE
    if name != "full":  # the full softmax has no k; its small-budget error is already small
        assert error_of(name, *SMALL, **options) > large


def test_self_normalized_nce_drives_log_z_to_zero() -> None:
    scores, _ = fit("nce", *LARGE)
    log_z = torch.logsumexp(scores, dim=1)  # (C,)
    assert log_z.abs().max() < 0.15
    untrained_gap = math.log(WORDS)  # all-zero scores: log Z = log V
    assert log_z.abs().max() < untrained_gap / 10


def test_negative_sampling_does_not_recover_log_p() -> None:
    scores, _ = fit("neg", *LARGE)
    log_p, _ = problem()
    assert weighted_error(scores, log_p.double()) > 5 * TOLERANCE  # off by log(k q(w)), which varies with w


def test_removing_accidental_hits_biases_ranking_nce() -> None:
    """Dropping noise copies of the target (TensorFlow's default) breaks consistency when k q(w) is large."""
    assert error_of("ranking", *LARGE, remove_accidental_hits=True) > 2 * error_of("ranking", *LARGE)
