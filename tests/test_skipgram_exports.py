"""word2vec's other switches: --max-final-vocab as gensim applies it, the output (context) vectors, and a gensim
Word2Vec model that gensim loads and trains further."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.pipeline.vocab import build_vocab, final_vocab_min_count
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram
from nce_lm.vectors.word_vectors import WordVectors

CONFIG = SkipGramConfig(dim=12, epochs=2, min_count=1, sample=0.0, batch_size=64, lr=0.05, threads=1, seed=3)


def lee_corpus() -> Path:
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))


def test_final_vocab_min_count_drops_ties_together() -> None:
    assert final_vocab_min_count([9, 7, 7, 5], 1, 2) == 8  # the two words seen 7 times go together
    assert final_vocab_min_count([9, 7, 7, 5], 1, 3) == 6
    assert final_vocab_min_count([9, 7, 7, 5], 1, 4) == 1  # no cap reached
    assert final_vocab_min_count([9, 7, 7, 5], 8, 3) == 8  # never below min_count
    assert final_vocab_min_count([9, 7, 7, 5], 2, None) == 2
    with pytest.raises(NceLmError, match="max_final_vocab"):
        final_vocab_min_count([9], 1, 0)


@pytest.mark.parametrize("cap, min_count", [(1000, 1), (250, 3), (5000, 5), (10, 1)])
def test_max_final_vocab_keeps_gensims_words(cap: int, min_count: int) -> None:
    """The same words as gensim's own ``prepare_vocab`` on the Lee corpus, ties at the cut included."""
    from gensim.models import Word2Vec

    corpus = lee_corpus()
    model = Word2Vec(min_count=min_count, max_final_vocab=cap)
    model.build_vocab(corpus_file=str(corpus))
    vocab = build_vocab([corpus], min_count=min_count, max_final_vocab=cap)
    assert set(vocab.tokens[2:]) == set(model.wv.index_to_key)
    assert len(vocab) - 2 <= cap
    assert vocab.settings["effective_min_count"] == model.effective_min_count
    counts = dict(zip(vocab.tokens, vocab.counts.tolist()))
    assert all(counts[w] == model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key)


def test_gensim_model_loads_with_our_vectors_and_trains_further(tmp_path: Path) -> None:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    for model_name in ("cbow", "skipgram"):
        config = replace(CONFIG, model=model_name, objective="nce", max_final_vocab=2000)
        result = train_skipgram([lee_corpus()], config, progress=False)
        path = tmp_path / f"{model_name}.model"
        result.save(path, format="gensim-model")
        model = Word2Vec.load(str(path))
        assert path.is_file() and not list(tmp_path.glob(f"{path.name}.*"))  # one file: no side files, no temp
        assert (model.sg, model.cbow_mean, model.negative, model.window, model.vector_size) == (
            int(model_name == "skipgram"),
            1,
            config.noise_samples,
            config.window,
            config.dim,
        )
        rows = [model.wv.key_to_index[w] for w in result.vectors.words]
        assert sorted(rows) == list(range(len(result.vectors)))
        np.testing.assert_array_equal(model.wv.vectors[rows], result.vectors.vectors)
        np.testing.assert_array_equal(model.syn1neg[rows], result.context_vectors.vectors)
        assert [model.wv.get_vecattr(w, "count") for w in result.vectors.words] == result.vectors.counts.tolist()
        assert model.corpus_total_words == result.metrics["corpus_words"]
        before = model.wv.vectors.copy()
        sentences = LineSentence(str(lee_corpus()))
        model.train(sentences, total_examples=model.corpus_count, epochs=1)
        moved = np.abs(model.wv.vectors - before).max(axis=1)
        assert (moved > 0).mean() > 0.9  # gensim trained on (nearly) every word's row
        assert model.wv.most_similar("government", topn=1)


def test_cli_writes_the_context_vectors_and_the_gensim_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's files hold what the Python API trains with the same settings (a seeded run on the fused kernel
    or the torch path repeats exactly)."""
    from gensim.models import Word2Vec

    corpus = lee_corpus()
    args = [
        "--model",
        "cbow",
        "--dim",
        "12",
        "--epochs",
        "2",
        "--min-count",
        "1",
        "--max-final-vocab",
        "300",
        "--sample",
        "0",
        "--batch-size",
        "64",
        "--lr",
        "0.05",
        "--threads",
        "1",
        "--seed",
        "3",
        "--quiet",
    ]
    text, context = tmp_path / "v.txt", tmp_path / "u.txt"
    assert (
        main(
            [
                "skipgram",
                str(corpus),
                "-o",
                str(text),
                "--format",
                "word2vec-txt",
                "--save-context-vectors",
                str(context),
                *args,
            ]
        )
        == 0
    )
    assert f"{context} (output vectors, word2vec-txt)" in capsys.readouterr().out
    config = replace(CONFIG, model="cbow", epochs=2, max_final_vocab=300)
    result = train_skipgram([corpus], config, progress=False)
    assert len(result.vectors) <= 300
    for path, expected in [(text, result.vectors), (context, result.context_vectors)]:
        loaded = WordVectors.load(path)
        assert loaded.words == expected.words
        np.testing.assert_allclose(loaded.vectors, expected.vectors, rtol=1e-6, atol=0)
    model_path, keyed_path = tmp_path / "w2v.model", tmp_path / "u.kv"
    assert (
        main(
            [
                "skipgram",
                str(corpus),
                "-o",
                str(model_path),
                "--format",
                "gensim-model",
                "--save-context-vectors",
                str(keyed_path),
                *args,
            ]
        )
        == 0
    )
    model = Word2Vec.load(str(model_path))
    assert model.sg == 0 and len(model.wv) == len(result.vectors)
    context_vectors = WordVectors.load(keyed_path, trust_pickle=True)
    np.testing.assert_array_equal(context_vectors.vectors, result.context_vectors.vectors)
    np.testing.assert_array_equal(context_vectors.counts, result.vectors.counts)


@pytest.mark.parametrize(
    "extra, message",
    [(["--model", "glove"], "invalid choice"), (["--max-final-vocab", "0"], "--max-final-vocab: must be at least 1")],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra, message) -> None:
    try:
        code = main(["skipgram", str(lee_corpus()), "-o", str(tmp_path / "v.bin"), "--quiet", *extra])
    except SystemExit as raised:  # argparse's own errors
        code = raised.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "v.bin").exists()
