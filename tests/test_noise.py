"""The noise distribution, its alias sampler (chi-square against q) and word2vec's subsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from nce_lm.errors import NceLmError
from nce_lm.pipeline.noise import NoiseDistribution, build_alias_table, keep_probabilities

COUNTS = np.array([7, 0, 1000, 250, 3, 40, 1, 1, 90_000, 12])


@pytest.mark.parametrize("power", [0.0, 0.75, 1.0])
def test_probabilities_follow_count_to_the_power(power: float) -> None:
    noise = NoiseDistribution(COUNTS, power=power)
    seen = COUNTS > 0
    weights = np.where(seen, COUNTS.astype(np.float64) ** power, 0.0)
    expected = weights / weights.sum()
    np.testing.assert_allclose(noise.probs.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(noise.log_probs.exp().numpy(), expected, rtol=1e-5)
    assert noise.log_probs[1] == -np.inf
    if power == 0.0:
        assert torch.allclose(noise.probs[seen], torch.full((int(seen.sum()),), 1 / seen.sum()))


def test_excluded_ids_are_never_drawn() -> None:
    noise = NoiseDistribution(COUNTS, exclude=[8])
    assert noise.probs[8] == 0
    assert not (noise.sample((100_000,), torch.Generator().manual_seed(0)) == 8).any()


def test_alias_sampler_passes_a_chi_square_test() -> None:
    counts = np.random.default_rng(0).zipf(1.5, size=500).clip(max=10_000)
    noise = NoiseDistribution(counts)
    draws = 2_000_000
    sample = noise.sample((draws,), torch.Generator().manual_seed(1))
    observed = np.bincount(sample.numpy(), minlength=len(counts))
    expected = noise.probs.double().numpy() * draws
    statistic = ((observed - expected) ** 2 / expected).sum()
    p_value = chi2.sf(statistic, df=len(counts) - 1)
    assert p_value > 1e-3, f"chi-square {statistic:.1f} on {len(counts) - 1} dof, p = {p_value:.2e}"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=40))
def test_alias_table_reproduces_the_distribution_exactly(weights: list[float]) -> None:
    probs = np.array(weights) / np.sum(weights)
    accept, alias = build_alias_table(probs)
    # P(i) = (accept[i] + Σ_{j: alias[j] = i} (1 − accept[j])) / V
    rebuilt = accept.copy()
    np.add.at(rebuilt, alias, 1.0 - accept)
    np.testing.assert_allclose(rebuilt / len(probs), probs, atol=1e-9)


def test_sample_shape_device_and_seed() -> None:
    noise = NoiseDistribution(COUNTS)
    first = noise.sample((3, 4), torch.Generator().manual_seed(5))
    again = noise.sample((3, 4), torch.Generator().manual_seed(5))
    assert first.shape == (3, 4) and first.dtype == torch.int64 and torch.equal(first, again)
    assert noise.to("cpu") is noise and noise.to("meta").probs.device.type == "meta"


@pytest.mark.parametrize(
    "counts, power, message",
    [([], 0.75, "non-empty"), ([1, -1], 0.75, "non-negative"), ([0, 0], 0.75, "no word"), ([1, 2], 1.5, "power")],
)
def test_bad_noise_settings(counts, power, message) -> None:
    with pytest.raises(NceLmError, match=message):
        NoiseDistribution(np.array(counts), power=power)


def test_keep_probabilities_match_word2vec_formula() -> None:
    counts = np.array([1_000_000, 10_000, 100, 0])
    t = 1e-4
    f = counts / counts.sum()
    keep = keep_probabilities(counts, t)
    for i in range(3):
        assert keep[i] == pytest.approx(min(1.0, (np.sqrt(f[i] / t) + 1) * t / f[i]))
    assert keep[0] < keep[1] < 1.0 == keep[2] and keep[3] == 1.0
    assert (keep_probabilities(counts, 0.0) == 1.0).all()
    with pytest.raises(NceLmError, match="threshold"):
        keep_probabilities(counts, -1.0)
