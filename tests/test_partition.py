"""Exact log Z against torch.logsumexp; the importance-sampling estimate of Z is unbiased."""

from __future__ import annotations

import math

import pytest
import torch

from nce_lm.errors import NceLmError
from nce_lm.objectives.partition import exact_log_z, importance_sampled_log_z
from nce_lm.pipeline.noise import NoiseDistribution


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 1000])
def test_exact_log_z_in_chunks_equals_one_logsumexp(chunk_size: int) -> None:
    g = torch.Generator().manual_seed(0)
    hidden, weight, bias = (
        torch.randn(5, 16, generator=g),
        torch.randn(333, 16, generator=g),
        torch.randn(333, generator=g),
    )
    expected = torch.logsumexp((hidden.double() @ weight.double().T + bias.double()), dim=1).float()
    torch.testing.assert_close(exact_log_z(hidden, weight, bias, chunk_size), expected)
    torch.testing.assert_close(exact_log_z(hidden, weight, None, chunk_size), torch.logsumexp(hidden @ weight.T, 1))
    with pytest.raises(NceLmError, match="chunk_size"):
        exact_log_z(hidden, weight, bias, 0)


def test_importance_sampled_z_is_unbiased_within_three_standard_errors() -> None:
    g = torch.Generator().manual_seed(1)
    vocab = 200
    hidden, weight = torch.randn(3, 8, generator=g) * 0.5, torch.randn(vocab, 8, generator=g)
    bias = torch.randn(vocab, generator=g)
    noise = NoiseDistribution(torch.arange(1, vocab + 1).float(), power=0.5)
    true_z = exact_log_z(hidden, weight, bias).double().exp()  # (3,)
    draws = 2000
    sampler = torch.Generator().manual_seed(2)
    z_hats = torch.stack(
        [importance_sampled_log_z(hidden, weight, bias, noise, 16, sampler)[0].double().exp() for _ in range(draws)]
    )  # (draws, 3)
    mean, stderr = z_hats.mean(0), z_hats.std(0) / draws**0.5
    assert ((mean - true_z).abs() < 3 * stderr).all(), (mean, true_z, stderr)
    # log Ẑ is biased low (Jensen), visibly so with only 16 samples.
    assert (z_hats.log().mean(0) < true_z.log()).all()


def test_importance_sampling_covers_only_the_words_q_can_draw() -> None:
    """E_q[exp(s)/q] = Σ_{w: q(w) > 0} exp(s(w)): an excluded word's share of Z is never seen. With q ∝ exp(s)
    on its support every draw gives that sum exactly, so the estimate is exact, and short of Z by word 0's share."""
    g = torch.Generator().manual_seed(5)
    hidden, weight, bias = torch.randn(1, 8, generator=g), torch.randn(30, 8, generator=g), torch.randn(30, generator=g)
    scores = (hidden @ weight.T + bias).squeeze(0)  # (30,)
    bias[0] += torch.logsumexp(scores[1:], 0) - scores[0]  # word 0, which q excludes, holds half of Z
    scores = (hidden @ weight.T + bias).squeeze(0).double()
    noise = NoiseDistribution(scores.exp(), power=1.0, exclude=[0])  # q ∝ exp(s) for words 1..29
    log_z_hat, stderr = importance_sampled_log_z(hidden, weight, bias, noise, 64, torch.Generator().manual_seed(6))
    support_log_z = torch.logsumexp(scores[1:], 0)
    assert log_z_hat.item() == pytest.approx(support_log_z.item(), abs=1e-5)
    assert stderr.item() < 1e-5
    missing = exact_log_z(hidden, weight, bias).item() - log_z_hat.item()
    assert missing == pytest.approx(math.log(2), abs=1e-5)


def test_reported_standard_error_matches_the_spread_of_estimates() -> None:
    g = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(1, 8, generator=g) * 0.3, torch.randn(500, 8, generator=g)
    noise = NoiseDistribution(torch.ones(500), power=0.0)
    sampler = torch.Generator().manual_seed(4)
    runs = [importance_sampled_log_z(hidden, weight, None, noise, 256, sampler) for _ in range(400)]
    log_z_hats = torch.stack([r[0] for r in runs]).squeeze(1)
    reported = torch.stack([r[1] for r in runs]).mean()
    assert reported.item() == pytest.approx(log_z_hats.std().item(), rel=0.2)


def test_exact_log_z_keeps_float64_and_ignores_autocast() -> None:
    """float64 inputs stay float64 (gradcheck of the full softmax relies on it); under bf16 autocast the
    scores of a bf16 hidden state are still computed in float32, not rounded to bf16 by the matmul."""
    g = torch.Generator().manual_seed(5)
    hidden, weight, bias = (
        torch.randn(4, 32, generator=g),
        torch.randn(300, 32, generator=g),
        torch.randn(300, generator=g),
    )
    exact = torch.logsumexp(hidden.double() @ weight.double().T + bias.double(), dim=1)
    got = exact_log_z(hidden.double(), weight.double(), bias.double(), chunk_size=64)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, exact, rtol=1e-12, atol=1e-12)
    low = hidden.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = exact_log_z(low, weight, bias, chunk_size=64)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, torch.logsumexp(low.float() @ weight.T + bias, dim=1))
