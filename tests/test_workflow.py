"""The command-line steps connect: vocab -> prepare -> skipgram / lm train -> export -> neighbors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nce_lm.cli import main
from nce_lm.cli.vector_verbs import parse_queries
from nce_lm.errors import NceLmError
from nce_lm.pipeline.vocab import Vocab, build_vocab
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram
from nce_lm.vectors.word_vectors import WordVectors

FAST = ["--dim", "8", "--epochs", "1", "--threads", "1", "--quiet"]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_vocab_and_prepare_outputs_feed_skipgram(topic_corpus: Path, tmp_path: Path) -> None:
    vocab, cache = tmp_path / "vocab.json", tmp_path / "cache"
    assert main(["vocab", str(topic_corpus), "-o", str(vocab), "--min-count", "1"]) == 0
    assert main(["prepare", str(topic_corpus), "--vocab", str(vocab), "-o", str(cache)]) == 0
    assert Vocab.load(cache / "vocab.json").fingerprint() == Vocab.load(vocab).fingerprint()
    before = (cache / "tokens.npy").stat().st_mtime_ns
    outputs = {name: tmp_path / f"{name}.bin" for name in ("cache", "vocab", "both", "own")}
    assert main(["skipgram", "--cache", str(cache), "-o", str(outputs["cache"]), *FAST]) == 0
    assert main(["skipgram", str(topic_corpus), "--vocab", str(vocab), "-o", str(outputs["vocab"]), *FAST]) == 0
    assert (
        main(
            [
                "skipgram",
                str(topic_corpus),
                "--vocab",
                str(vocab),
                "--cache",
                str(cache),
                "-o",
                str(outputs["both"]),
                *FAST,
            ]
        )
        == 0
    )
    assert main(["skipgram", str(topic_corpus), "--min-count", "1", "-o", str(outputs["own"]), *FAST]) == 0
    assert (cache / "tokens.npy").stat().st_mtime_ns == before  # reused, not rewritten
    reference = KeyedVectors.load_word2vec_format(str(outputs["own"]), binary=True)
    for path in outputs.values():  # the same vocabulary and ids, so the same seeded run
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True)
        assert keyed.index_to_key == reference.index_to_key
        np.testing.assert_array_equal(keyed.vectors, reference.vectors)


def test_a_given_vocabulary_is_used_as_it_is(topic_corpus: Path, tmp_path: Path) -> None:
    small = build_vocab([topic_corpus], max_size=12)  # 10 words: the other 10 become <unk>
    result = train_skipgram(topic_corpus, SkipGramConfig(dim=4, epochs=1, threads=1), vocab=small, progress=False)
    assert result.vectors.words == small.tokens[2:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cache", "{cache}", "--vocab", "{other}"], "holds token ids made with another vocabulary"),
        (["{other_corpus}", "--cache", "{cache}"], "holds the token ids of .*topics.txt, not of .*other.txt"),
        (["--cache", "{empty}"], "not a token cache written by `nce-lm prepare`"),
        (["{corpus}", "--vocab", "{vocab}", "--min-count", "3"], "--min-count applies when skipgram counts"),
        (["--cache", "{cache}", "--lowercase"], "built without --lowercase, and its tokenizer settings apply"),
        ([], "give the corpus"),
    ],
)
def test_mismatched_caches_and_vocabularies_are_refused(
    topic_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    places = {
        "corpus": topic_corpus,
        "vocab": tmp_path / "vocab.json",
        "cache": tmp_path / "cache",
        "other": tmp_path / "other.json",
        "other_corpus": tmp_path / "other.txt",
        "empty": tmp_path / "empty",
    }
    places["other_corpus"].write_text("x y z\n")
    places["empty"].mkdir()
    assert main(["vocab", str(topic_corpus), "-o", str(places["vocab"])]) == 0
    assert main(["vocab", str(places["other_corpus"]), "-o", str(places["other"])]) == 0
    assert main(["prepare", str(topic_corpus), "--vocab", str(places["vocab"]), "-o", str(places["cache"])]) == 0
    capsys.readouterr()
    argv = ["skipgram", *(a.format(**places) for a in args), "-o", str(tmp_path / "v.bin"), *FAST]
    assert main(argv) == 2
    line = error_line(capsys)
    assert line.startswith("nce-lm skipgram: error:")
    assert re.search(message, line), line
    assert not (tmp_path / "v.bin").exists()


@pytest.mark.parametrize("verb", [["skipgram"], ["demo"]])
def test_replace_errors_is_accepted_where_text_is_read(
    verb: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(b"caf\xe9 ol\xe9 x y z\n" * 50)
    out = ["-o", str(tmp_path / ("v.bin" if verb == ["skipgram"] else "demo"))]
    argv = [*verb, str(corpus), *out, *FAST, "--min-count", "1", "--sample", "0"]
    assert main(argv) == 2
    assert "--replace-errors" in error_line(capsys)
    assert main([*argv, "--replace-errors"]) == 0


def test_skipgram_says_what_it_wrote_where(topic_corpus: Path, tmp_path: Path, capsys) -> None:
    out, checkpoint, metrics = tmp_path / "v.bin", tmp_path / "c.pt", tmp_path / "m.json"
    assert (
        main(
            [
                "skipgram",
                str(topic_corpus),
                "-o",
                str(out),
                "--checkpoint",
                str(checkpoint),
                "--metrics",
                str(metrics),
                "--min-count",
                "1",
                *FAST,
            ]
        )
        == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"wrote {out} (vectors, word2vec-bin), {checkpoint} (checkpoint, for --resume), {metrics} (metrics)"
    assert json.loads(metrics.read_text())["epochs"] == 1


# ---- the language model ----------------------------------------------------------------------------------------

LM_FAST = [
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
    "--epochs",
    "1",
    "--quiet",
]


@pytest.fixture
def splits(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, lines in (("train.txt", 200), ("valid.txt", 20), ("test.txt", 20)):
        text = [" ".join(f"w{w}" for w in rng.integers(0, 15, size=6)) for _ in range(lines)]
        (folder / name).write_text("\n".join(text) + "\n")
    return folder


def test_lm_train_takes_a_folder_of_splits(tmp_path: Path, capsys) -> None:
    synth = tmp_path / "synth"
    assert main(["synth", "-o", str(synth), "--vocab", "50", "--tokens", "6000", "--quiet"]) == 0
    assert main(["lm", "train", "--data", str(synth), "-o", str(tmp_path / "run"), *LM_FAST]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["tokens"] > 0  # the folder's test split was found and evaluated
    capsys.readouterr()
    assert main(["lm", "eval", str(tmp_path / "run"), "--data", str(synth)]) == 0
    assert f"perplexity {metrics['test']['ppl']:.2f}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["train.txt"], "no validation data .* has none.: give --valid FILE"),
        (["valid.txt", "test.txt"], "holds no training file"),
        (["train.txt", "ptb.train.txt", "valid.txt"], "holds 2 train files .ptb.train.txt, train.txt."),
    ],
)
def test_lm_train_explains_what_a_folder_lacks(tmp_path: Path, capsys, files: list[str], message: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("a b c\n" * 30)
    assert main(["lm", "train", "--data", str(folder), "-o", str(tmp_path / "run"), *LM_FAST]) == 2
    line = error_line(capsys)
    assert line.startswith("nce-lm lm train: error:") and re.search(message, line), line
    assert not (tmp_path / "run").exists()


def test_vocab_and_prepare_outputs_feed_lm_train(splits: Path, tmp_path: Path) -> None:
    vocab, cache = tmp_path / "vocab.json", tmp_path / "cache"
    assert main(["vocab", str(splits / "train.txt"), "-o", str(vocab), "--max-size", "12"]) == 0
    assert main(["prepare", str(splits / "train.txt"), "--vocab", str(vocab), "-o", str(cache)]) == 0
    before = (cache / "tokens.npy").stat().st_mtime_ns
    run = tmp_path / "run"
    assert main(["lm", "train", "--data", str(splits), "--cache", str(cache), "-o", str(run), *LM_FAST]) == 0
    assert Vocab.load(run / "vocab.json").fingerprint() == Vocab.load(vocab).fingerprint()  # the cache's own
    assert (cache / "tokens.npy").stat().st_mtime_ns == before and not (run / "cache" / "train.txt").exists()
    other = tmp_path / "other"
    assert main(["lm", "train", "--data", str(splits), "--vocab", str(vocab), "-o", str(other), *LM_FAST]) == 0
    assert Vocab.load(other / "vocab.json").fingerprint() == Vocab.load(vocab).fingerprint()


def test_lm_refuses_a_cache_of_another_text(splits: Path, tmp_path: Path, capsys) -> None:
    vocab, cache = tmp_path / "vocab.json", tmp_path / "cache"
    assert main(["vocab", str(splits / "valid.txt"), "-o", str(vocab)]) == 0
    assert main(["prepare", str(splits / "valid.txt"), "--vocab", str(vocab), "-o", str(cache)]) == 0
    capsys.readouterr()
    assert (
        main(["lm", "train", "--data", str(splits), "--cache", str(cache), "-o", str(tmp_path / "run"), *LM_FAST]) == 2
    )
    assert re.search(r"holds the token ids of .*valid.txt, not of .*train.txt", error_line(capsys))


def test_lm_train_and_eval_take_replace_errors(splits: Path, tmp_path: Path, capsys) -> None:
    with open(splits / "train.txt", "ab") as handle:
        handle.write(b"caf\xe9 w1 w2\n")
    (splits / "test.txt").write_bytes(b"ol\xe9 w1 w2 w3\n" * 5)
    run = tmp_path / "run"
    argv = ["lm", "train", "--data", str(splits), "-o", str(run), *LM_FAST]
    assert main(argv) == 2
    assert "--replace-errors" in error_line(capsys)
    assert main([*argv, "--replace-errors"]) == 0
    assert main(["lm", "eval", str(run), "--data", str(splits / "test.txt")]) == 2
    assert "--replace-errors" in error_line(capsys)
    assert main(["lm", "eval", str(run), "--data", str(splits / "test.txt"), "--replace-errors"]) == 0


# ---- querying the vectors ----------------------------------------------------------------------------------------


def test_queries_are_words_or_analogies_with_free_standing_operators() -> None:
    assert parse_queries(["king", "-", "man", "+", "woman", "well-known"]) == [
        ("king - man + woman", ["king", "woman"], ["man"]),
        ("well-known", ["well-known"], []),
    ]
    assert parse_queries(["paris - france + italy"]) == [("paris - france + italy", ["paris", "italy"], ["france"])]
    for bad in (["-", "king"], ["king", "+"], ["king", "-", "+", "man"]):
        with pytest.raises(NceLmError, match="must stand between two words"):
            parse_queries(bad)


def test_neighbors_answers_analogies_and_goes_on_past_unknown_words(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(4)
    words = ["king", "man", "woman", "queen", "Paris", "dog", "cat", "tree"]
    WordVectors(words, rng.normal(size=(8, 5)).astype(np.float32)).save(tmp_path / "v.bin")
    keyed = KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    assert (
        main(["neighbors", str(tmp_path / "v.bin"), "king", "-", "man", "+", "woman", "paris", "dog", "-k", "3"]) == 0
    )
    captured = capsys.readouterr()
    analogy = ", ".join(
        f"{w} {s:.3f}" for w, s in keyed.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
    )
    nearest = ", ".join(f"{w} {s:.3f}" for w, s in keyed.most_similar("dog", topn=3))
    assert captured.out.splitlines() == [f"king - man + woman: {analogy}", f"dog: {nearest}"]
    assert captured.err.splitlines() == [
        "nce-lm neighbors: skipped paris: 'paris' is not in the vectors (did you mean 'Paris'?)"
    ]
    assert main(["neighbors", str(tmp_path / "v.bin"), "paris", "cats"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "nce-lm neighbors: error: no query could be answered: every one holds a word that is not in the vectors"
    )


def test_reading_and_evaluation_bars_count_what_is_really_done(tmp_path: Path, monkeypatch) -> None:
    import tqdm

    bars: list[tqdm.tqdm] = []

    class Recorded(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": False, "delay": 0})
            bars.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Recorded)
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\nd e\n" * 1000)
    build_vocab([corpus], progress=True)
    assert bars[-1].desc == "counting words" and bars[-1].n == bars[-1].total == corpus.stat().st_size
    from nce_lm.vectors.evaluation import evaluate_all, read_analogies

    analogies = tmp_path / "q.txt"
    analogies.write_text(": one\na b c d\nb c d e\n: two\nc d e a\n")
    evaluate_all(WordVectors(list("abcde"), np.eye(5, dtype=np.float32)), [analogies], [], progress=True)
    assert bars[-1].desc == "analogies" and bars[-1].n == bars[-1].total == 6  # 3 questions, two methods
    assert sum(len(q) for _, q in read_analogies(analogies)) == 3


def test_every_registered_dataset_is_accepted_by_name(tmp_path: Path, monkeypatch, capsys) -> None:
    from nce_lm.pipeline.datasets import REGISTRY, data_splits

    for name, dataset in REGISTRY.items():  # a fake local copy of each
        for entry in dataset.splits.values():
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / entry.filename).write_text("a b c d\n" * 40)
    monkeypatch.setenv("NCE_LM_DATA", str(tmp_path))
    for name, dataset in REGISTRY.items():
        found = data_splits(name)
        assert {s for s, p in found.items() if p is not None} == set(dataset.splits)
    assert main(["lm", "train", "--data", "text8", "-o", str(tmp_path / "run"), *LM_FAST]) == 2
    assert "no validation data (text8 has none): give --valid FILE" in error_line(capsys)
    assert (
        main(
            [
                "lm",
                "train",
                "--data",
                "text8",
                "--valid",
                str(tmp_path / "ptb" / "ptb.valid.txt"),
                "-o",
                str(tmp_path / "run"),
                *LM_FAST,
            ]
        )
        == 0
    )


def test_demo_help_states_the_demos_own_defaults(capsys) -> None:
    assert main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "passes over the corpus (default 10)" in text and "drop words seen fewer times (default 3)" in text
    assert "lower-case the text (on by default here)" in text


def test_replace_errors_reads_latin1_vectors_and_pairs(tmp_path: Path, capsys) -> None:
    """eval-vectors and neighbors take --replace-errors as the corpus-reading verbs do: a Latin-1 word is read
    with U+FFFD for its bad byte, in the vectors and in a similarity file alike."""
    (tmp_path / "v.txt").write_bytes("3 2\na 1 0\ncaf\u00e9 0.9 0.1\nb 0 1\n".encode("latin-1"))
    (tmp_path / "pairs.txt").write_bytes("a caf\u00e9 9\na b 1\nb caf\u00e9 2\n".encode("latin-1"))
    assert main(["neighbors", str(tmp_path / "v.txt"), "a", "-k", "1", "--replace-errors"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"a: caf\ufffd {0.9 / np.hypot(0.9, 0.1):.3f}"]
    argv = ["eval-vectors", str(tmp_path / "v.txt"), "--similarity", str(tmp_path / "pairs.txt"), "--replace-errors"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["pairs.txt: Spearman 1.0000 (0.0% of pairs skipped)"]
