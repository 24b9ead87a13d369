"""The skip-gram trainer: word2vec's windows and sentences, determinism, learning, checkpoints, the CLI."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

import nce_lm.skipgram.trainer as skipgram
import nce_lm.skipgram.windows as skipgram_windows
from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.pipeline import token_cache
from nce_lm.skipgram.checkpoint import load_checkpoint
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.trainer import train_skipgram
from nce_lm.skipgram.windows import CorpusWords, window_examples


def test_windows_match_word2vecs_loop() -> None:
    words = np.arange(100, 130)
    sentence = np.repeat([0, 1, 2], [12, 3, 15])
    pairs = window_examples(words, sentence, 4, np.random.default_rng(7))
    reach = np.random.default_rng(7).integers(1, 5, size=len(words))  # the same draws
    expected = [
        (words[j], words[i])
        for i in range(len(words))
        for j in range(len(words))
        if j != i and abs(i - j) <= reach[i] and sentence[i] == sentence[j]
    ]
    # word2vec's order: centre by centre, and within a centre its context words from left to right
    assert pairs.starts is None
    assert list(zip(pairs.context.tolist(), pairs.centre.tolist())) == [(int(a), int(b)) for a, b in expected]


@pytest.mark.parametrize("model, keyed", [("skipgram", False), ("skipgram", True), ("cbow", False)])
@pytest.mark.parametrize("n", [0, 3, 2_000])
def test_the_c_extensions_windows_are_numpys(monkeypatch: pytest.MonkeyPatch, model: str, keyed: bool, n: int) -> None:
    if skipgram_windows._kernel is None:
        pytest.skip("the C extension was not built")
    rng = np.random.default_rng(n)
    words = rng.integers(0, 50, size=n).astype(np.int32)
    sentence = np.cumsum(rng.random(n) < 0.05)  # sentences of about 20 words, some of one word
    positions = 1_000 + np.sort(rng.choice(10 * n + 1, size=n, replace=False)) if keyed else None
    made = window_examples(words, sentence, 5, np.random.default_rng(1), model, positions)
    monkeypatch.setattr(skipgram_windows, "_kernel", None)
    expected = window_examples(words, sentence, 5, np.random.default_rng(1), model, positions)
    for name in ("context", "centre", "starts", "noise_key"):
        got, want = getattr(made, name), getattr(expected, name)
        assert (got is None) == (want is None), name
        if want is not None:
            assert got.dtype == want.dtype and got.tolist() == want.tolist(), name


def test_lines_are_sentences_and_long_lines_are_cut(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    unk, eos = 0, 1
    ids = np.array([5, 6, eos, unk, 7, eos, eos, 8, unk, 9, 10, 11, 12, eos, 13, 14], dtype=np.int32)
    monkeypatch.setattr(skipgram_windows, "MAX_SENTENCE_WORDS", 3)
    monkeypatch.setattr(token_cache, "ID_BLOCK", 4)  # lines and sentences across blocks
    monkeypatch.setattr(skipgram_windows, "INDEX_STEP", 2)  # an index entry every 2 ids: reads of every stretch
    corpus = CorpusWords.from_ids(ids, 15, unk, eos)
    assert corpus.words(0, len(corpus)).tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # <unk> removed before cutting
    assert corpus.kept_before.tolist() == [0, 2, 2, 3, 4, 5, 7, 8, 10]  # words in ids[: 2 i]
    assert corpus.counts.tolist() == np.bincount(ids, minlength=15).tolist()
    for start, stop in [(0, 10), (1, 9), (3, 7), (4, 4), (6, 10)]:
        sentence = corpus.sentences(start, stop)
        words = corpus.words(start, stop)
        assert words.dtype == np.int32 and words.tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14][start:stop]
        groups = [words[sentence == s].tolist() for s in dict.fromkeys(sentence.tolist())]
        whole = [[5, 6], [7], [8, 9, 10], [11, 12], [13, 14]]
        assert groups == [g for g in ([w for w in group if w in words] for group in whole) if g], (start, stop)
    np.save(tmp_path / "ids.npy", ids)  # a cache's ids, read as copies with the mapping's pages then dropped
    mapped = CorpusWords.from_ids(np.load(tmp_path / "ids.npy", mmap_mode="r"), 15, unk, eos)
    for name in ("kept_before", "starts", "counts"):
        np.testing.assert_array_equal(getattr(mapped, name), getattr(corpus, name))
    for start, stop in itertools.combinations_with_replacement(range(11), 2):
        np.testing.assert_array_equal(mapped.words(start, stop), corpus.words(start, stop))
    np.save(tmp_path / "other.npy", np.full_like(ids, 2))
    os.replace(tmp_path / "other.npy", tmp_path / "ids.npy")  # as prepare replaces a cache's ids while a run trains
    np.testing.assert_array_equal(mapped.words(0, len(mapped)), corpus.words(0, len(corpus)))  # still the run's


SMALL = SkipGramConfig(dim=16, epochs=3, min_count=1, sample=0.0, batch_size=256, lr=0.05, threads=1)


def test_vectors_learn_the_topics(topic_corpus: Path) -> None:
    result = train_skipgram([topic_corpus], SMALL, progress=False)
    unit = result.vectors.unit_vectors()
    index = {w: i for i, w in enumerate(result.vectors.words)}
    a = unit[[index[f"a{i}"] for i in range(10)]]
    b = unit[[index[f"b{i}"] for i in range(10)]]
    within = (a @ a.T)[~np.eye(10, dtype=bool)].mean()
    across = (a @ b.T).mean()
    assert within > across + 0.5
    assert result.metrics["loss_per_epoch"][-1] < result.metrics["loss_per_epoch"][0]
    assert set(result.metrics) >= {"words_per_s", "wall_s", "epochs", "vocab_size", "final_loss"}
    assert result.metrics["vocab_size"] == 20 and result.metrics["corpus_words"] == 7200


SYNONYMS = 12  # planted pairs (a_i, b_i)


def test_a_run_reads_its_token_ids_from_the_cache_file(
    monkeypatch: pytest.MonkeyPatch, topic_corpus: Path, tmp_path: Path
) -> None:
    """Every way a run gets its ids (counted with them, under a given vocabulary, from a prepared cache) hands the
    trainer the cache's memory map itself, whose pages ``read_ids`` drops once read: a plain array view of the
    mapping would not be recognised, and every page touched would count as the run's memory while it trains."""
    from nce_lm.pipeline.vocab import build_vocab

    handed: list[np.ndarray] = []
    from_ids = CorpusWords.from_ids.__func__

    def recording(cls: type[CorpusWords], ids: np.ndarray, *args: int) -> CorpusWords:
        handed.append(ids)
        return from_ids(cls, ids, *args)

    monkeypatch.setattr(CorpusWords, "from_ids", classmethod(recording))
    settings = replace(SMALL, epochs=1)
    train_skipgram([topic_corpus], settings, progress=False)
    train_skipgram([topic_corpus], settings, vocab=build_vocab([topic_corpus], min_count=1), progress=False)
    train_skipgram([topic_corpus], settings, cache_dir=tmp_path / "cache", progress=False)
    assert len(handed) == 3
    assert all(isinstance(ids, np.memmap) and ids.filename for ids in handed)


@pytest.fixture(scope="module")
def synonym_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Planted synonyms: 40 lines per pair i, each 7 words drawn from the pair's own context words c{i}_0..2 and,
    at a random place, a_i or b_i (never both). a_i and b_i share every context and no other planted word does."""
    rng = np.random.default_rng(0)
    lines = []
    for n in range(40 * SYNONYMS):
        i = n % SYNONYMS
        words = list(rng.choice([f"c{i}_{j}" for j in range(3)], size=7))
        words.insert(int(rng.integers(8)), f"{'ab'[rng.integers(2)]}{i}")
        lines.append(" ".join(words))
    path = tmp_path_factory.mktemp("synonyms") / "synonyms.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def synonyms_found(vectors: np.ndarray, words: list[str]) -> float:
    """The share of the 2·SYNONYMS planted words whose nearest planted word (by cosine) is their synonym."""
    index = {w: i for i, w in enumerate(words)}
    planted = [f"a{i}" for i in range(SYNONYMS)] + [f"b{i}" for i in range(SYNONYMS)]
    rows = vectors[[index[w] for w in planted]]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    synonym = np.r_[np.arange(SYNONYMS, 2 * SYNONYMS), np.arange(SYNONYMS)]
    return float((cosine.argmax(axis=1) == synonym).mean())


FOUND = 0.9  # random vectors find 1/23 of the synonyms on average, and never this many (next test)


def test_random_vectors_do_not_find_the_planted_synonyms() -> None:
    rng = np.random.default_rng(0)
    words = [f"{p}{i}" for p in "ab" for i in range(SYNONYMS)]
    found = [synonyms_found(rng.normal(size=(len(words), 16)), words) for _ in range(2000)]
    assert np.mean(found) == pytest.approx(1 / (2 * SYNONYMS - 1), abs=0.005) and max(found) < FOUND / 2


@pytest.mark.parametrize("kernel", ["fused", "torch", "device"])
@pytest.mark.parametrize("objective", ["neg", "nce", "ranking", "infonce"])
@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_every_objective_finds_the_planted_synonyms(synonym_corpus: Path, model: str, objective: str, kernel: str):
    config = replace(SMALL, model=model, objective=objective, kernel=kernel)
    result = train_skipgram([synonym_corpus], config, progress=False)
    assert synonyms_found(result.vectors.vectors, result.vectors.words) >= FOUND


@pytest.mark.parametrize("kernel", ["fused", "torch", "device"])
def test_noise_per_window_finds_the_planted_synonyms(synonym_corpus: Path, kernel: str) -> None:
    config = replace(SMALL, kernel=kernel, noise_per="window")
    result = train_skipgram([synonym_corpus], config, progress=False)
    assert synonyms_found(result.vectors.vectors, result.vectors.words) >= FOUND


def test_seeded_run_repeats_exactly(topic_corpus: Path) -> None:
    first = train_skipgram([topic_corpus], SMALL, progress=False).vectors.vectors
    again = train_skipgram([topic_corpus], SMALL, progress=False).vectors.vectors
    np.testing.assert_array_equal(first, again)


def test_learning_rate_decays_linearly(topic_corpus: Path, skipgram_rates: list[float]) -> None:
    """On the torch path, which calls _update per batch; the kernel is held to the same schedule by
    tests/test_skipgram_kernel.py."""
    seen = skipgram_rates
    train_skipgram([topic_corpus], SkipGramConfig(**{**SMALL.__dict__, "kernel": "torch"}), progress=False)
    assert seen[0] == pytest.approx(SMALL.lr)
    assert seen[-1] < SMALL.lr / SMALL.epochs and seen[-1] >= SMALL.min_lr
    assert all(a >= b for a, b in itertools.pairwise(seen))


ADAGRAD = replace(SMALL, optimizer="rowwise-adagrad", objective="nce", output_bias="learned")
DEVICE = replace(ADAGRAD, kernel="device", sample=1e-3)  # its pair draws must be a function of (seed, epoch)
WINDOW = replace(SMALL, noise_per="window", sample=1e-3)  # window keys: positions among the subsampled words


@pytest.mark.parametrize(
    "config",
    [SMALL, ADAGRAD, DEVICE, WINDOW, replace(DEVICE, noise_per="window")],
    ids=["sgd", "rowwise-adagrad", "device", "noise-per-window", "device-noise-per-window"],
)
def test_resume_equals_an_uninterrupted_run(topic_corpus: Path, tmp_path: Path, config: SkipGramConfig) -> None:
    straight = train_skipgram([topic_corpus], config, progress=False).vectors.vectors
    checkpoint = tmp_path / "sg.ckpt"
    two = replace(config, epochs=2)
    # Stop after epoch 2 of a 3-epoch run: train 3 epochs, interrupting from the epoch-end hook.
    with pytest.raises(KeyboardInterrupt):

        def stop_after_two(trainer):
            trainer.save_checkpoint(checkpoint)
            if trainer.state.epochs_done == 2:
                raise KeyboardInterrupt

        ids_run = skipgram.SkipGramTrainer
        from nce_lm.pipeline.token_cache import cached_token_ids
        from nce_lm.pipeline.vocab import build_vocab

        vocab = build_vocab([topic_corpus], min_count=1)
        ids = np.asarray(cached_token_ids([topic_corpus], vocab, tmp_path / "ids"))
        ids_run(config, vocab, ids).train(progress=False, on_epoch_end=stop_after_two)
    saved, _, state = load_checkpoint(checkpoint)
    assert state.epochs_done == 2 and saved == config
    assert (state.optimizer_state is not None) == (config.optimizer == "rowwise-adagrad")
    resumed = train_skipgram([topic_corpus], config, progress=False, resume=checkpoint).vectors.vectors
    np.testing.assert_array_equal(resumed, straight)
    with pytest.raises(NceLmError, match="already has 2 epochs"):
        train_skipgram([topic_corpus], two, progress=False, resume=checkpoint)


def test_a_resumed_run_may_change_how_often_it_draws_noise(topic_corpus: Path, tmp_path: Path) -> None:
    """``noise_per`` changes the draws, not what the objective estimates (docs/objectives.md): like ``kernel``."""
    checkpoint = tmp_path / "c.ckpt"
    train_skipgram([topic_corpus], replace(SMALL, epochs=1), progress=False, checkpoint=checkpoint)
    resumed = train_skipgram([topic_corpus], replace(SMALL, noise_per="window"), progress=False, resume=checkpoint)
    assert resumed.config.noise_per == "window" and resumed.metrics["epochs_run"] == SMALL.epochs - 1
    with pytest.raises(NceLmError, match="noise_per must be one of pair, window, got 'batch'"):
        train_skipgram([topic_corpus], noise_per="batch", progress=False)


def test_cli_trains_exports_and_reports(topic_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, metrics = tmp_path / "v.bin", tmp_path / "m.json"
    status = main(
        [
            "skipgram",
            str(topic_corpus),
            "-o",
            str(out),
            "--dim",
            "8",
            "--epochs",
            "1",
            "--min-count",
            "1",
            "--metrics",
            str(metrics),
            "--quiet",
            "--checkpoint",
            str(tmp_path / "c.ckpt"),
        ]
    )
    assert status == 0
    keyed = KeyedVectors.load_word2vec_format(str(out), binary=True)
    assert len(keyed) == 20 and keyed.vector_size == 8
    data = json.loads(metrics.read_text())
    assert data["epochs"] == 1 and data["vocab_size"] == 20 and data["words_per_s"] > 0
    assert "words/s" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dim", "0"], "--dim: must be between 1 and"),
        (["--sample", "-1"], "--sample: must be a finite number between 0 and 1"),
        (["--min-count", "100000"], "vocabulary is empty"),
        (["--resume", "CORRUPT"], "corrupted or not a checkpoint"),
        (["--noise-per", "batch"], "--noise-per: invalid choice: 'batch'"),
    ],
)
def test_cli_errors_are_one_line(topic_corpus: Path, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    extra = [str(corrupt) if x == "CORRUPT" else x for x in extra]
    status = main(["skipgram", str(topic_corpus), "-o", str(tmp_path / "v.bin"), "--quiet", *extra])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "v.bin").exists()


def test_a_corpus_that_forms_no_pairs_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text("a b c\n")
    with pytest.raises(NceLmError, match="formed no .* pairs"):
        train_skipgram([path], SkipGramConfig(min_count=1, epochs=1), progress=False)


def test_output_bias_follows_the_objective_and_survives_a_checkpoint(topic_corpus: Path, tmp_path: Path) -> None:
    from nce_lm.pipeline.token_cache import cached_token_ids
    from nce_lm.pipeline.vocab import build_vocab

    vocab = build_vocab([topic_corpus], min_count=1)
    ids = np.asarray(cached_token_ids([topic_corpus], vocab, tmp_path / "ids"))
    assert skipgram.SkipGramTrainer(SMALL, vocab, ids).state.output_bias is None  # neg: word2vec's model
    for kernel in ("fused", "torch"):
        nce = SkipGramConfig(**{**SMALL.__dict__, "objective": "nce", "epochs": 1, "kernel": kernel})
        fixed = skipgram.SkipGramTrainer(nce, vocab, ids)  # nce: b = log q, not trained
        torch.testing.assert_close(torch.as_tensor(fixed.state.output_bias[2:]), fixed.noise.log_probs[2:])
        fixed.train(progress=False)
        torch.testing.assert_close(torch.as_tensor(fixed.state.output_bias[2:]), fixed.noise.log_probs[2:])
        learned = skipgram.SkipGramTrainer(replace(nce, output_bias="learned"), vocab, ids)
        learned.train(progress=False)
        assert not np.array_equal(learned.state.output_bias, fixed.state.output_bias)
    learned.save_checkpoint(tmp_path / "c.ckpt")
    saved_bias = load_checkpoint(tmp_path / "c.ckpt")[2].output_bias
    torch.testing.assert_close(saved_bias, torch.as_tensor(learned.state.output_bias))


def test_a_checkpoint_from_before_the_fixed_bias_reads_true_as_learned() -> None:
    assert SkipGramConfig.from_dict({"output_bias": True}).output_bias == "learned"
    assert SkipGramConfig.from_dict({"output_bias": False}).output_bias == "none"
    with pytest.raises(NceLmError, match="output_bias must be one of"):
        SkipGramConfig(output_bias="sometimes").validate()


def test_rowwise_adagrad_learns_with_batches_that_break_sgd(topic_corpus: Path) -> None:
    """A batch of 2,048 pairs sums ~100 steps into each of these 20 words' rows: SGD diverges, while Adagrad's
    per-row normalisation learns the topics."""
    large = replace(SMALL, batch_size=2048, lr=None)
    with pytest.raises(NceLmError, match="the loss became (nan|inf)"):
        train_skipgram([topic_corpus], large, progress=False)
    result = train_skipgram([topic_corpus], replace(large, optimizer="rowwise-adagrad"), progress=False)
    unit, index = result.vectors.unit_vectors(), {w: i for i, w in enumerate(result.vectors.words)}
    a = unit[[index[f"a{i}"] for i in range(10)]]
    b = unit[[index[f"b{i}"] for i in range(10)]]
    assert (a @ a.T)[~np.eye(10, dtype=bool)].mean() > (a @ b.T).mean() + 0.5
    assert result.metrics["optimizer"] == "rowwise-adagrad" and result.metrics["kernel"] == "torch"
    with pytest.raises(NceLmError, match="fused kernel cannot run.*rowwise-adagrad runs on the torch path"):
        train_skipgram([topic_corpus], replace(large, optimizer="rowwise-adagrad", kernel="fused"), progress=False)


def test_without_the_c_extension_the_torch_path_trains(topic_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nce_lm.skipgram.kernel as skipgram_kernel

    monkeypatch.setattr(skipgram_kernel, "_kernel", None)  # as when installed without a C compiler
    result = train_skipgram([topic_corpus], replace(SMALL, epochs=1), progress=False)
    assert result.metrics["kernel"] == "torch"
    with pytest.raises(NceLmError, match="was not built"):
        train_skipgram([topic_corpus], replace(SMALL, kernel="fused"), progress=False)


@pytest.mark.parametrize("seed, shape", [(0, (5, 3)), (3, (1000, 17)), (2**32 - 1, (7, 100))])
def test_the_initial_table_is_torch_rand_of_the_seed_without_torch(seed: int, shape: tuple[int, int]) -> None:
    """A seeded run starts from the numbers torch.rand gave before the fused kernel's path stopped importing torch."""
    expected = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).numpy()
    np.testing.assert_array_equal(skipgram.seeded_uniform(*shape, seed), expected)
