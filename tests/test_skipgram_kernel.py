"""The fused CPU kernel computes the torch path's update, is deterministic across threads, and samples q."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import nce_lm.skipgram.kernel as skipgram_kernel
import nce_lm.skipgram.windows as skipgram_windows
from nce_lm.errors import NceLmError
from nce_lm.objectives.losses import build_objective
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.token_cache import cached_token_ids
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.examples import Examples
from nce_lm.skipgram.trainer import SkipGramTrainer, train_skipgram

pytestmark = pytest.mark.skipif(
    skipgram_kernel._kernel is None, reason="the C extension was not built (no compiler at install time)"
)

CONFIG = SkipGramConfig(dim=16, epochs=1, min_count=1, sample=0.0, batch_size=64, lr=0.05, threads=1)


def make_trainer(corpus: Path, config: SkipGramConfig, tmp_path: Path) -> SkipGramTrainer:
    vocab = build_vocab([corpus], min_count=1)
    return SkipGramTrainer(config, vocab, np.asarray(cached_token_ids([corpus], vocab, tmp_path / "ids")))


@pytest.mark.parametrize(
    "objective, bias, dim, negatives, noise_per",
    [
        ("neg", None, 16, 5, "pair"),
        ("nce", None, 16, 5, "pair"),
        ("nce", "learned", 16, 5, "pair"),
        ("ranking", "learned", 16, 5, "pair"),
        ("infonce", None, 16, 5, "pair"),
        ("neg", None, 7, 12, "pair"),  # rows shorter than a vector register, and their padding
        ("nce", "learned", 37, 1, "pair"),  # a vector tail after whole registers; the bias in the padding
        ("neg", None, 16, 5, "window"),  # one draw per window: every objective
        ("nce", "learned", 16, 5, "window"),
        ("ranking", "learned", 16, 5, "window"),
        ("infonce", None, 16, 5, "window"),
        # 40 draws from 20 words: a window's pairs add more than the kernel's 32 steps a pass into one row
        ("nce", "learned", 16, 40, "window"),
    ],
)
def test_kernel_trains_what_the_torch_path_trains(
    topic_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    feed_kernel_noise,
    objective: str,
    bias: str | None,
    dim: int,
    negatives: int,
    noise_per: str,
) -> None:
    """One epoch over several chunks and many batches (windows cut by batches among them), the torch path fed the
    kernel's noise words: per pair, or per window, which the torch path shares among the window's pairs."""
    monkeypatch.setattr(skipgram_windows, "CHUNK_TOKENS", 1000)
    config = replace(
        CONFIG, objective=objective, output_bias=bias, dim=dim, noise_samples=negatives, noise_per=noise_per
    )
    fused = make_trainer(topic_corpus, replace(config, kernel="fused"), tmp_path)
    reference = make_trainer(topic_corpus, replace(config, kernel="torch"), tmp_path)
    assert (fused.path.name, reference.path.name) == ("fused", "torch")
    drawn = feed_kernel_noise(reference, config)
    fused_metrics, reference_metrics = fused.train(progress=False), reference.train(progress=False)
    assert drawn() > 20_000  # every pair went through the patched sampler
    for ours, theirs in [
        (fused.state.input_vectors, reference.state.input_vectors),
        (fused.state.output_vectors, reference.state.output_vectors),
        (fused.state.output_bias, reference.state.output_bias),
    ]:
        if theirs is None:
            assert ours is None
            continue
        assert not torch.equal(theirs, torch.zeros_like(theirs))
        torch.testing.assert_close(torch.as_tensor(ours), theirs, rtol=1e-4, atol=1e-5)  # the kernel trains numpy
    assert fused_metrics["final_loss"] == pytest.approx(reference_metrics["final_loss"], rel=1e-5)
    assert fused_metrics["kernel"] == "fused" and reference_metrics["kernel"] == "torch"


@pytest.mark.parametrize("noise_per", ["pair", "window"])
def test_thread_count_does_not_change_the_vectors(topic_corpus: Path, noise_per: str) -> None:
    """With noise per window, a window cut between two threads' shares is drawn by both, from its key."""
    config = replace(CONFIG, epochs=2, objective="nce", kernel="fused", output_bias="learned", noise_per=noise_per)
    one = train_skipgram([topic_corpus], replace(config, threads=1), progress=False)
    three = train_skipgram([topic_corpus], replace(config, threads=3), progress=False)
    np.testing.assert_array_equal(one.vectors.vectors, three.vectors.vectors)
    assert one.metrics["loss_per_epoch"] == three.metrics["loss_per_epoch"]


def test_kernel_noise_follows_q() -> None:
    counts = np.r_[50, 0, np.arange(1, 29) ** 2]  # id 0 excluded, id 1 never seen
    noise = NoiseDistribution(counts, 0.75, exclude=[0])
    draws = skipgram_kernel.draw_noise(noise, seed=12345, first_pair=0, pairs=100_000, noise_samples=3).ravel()
    observed = np.bincount(draws, minlength=len(counts))
    assert observed[0] == 0 and observed[1] == 0
    expected = noise.probs.double().numpy() * len(draws)
    support = expected > 0
    chi2 = (((observed - expected)[support]) ** 2 / expected[support]).sum()
    df = support.sum() - 1
    assert chi2 < df + 6 * np.sqrt(2 * df)  # far beyond the 99.9th percentile of chi-square(df)
    again = skipgram_kernel.draw_noise(noise, seed=12345, first_pair=40_000, pairs=10, noise_samples=3)
    np.testing.assert_array_equal(again.ravel(), draws[120_000:120_030])  # pair i's draws depend on i alone


def test_window_keyed_noise_follows_q_and_is_a_function_of_the_key() -> None:
    """``noise_per="window"``: the k draws of a window are keyed by its centre's position (gaps where words were
    subsampled away); they follow q, and a key's draw is the per-pair draw of the example with that index."""
    counts = np.r_[50, 0, np.arange(1, 29) ** 2]  # id 0 excluded, id 1 never seen
    noise = NoiseDistribution(counts, 0.75, exclude=[0])
    keys = np.cumsum(np.random.default_rng(0).integers(1, 4, size=100_000))  # increasing, with gaps
    draws = skipgram_kernel.draw_keyed_noise(noise, 12345, keys, 3)  # (windows, k)
    observed = np.bincount(draws.ravel(), minlength=len(counts))
    expected = noise.probs.double().numpy() * draws.size
    support = expected > 0
    assert observed[~support].sum() == 0
    chi2 = (((observed - expected)[support]) ** 2 / expected[support]).sum()
    df = support.sum() - 1
    assert chi2 < df + 6 * np.sqrt(2 * df)  # far beyond the 99.9th percentile of chi-square(df)
    for key, row in [(keys[7], draws[7]), (keys[-1], draws[-1])]:
        np.testing.assert_array_equal(row, skipgram_kernel.draw_noise(noise, 12345, int(key), 1, 3)[0])


def test_fused_kernel_refuses_what_it_cannot_run(topic_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(NceLmError, match="fused kernel cannot run.*shared noise"):
        make_trainer(topic_corpus, replace(CONFIG, kernel="fused", shared_noise=True), tmp_path)
    assert make_trainer(topic_corpus, replace(CONFIG, shared_noise=True), tmp_path).path.name == "torch"  # auto
    with pytest.raises(NceLmError, match="kernel must be"):
        SkipGramConfig(kernel="gpu").validate()


def test_kernel_rejects_ids_outside_the_vocabulary() -> None:
    noise = NoiseDistribution(np.arange(1, 11))
    tables = skipgram_kernel.KernelTables(np.zeros((10, 4), np.float32), np.zeros((10, 4), np.float32), None)
    classifier = build_objective("neg", noise, 2, shared_noise=False).classifier(noise.log_probs)
    bad = np.array([3, 10], dtype=np.int32)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        skipgram_kernel.train_examples(tables, Examples(bad, bad), classifier, noise, 2, 4, 1, 0, 0, 0.1, 0.1)
    assert np.array_equal(tables.input, np.zeros((10, 16)))


@pytest.mark.parametrize("bias", ["none", "learned"])
def test_tables_move_into_the_padded_rows_and_back_out_one_at_a_time(
    topic_corpus: Path, tmp_path: Path, bias: str
) -> None:
    """``KernelTables.take`` leaves the state's tables as views of the padded rows (one copy while training);
    ``SkipGramTrainer.release`` gives them back as C-contiguous (V, d) arrays in the padded rows' own memory (no
    second copy of a table), and the result's vectors share them; the values are the trained ones."""
    trainer = make_trainer(topic_corpus, replace(CONFIG, kernel="fused", output_bias=bias, objective="nce"), tmp_path)
    padded = trainer._kernel_tables
    assert padded is not None
    state = trainer.state
    assert np.shares_memory(state.input_vectors, padded.input) and np.shares_memory(state.output_vectors, padded.output)
    assert (state.output_bias is None) == (bias == "none")
    trainer.train(progress=False)
    trained = [np.array(state.input_vectors), np.array(state.output_vectors)]
    trained_bias = None if state.output_bias is None else np.array(state.output_bias)
    rows = [padded.input, padded.output]
    trainer.release()
    assert not hasattr(padded, "input") and not hasattr(padded, "output") and trainer._kernel_tables is None
    for table, values, memory in zip([state.input_vectors, state.output_vectors], trained, rows):
        assert table.flags.c_contiguous and np.shares_memory(table, memory) and np.array_equal(table, values)
    if bias != "none":
        assert not np.shares_memory(state.output_bias, rows[1]) and np.array_equal(state.output_bias, trained_bias)
    vectors = trainer.word_vectors()
    assert np.shares_memory(vectors.vectors, state.input_vectors)  # rows 2.. of the table, not a copy
    assert np.array_equal(vectors.vectors, trained[0][2:])


def test_giving_the_tables_back_moves_every_row_in_place() -> None:
    """Over several blocks of rows, with a width that is not a multiple of 8 and a bias in the padding."""
    rng = np.random.default_rng(3)
    v, u, b = (rng.normal(size=shape).astype(np.float32) for shape in [(10_001, 37), (10_001, 37), (10_001,)])
    state = SimpleNamespace(input_vectors=v.copy(), output_vectors=u.copy(), output_bias=b.copy())
    tables = skipgram_kernel.KernelTables.take(state, train_bias=True)
    assert tables.input.shape == (10_001, 48)
    tables.give_back(state)
    for got, want in [(state.input_vectors, v), (state.output_vectors, u), (state.output_bias, b)]:
        assert got.flags.c_contiguous and np.array_equal(got, want)
