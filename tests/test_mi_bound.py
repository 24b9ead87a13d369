"""The InfoNCE bound log(k + 1) − L as reported by skip-gram and ``lm eval``: value, condition, wording."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.lm import LMConfig
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import build_model
from nce_lm.objectives.losses import build_objective
from nce_lm.objectives.mi_bound import bound_line, info_nce_bound
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram


def test_the_bound_is_valid_only_with_the_marginal_as_noise() -> None:
    valid = info_nce_bound("infonce", 1.5, 9, noise_power=1.0)
    assert valid["mi_bound"] == pytest.approx(math.log(10) - 1.5, abs=1e-15) and valid["mi_bound_valid"]
    assert "a lower bound on I(w; c)" in bound_line(valid)
    for power, sample, why in ((0.75, 0.0, "unigram^0.75"), (1.0, 1e-3, "subsampling"), (0.0, 1e-4, "unigram^0")):
        got = info_nce_bound("ranking", 1.5, 9, noise_power=power, subsample=sample)
        assert got["mi_bound"] == valid["mi_bound"] and not got["mi_bound_valid"]
        assert "not a bound" in bound_line(got) and why in got["mi_bound_reason"]
    for binary in ("nce", "neg"):
        got = info_nce_bound(binary, 1.5, 9, noise_power=1.0)
        assert got["mi_bound"] is None and not got["mi_bound_valid"] and "none" in bound_line(got)


def test_skipgram_reports_the_bound_below_the_true_information(topic_corpus: Path) -> None:
    """Two topics of ten equally frequent words that co-occur only within a topic: I(centre; context) = log 2."""
    config = SkipGramConfig(
        dim=16,
        epochs=3,
        min_count=1,
        sample=0.0,
        batch_size=256,
        lr=0.05,
        threads=1,
        objective="infonce",
        noise_power=1.0,
        noise_samples=5,
    )
    metrics = train_skipgram([topic_corpus], config, progress=False).metrics
    assert metrics["mi_bound_valid"]
    assert metrics["mi_bound"] == pytest.approx(math.log(6) - metrics["final_loss"], abs=1e-12)
    assert 0.3 < metrics["mi_bound"] < math.log(2)
    subsampled = train_skipgram([topic_corpus], replace(config, sample=1e-3, epochs=1), progress=False).metrics
    assert not subsampled["mi_bound_valid"] and "subsampling" in subsampled["mi_bound_reason"]


def test_lm_info_nce_loss_of_a_constant_critic_is_log_k_plus_one() -> None:
    """All-zero scores: every candidate ties, so the InfoNCE loss is log(k + 1) exactly and the bound 0."""
    model = build_model(LMConfig(dim=8, layers=1, dropout=0.0).resolved(30), 30, torch.zeros(30))
    with torch.no_grad():
        model.output_weight.zero_()
        model.output_bias.zero_()
    noise = NoiseDistribution(np.arange(1, 31), power=1.0)
    ids = np.random.default_rng(0).integers(0, 30, size=81).astype(np.int32)
    info_nce = build_objective("infonce", noise, 7, seed=0)
    got = evaluate_model(model, ids, batch_size=4, seq_len=5, info_nce=info_nce)
    assert got["info_nce_loss"] == pytest.approx(math.log(8), abs=1e-6)
    assert evaluate_model(model, ids, batch_size=4, seq_len=5)["info_nce_loss"] is None
