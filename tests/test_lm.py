"""The language model: perplexity bounds, training with every objective, resume, failures.

Exact evaluation against brute force is in test_lm_evaluate.py.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import evaluate_lm, train_lm
from nce_lm.lm.checkpoint import load_run
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import build_model
from nce_lm.objectives.losses import objective_class
from nce_lm.pipeline.noise import NoiseDistribution


def test_all_zero_scores_give_perplexity_equal_to_the_vocabulary_size(tiny_lm) -> None:
    model = build_model(tiny_lm().resolved(50), 50, torch.zeros(50))
    with torch.no_grad():
        model.output_weight.zero_()
        model.output_bias.zero_()
    ids = np.random.default_rng(2).integers(0, 50, size=101).astype(np.int32)
    got = evaluate_model(model, ids, batch_size=4, seq_len=5)
    assert got["ppl"] == pytest.approx(50, rel=1e-6)
    assert got["mean_log_z"] == pytest.approx(math.log(50), rel=1e-6) and got["std_log_z"] < 1e-5
    assert got["self_normalized_ppl"] == pytest.approx(1.0)


@pytest.mark.parametrize("objective", ["nce", "neg", "ranking", "infonce", "full"])
def test_every_objective_lowers_the_exact_perplexity(tiny_lm, tmp_path: Path, objective: str) -> None:
    config = tiny_lm(objective=objective, epochs=3, optimizer="adam", lr=0.02)
    metrics = train_lm(config, tmp_path / "run")
    vocab_size = metrics["vocab_size"]
    first, last = metrics["history"][0]["valid"]["ppl"], metrics["history"][-1]["valid"]["ppl"]
    assert last < first
    kind = objective_class(objective)
    if kind.models_log_probability:  # nce, ranking, full estimate log p; neg and infonce log p − log q (+ const)
        assert last < vocab_size / 2 and metrics["test"]["ppl"] < vocab_size / 2
    if kind.self_normalized:  # nce: log Z near 0 (+0.20 here; neg +1.40, the full softmax +1.44; the
        # correction log q^0.75 + log k gives +0.91, log q alone −1.96)
        assert abs(metrics["test"]["mean_log_z"]) < 0.3


def test_untrained_model_starts_self_normalized(tiny_lm) -> None:
    config = tiny_lm().resolved(40)
    counts = np.arange(1, 41)
    noise = NoiseDistribution(counts, config.noise_power)
    torch.manual_seed(0)
    model = build_model(config, 40, noise.log_probs)
    ids = np.random.default_rng(3).integers(0, 40, size=201).astype(np.int32)
    got = evaluate_model(model, ids, batch_size=4, seq_len=10)
    # bias = log q and weights of ±0.1: s = log q + ε, log Z ≈ E_q[ε] + Var_q(ε)/2: mean 3e-5, spread 1.1e-4 here;
    # weights of ±1 in the LSTM give a spread of 5e-3, in the output layer 1.1e-3
    assert abs(got["mean_log_z"]) < 5e-4 and got["std_log_z"] < 5e-4


def test_importance_sampled_log_z_error_is_its_exact_expectation(tiny_lm) -> None:
    """With zero output weights every context scores s = b, so the K noise words drawn for a window give each of
    its tokens the error e = |log Ẑ − log Z|, Ẑ = (1/K) Σ_j exp(b_j) / q(w_j). The mean μ and deviation σ of e
    under q^K are summed exactly over all V^K draws; the reported mean over windows of at most T tokens lies
    within 5 σ √(T / tokens) of μ (its variance is σ² Σ t_w² / (Σ t_w)² ≤ σ² T / Σ t_w)."""
    vocab, samples, seq_len = 10, 3, 5
    model = build_model(tiny_lm().resolved(vocab), vocab, torch.zeros(vocab))
    rng = np.random.default_rng(4)
    bias = torch.from_numpy(rng.normal(0.0, 1.0, vocab))
    noise = NoiseDistribution(np.arange(1, vocab + 1) ** 2, 1.0)
    with torch.no_grad():
        model.output_weight.zero_()
        model.output_bias.copy_(bias)
    log_q = noise.log_probs.double()
    draws = torch.tensor(list(itertools.product(range(vocab), repeat=samples)))  # (V^K, K)
    chance = log_q[draws].sum(1).exp()  # (V^K,)
    log_z_hat = torch.logsumexp(bias[draws] - log_q[draws], dim=1) - math.log(samples)
    error = (log_z_hat - torch.logsumexp(bias, 0)).abs()
    mean = float((chance * error).sum())
    sd = math.sqrt(float((chance * (error - mean) ** 2).sum()))
    ids = rng.integers(0, vocab, size=2001).astype(np.int32)
    got = evaluate_model(model, ids, batch_size=1, seq_len=seq_len, noise=noise, is_samples=samples)
    assert got["tokens"] == 2000 and float(chance.sum()) == pytest.approx(1.0)
    assert got["is_log_z_error"] == pytest.approx(mean, abs=5 * sd * math.sqrt(seq_len / got["tokens"]))


def test_transformer_trains(tiny_lm, tmp_path: Path) -> None:
    metrics = train_lm(tiny_lm(model="transformer", optimizer="adam", lr=1e-2, heads=2), tmp_path / "run")
    assert metrics["history"][-1]["valid"]["ppl"] < metrics["history"][0]["valid"]["ppl"]
    assert metrics["test"]["ppl"] < metrics["vocab_size"] / 2


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_no_position_sees_a_later_token(tiny_lm, model: str) -> None:
    """Causality, exactly: changing the token at position 6 of a window leaves the log-probabilities of positions
    0-5 bit-identical and changes those from 6 on (a Transformer without its causal mask fails the first)."""
    vocab = 30
    torch.manual_seed(0)
    lm = build_model(tiny_lm(model=model, heads=2).resolved(vocab), vocab, torch.zeros(vocab)).eval()
    inputs = torch.randint(0, vocab, (3, 10))
    changed = inputs.clone()
    changed[:, 6] = (inputs[:, 6] + 1) % vocab

    def log_probs(window: torch.Tensor) -> torch.Tensor:  # (B, T, V)
        hidden, _ = lm(window)
        return torch.log_softmax(hidden @ lm.output_weight.T + lm.output_bias, dim=-1)

    with torch.no_grad():
        before, after = log_probs(inputs), log_probs(changed)
    assert torch.equal(before[:, :6], after[:, :6])
    assert all(not torch.allclose(before[:, t], after[:, t]) for t in range(6, 10))


def test_resumed_run_ends_where_an_uninterrupted_one_does(tiny_lm, lm_corpus: Path, tmp_path: Path) -> None:
    config = tiny_lm(epochs=3, dropout=0.3, tie_weights=True)
    straight = train_lm(config, tmp_path / "straight")
    train_lm(config.with_changes(epochs=1), tmp_path / "stopped")
    resumed = train_lm(config, tmp_path / "stopped", resume=True)
    assert [h["valid"]["ppl"] for h in resumed["history"]] == [h["valid"]["ppl"] for h in straight["history"]]
    assert resumed["test"]["ppl"] == straight["test"]["ppl"]
    assert evaluate_lm(tmp_path / "stopped", lm_corpus / "test.txt")["ppl"] == pytest.approx(straight["test"]["ppl"])


def test_nan_loss_stops_with_an_error_and_keeps_the_last_checkpoint(tiny_lm, tmp_path: Path, monkeypatch) -> None:
    from nce_lm.lm import train as train_module

    run = tmp_path / "run"
    train_lm(tiny_lm(epochs=1), run)
    before = (run / "last.pt").read_bytes()
    monkeypatch.setattr(
        train_module.TrainingModule,
        "forward",
        lambda self, inputs, targets, state, noise_ids=None: (torch.tensor(float("nan"), requires_grad=True), state),
    )
    with pytest.raises(NceLmError, match="loss became non-finite in epoch 2.*intact: last.pt is from epoch 1, best.pt"):
        train_lm(tiny_lm(epochs=2), run, resume=True)
    assert (run / "last.pt").read_bytes() == before


def test_corrupted_and_mismatched_checkpoints(tiny_lm, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_lm(tiny_lm(epochs=1), run)
    other = tmp_path / "other"
    train_lm(tiny_lm(epochs=1, dim=8), other)
    (run / "best.pt").write_bytes((other / "best.pt").read_bytes())
    with pytest.raises(NceLmError, match="does not match the run's config"):
        load_run(run)
    (run / "best.pt").write_bytes(b"garbage")
    with pytest.raises(NceLmError, match="corrupted"):
        load_run(run)
    with pytest.raises(NceLmError, match="other settings .dim 8 -> 32"):
        train_lm(tiny_lm(epochs=2, dim=32), other, resume=True)
    with pytest.raises(NceLmError, match="already holds a run"):
        train_lm(tiny_lm(epochs=1), other)


def test_cli_train_eval_and_errors(lm_corpus: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    common = [
        "--train",
        str(lm_corpus / "train.txt"),
        "--valid",
        str(lm_corpus / "valid.txt"),
        "--dim",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "4",
        "--seq-len",
        "8",
        "--noise-samples",
        "4",
        "--quiet",
    ]
    assert main(["lm", "train", *common, "-o", str(run), "--epochs", "1"]) == 0
    capsys.readouterr()
    assert (
        main(["lm", "eval", str(run), "--data", str(lm_corpus / "test.txt"), "--metrics", str(tmp_path / "m.json")])
        == 0
    )
    out = capsys.readouterr().out
    assert "perplexity" in out and "self-normalization: log Z" in out and f"wrote {tmp_path / 'm.json'}" in out
    written = json.loads((tmp_path / "m.json").read_text())
    for key in (
        "ppl",
        "mean_log_z",
        "std_log_z",
        "self_normalized_ppl",
        "is_log_z_error",
        "info_nce_loss",
        "mi_bound",
        "mi_bound_valid",
        "tokens",
    ):
        assert key in written
    assert f"{written['ppl']:.2f} over {written['tokens']:,} tokens" in out
    assert written["mi_bound"] == pytest.approx(math.log(4 + 1) - written["info_nce_loss"])
    # nce's default noise is unigram^0.75, not the marginal the bound needs (the valid case: tests/test_mi_bound.py)
    assert not written["mi_bound_valid"] and "not a bound: the noise is unigram^0.75" in out
    assert main(["lm", "train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    for argv, message in [
        (
            ["lm", "train", "--resume", str(run), "--dim", "32"],
            "only epochs, max_tokens, lr, device, precision, progress may change",
        ),
        (
            [
                "lm",
                "train",
                "--train",
                str(tmp_path / "absent.txt"),
                "--valid",
                str(lm_corpus / "valid.txt"),
                "-o",
                str(tmp_path / "x"),
            ],
            "train file not found",
        ),
        (["lm", "eval", str(tmp_path / "absent"), "--data", str(lm_corpus / "test.txt")], "run folder not found"),
        (
            ["lm", "train", *common, "-o", str(tmp_path / "y"), "--dropout", "1.5"],
            "--dropout: must be a finite number between 0 and 1",
        ),
    ]:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_table_lr_is_saved_refused_on_resume_and_checked(tiny_lm, tmp_path: Path) -> None:
    """adam-rowwise's table_lr: 0.2 given is the default rule's rate (the same run, bit for bit), another rate trains
    another model; it is saved in config.json and may not change on resume; non-positive rates and optimizers
    other than adam-rowwise are refused."""
    config = tiny_lm(epochs=1)  # adam-rowwise, the default
    default = train_lm(config, tmp_path / "default")
    given = train_lm(config.with_changes(table_lr=0.2), tmp_path / "given")
    other = train_lm(config.with_changes(table_lr=0.5), tmp_path / "other")
    assert given["test"]["ppl"] == default["test"]["ppl"] != other["test"]["ppl"]
    assert json.loads((tmp_path / "other" / "config.json").read_text())["table_lr"] == 0.5
    with pytest.raises(NceLmError, match="other settings .table_lr 0.5 -> 0.1"):
        train_lm(config.with_changes(epochs=2, table_lr=0.1), tmp_path / "other", resume=True)
    resumed = train_lm(config.with_changes(epochs=2, table_lr=0.5), tmp_path / "other", resume=True)
    assert len(resumed["history"]) == 2
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(NceLmError, match="table_lr must be positive"):
            config.with_changes(table_lr=bad).validate()
    with pytest.raises(NceLmError, match="table_lr sets adam-rowwise's rate for the tables; this run trains with adam"):
        tiny_lm(optimizer="adam", table_lr=0.1).resolved(30)
