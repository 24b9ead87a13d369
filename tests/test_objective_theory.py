"""What each objective converges to, computed exactly: no sampling, tolerances of 1e-3 nats or tighter.

Each expected loss is an exact sum over the data and over every multiset of negatives, taken with the
objective's own ``loss`` (:mod:`nce_lm.objectives.theory`), and minimised over a free score table by L-BFGS in float64.
The minimiser is compared with the optimum theory states (docs/objectives.md, "What each objective
estimates"). The problem (3 contexts × 4 words) has a non-uniform marginal, and k > 1 is always among the
cases, so that a formula that loses its −log q or its −log k term, or changes a sign, moves an optimum by
log q or log k, far more than the tolerance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from nce_lm.objectives.losses import Objective, build_objective
from nce_lm.objectives.theory import (
    TabularProblem,
    expected_loss,
    minimise,
    mutual_information,
    optimum_error,
    random_problem,
    theoretical_optimum,
)
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.skipgram import kernel as skipgram_kernel

TOLERANCE = 1e-3
PROBLEM = random_problem(3, 4, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few hundred numbers: threads cost more than they give
    yield
    torch.set_num_threads(threads)


def objective(name: str, power: float, k: int, problem: TabularProblem = PROBLEM, **options) -> Objective:
    if name == "full":
        return build_objective("full", None, 0)
    return build_objective(name, NoiseDistribution(problem.marginal, power), k, **options)


@pytest.mark.parametrize("power", [1.0, 0.75, 0.0])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("name", ["full", "nce", "neg", "ranking", "infonce"])
def test_the_minimiser_of_the_exact_expected_loss_is_the_stated_optimum(name: str, k: int, power: float) -> None:
    log_q = PROBLEM.noise(power)
    scores, loss = minimise(objective(name, power, k), PROBLEM, log_q)
    target, up_to_constant = theoretical_optimum(name, PROBLEM, log_q, k)
    assert optimum_error(name, scores, target, up_to_constant) < TOLERANCE
    # The optimum's own loss is the minimum: the target is a minimiser, not just near one.
    at_target = expected_loss(objective(name, power, k), target.clone(), PROBLEM, log_q).item()
    assert at_target == pytest.approx(loss, abs=1e-9)


def test_only_nce_ranking_and_full_estimate_log_p() -> None:
    """neg is off by log(k q(w)) and InfoNCE by −log q(w): both far from log p with k = 3 and unigram noise."""
    log_q = PROBLEM.noise(1.0)
    for name, far in (("nce", False), ("ranking", False), ("full", False), ("neg", True), ("infonce", True)):
        scores, _ = minimise(objective(name, 1.0, 3), PROBLEM, log_q)
        distance = optimum_error(name, scores, PROBLEM.log_p, name in ("ranking", "infonce"))
        assert (distance > 0.3) if far else (distance < TOLERANCE), name


def test_self_normalized_nce_gives_log_z_zero_in_every_context() -> None:
    scores, _ = minimise(objective("nce", 0.75, 3), PROBLEM, PROBLEM.noise(0.75))
    assert torch.logsumexp(scores, dim=1).abs().max() < TOLERANCE


def test_negative_sampling_is_binary_nce_when_k_q_is_one() -> None:
    """With Δ_nce = s − log(k q) and Δ_neg = s, the two losses are one function when k q(w) = 1 for every w."""
    words = 4
    uniform = NoiseDistribution(torch.ones(words), power=1.0)
    nce, neg = build_objective("nce", uniform, words), build_objective("neg", uniform, words)
    g = torch.Generator().manual_seed(0)
    s_true = torch.randn(6, generator=g, dtype=torch.float64)
    s_noise = torch.randn(6, words, generator=g, dtype=torch.float64)
    logq = torch.full((words,), -math.log(words), dtype=torch.float64)  # log q = −log k
    logq_true = logq[:1].expand(6)
    torch.testing.assert_close(
        nce.loss(s_true, s_noise, logq_true, logq), neg.loss(s_true, s_noise, logq_true, logq), rtol=0, atol=1e-15
    )
    # For any q, negative sampling on s is binary NCE on s + log(k q): the same loss, shifted scores.
    logq = torch.log_softmax(torch.randn(words, generator=g, dtype=torch.float64), 0)
    targets = torch.tensor([0, 1, 2, 3, 1, 0])
    shift = math.log(words) + logq
    torch.testing.assert_close(
        neg.loss(s_true, s_noise, logq[targets], logq),
        nce.loss(s_true + shift[targets], s_noise + shift, logq[targets], logq),
        rtol=0,
        atol=1e-12,
    )
    # And so its optimum is log p exactly, like NCE's.
    table = random_problem(3, words, seed=1)
    scores, _ = minimise(build_objective("neg", uniform, words), table, table.noise(0.0))
    assert (scores - table.log_p).abs().max() < TOLERANCE


@pytest.mark.parametrize("name", ["nce", "ranking", "infonce"])
def test_the_multiset_sum_is_the_expectation_over_ordered_k_tuples(name: str) -> None:
    """expected_loss against brute force: every ordered k-tuple of negatives, weighted by Π q, through ``loss``."""
    k, power = 3, 0.75
    log_q = PROBLEM.noise(power)
    scores = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loss_fn = objective(name, power, k)
    total = torch.zeros((), dtype=torch.float64)
    tuples = torch.tensor(list(itertools.product(range(4), repeat=k)))  # (4^k, k)
    tuple_probs = log_q[tuples].sum(1).exp()  # (4^k,)
    for c in range(3):
        for w in range(4):
            rows = len(tuples)
            losses = loss_fn.loss(
                scores[c, w].expand(rows), scores[c, tuples], log_q[w].expand(rows), log_q[tuples], tuples == w
            )
            total += PROBLEM.context_probs[c] * PROBLEM.log_p[c, w].exp() * (tuple_probs * losses).sum()
    assert expected_loss(loss_fn, scores, PROBLEM, log_q).item() == pytest.approx(total.item(), rel=1e-12)


def test_info_nce_bound_holds_with_the_marginal_as_noise_and_tightens_with_k() -> None:
    information = mutual_information(PROBLEM)
    bounds = []
    for k in (1, 2, 5, 10):
        _, loss = minimise(objective("infonce", 1.0, k), PROBLEM, PROBLEM.noise(1.0))
        bounds.append(math.log(k + 1) - loss)
    assert all(0 < b < information for b in bounds)
    assert bounds == sorted(bounds)


def test_info_nce_bound_is_no_bound_when_the_noise_is_not_the_marginal() -> None:
    """Zero mutual information (p(w | c) = p(w)): the bound is exactly 0 with q = p(w), positive with q uniform."""
    marginal = torch.tensor([0.55, 0.25, 0.15, 0.05], dtype=torch.float64)
    independent = TabularProblem(marginal.log().expand(3, 4).clone(), torch.full((3,), 1 / 3, dtype=torch.float64))
    assert mutual_information(independent) == pytest.approx(0.0, abs=1e-15)
    k = 2
    _, with_marginal = minimise(objective("infonce", 1.0, k, independent), independent, independent.noise(1.0))
    _, with_uniform = minimise(objective("infonce", 0.0, k, independent), independent, independent.noise(0.0))
    assert math.log(k + 1) - with_marginal == pytest.approx(0.0, abs=1e-9)
    assert math.log(k + 1) - with_uniform > 0.1  # "information" that does not exist


def test_removing_accidental_hits_biases_ranking_nce() -> None:
    """Dropping noise copies of the target (TensorFlow's default) moves the optimum away from log p + const."""
    log_q = PROBLEM.noise(1.0)
    scores, _ = minimise(objective("ranking", 1.0, 5, remove_accidental_hits=True), PROBLEM, log_q)
    assert optimum_error("ranking", scores, PROBLEM.log_p, up_to_constant=True) > 0.2


@pytest.mark.skipif(skipgram_kernel._kernel is None, reason="the C extension was not built")
@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_noise_shared_by_a_window_leaves_the_expected_loss_of_a_pair_unchanged(name: str) -> None:
    """Skip-gram with ``noise_per="window"``: the pairs of a window (one centre word, several context words)
    share one draw of k noise words, keyed by the window (the fused kernel's draws). Each pair's noise is still k
    i.i.d. draws from q, independent of the pair, so the mean loss per pair over many windows estimates the
    exact expected loss of the per-pair objective; sampling error from the spread of the windows' mean losses,
    which includes the correlation of a window's pairs. Catches keyed draws that leave q (nce and ranking fail
    when a tenth of one word's draws go to another) or, for the (k + 1)-way objectives, k draws of a window that
    are not independent of each other (binary losses are linear in their negatives: blind to that)."""
    k, power, windows, pairs = 3, 0.75, 40_000, 4
    noise = NoiseDistribution(PROBLEM.marginal, power)
    log_q = PROBLEM.noise(power)
    contexts, words = PROBLEM.log_p.shape
    scores = torch.randn(contexts, words, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    rng = np.random.default_rng(0)
    joint = (PROBLEM.context_probs[:, None] * PROBLEM.log_p.exp()).numpy()  # (C, V): π(c) p(w | c)
    centre = rng.choice(words, size=windows, p=joint.sum(0) / joint.sum())  # (M,) w ~ p(w)
    context_cdf = (joint / joint.sum(0)).T.cumsum(1)[centre]  # (M, C): c ~ p(c | w), so (c, w) ~ π(c) p(w | c)
    context = (rng.random((windows, pairs, 1)) > context_cdf[:, None, :]).sum(-1).clip(max=contexts - 1)  # (M, n)
    keys = 5 * np.arange(windows) + 11  # windows keyed as the trainer keys them: positions, with gaps
    drawn = torch.from_numpy(skipgram_kernel.draw_keyed_noise(noise, 2024, keys, k))  # (M, k)
    noise_ids = drawn.repeat_interleave(pairs, 0)  # (M·n, k): a window's pairs share its draw
    c, w = torch.from_numpy(context.reshape(-1)), torch.from_numpy(centre).repeat_interleave(pairs)  # (M·n,)
    losses = objective(name, power, k).loss(scores[c, w], scores[c[:, None], noise_ids], log_q[w], log_q[noise_ids])
    per_window = losses.double().view(windows, pairs).mean(1)  # (M,)
    standard_error = per_window.std().item() / math.sqrt(windows)
    exact = expected_loss(objective(name, power, k), scores, PROBLEM, log_q).item()
    assert abs(per_window.mean().item() - exact) < 4 * standard_error
