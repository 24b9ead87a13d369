"""Analogy and similarity figures agree with gensim's own evaluators on the same vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nce_lm.errors import NceLmError
from nce_lm.vectors import analogies
from nce_lm.vectors.analogies import ANALOGY_METHODS, KnownWords, answer_analogies
from nce_lm.vectors.evaluation import (
    default_evaluation_files,
    evaluate_all,
    evaluate_analogies,
    evaluate_similarity,
    read_analogies,
)
from nce_lm.vectors.word_vectors import WordVectors


@pytest.fixture(scope="module")
def structured_vectors() -> WordVectors:
    """Vectors in which many analogies of questions-words.txt hold approximately, some words mixed-case."""
    (analogy_file,), _ = default_evaluation_files()
    rng = np.random.default_rng(0)
    sections = read_analogies(analogy_file)
    words = sorted({w.lower() for _, qs in sections for q in qs for w in q})
    rng.shuffle(words)
    words = words[: int(len(words) * 0.8)]  # some questions have unknown words
    words += [f"filler{i}" for i in range(300)] + ["Paris", "LONDON", "Tiger"]
    dim = 32
    vectors = {w: rng.normal(size=dim) for w in words}
    for _, questions in sections:
        offset = rng.normal(size=dim)
        for a, b, _, _ in questions[::3]:
            a, b = a.lower(), b.lower()
            if a in vectors and b in vectors:
                vectors[b] = vectors[a] + offset + rng.normal(scale=0.3, size=dim)
    return WordVectors(words, np.stack([vectors[w] for w in words]), np.arange(len(words), 0, -1))


@pytest.mark.parametrize("restrict_vocab", [300_000, 1500])
def test_analogies_match_gensim(structured_vectors: WordVectors, restrict_vocab: int) -> None:
    (analogy_file,), _ = default_evaluation_files()
    ours = evaluate_analogies(structured_vectors, analogy_file, restrict_vocab)
    score, sections = structured_vectors.to_gensim().evaluate_word_analogies(
        str(analogy_file), restrict_vocab=restrict_vocab
    )
    assert 0.05 < ours.accuracy < 0.95  # the test can tell right from wrong
    assert ours.accuracy == pytest.approx(score, abs=1e-12)
    theirs = {s["section"]: s for s in sections}
    assert ours.correct == len(theirs["Total accuracy"]["correct"])
    for name, section in ours.sections.items():
        assert section["correct"] == len(theirs[name]["correct"])
        assert section["answered"] == len(theirs[name]["correct"]) + len(theirs[name]["incorrect"])
    assert 0 < ours.skipped < 1


@pytest.mark.parametrize("restrict_vocab", [300_000, 1500])
def test_3cosmul_matches_gensim_most_similar_cosmul(
    structured_vectors: WordVectors, tmp_path: Path, restrict_vocab: int
) -> None:
    """Every answered question's prediction is gensim's most_similar_cosmul over the restrict_vocab most frequent
    words, the question words and their other spellings left out."""
    (analogy_file,), _ = default_evaluation_files()
    keyed = structured_vectors.to_gensim()
    candidates = {w.upper(): w for w in reversed(keyed.index_to_key[:restrict_vocab])}
    known = [q for _, qs in read_analogies(analogy_file) for q in qs if all(w in candidates for w in q)][::10]
    path = tmp_path / "q.txt"
    path.write_text(": some\n" + "".join(" ".join(q) + "\n" for q in known))
    ours = evaluate_analogies(structured_vectors, path, restrict_vocab, method="3cosmul")
    expected = 0
    for a, b, c, d in known:
        scores = keyed.most_similar_cosmul(positive=[candidates[b], candidates[c]], negative=[candidates[a]], topn=None)
        order = [keyed.index_to_key[i] for i in np.argsort(-scores[: min(restrict_vocab, len(keyed))], kind="stable")]
        expected += next(w.upper() for w in order if w.upper() not in (a, b, c)) == d
    assert 0.05 < expected / len(known) < 0.95
    assert ours.correct == expected and ours.answered == len(known)


def gensim_answer(keyed, question: tuple[str, ...], method: str) -> str:
    """evaluate_word_analogies' rule on gensim's own top five: the first that is no spelling of a, b or c, else
    the fifth (upper-cased)."""
    spelling = {w.upper(): w for w in reversed(keyed.index_to_key)}
    a, b, c, _ = question
    solve = keyed.most_similar if method == "3cosadd" else keyed.most_similar_cosmul
    found = [w.upper() for w, _ in solve(positive=[spelling[b], spelling[c]], negative=[spelling[a]], topn=5)]
    return next((w for w in found if w not in (a, b, c)), found[-1])


@pytest.mark.parametrize("method", ANALOGY_METHODS)
def test_every_batched_answer_is_gensims_ties_and_spellings_included(
    structured_vectors: WordVectors, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each question's answer, not just the count, is gensim's: with exact ties (two words sharing the expected
    word's vector), a spelling of a question word among the best (Paris, paris), and restrict_vocab cutting the
    table. Few questions are handed to gensim, so the batch does the work."""
    words, table = list(structured_vectors.words), structured_vectors.vectors
    (analogy_file,), _ = default_evaluation_files()
    questions = [q for _, qs in read_analogies(analogy_file) for q in qs if all(w.lower() in words for w in q)]
    # spellings: a capitalised copy of some question words, close to their vectors, ranks among the best
    spelled = sorted({q[2].lower() for q in questions[::50]})
    words += [w.capitalize() for w in spelled]
    table = np.concatenate([table, table[[words.index(w) for w in spelled]] * 1.001])
    for i, (_, _, _, d) in enumerate(questions[:400:40]):  # ties: a filler takes the expected word's vector
        table[words.index(f"filler{i}")] = table[words.index(d.lower())]
    vectors = WordVectors(words, table)
    handed_over = []
    gensim_answer_of = analogies._gensim_answer
    monkeypatch.setattr(analogies, "_gensim_answer", lambda *args: handed_over.append(1) or gensim_answer_of(*args))
    for restrict in (len(words), len(words) - 300):
        known_words = KnownWords(vectors, restrict)
        keyed = WordVectors(words[:restrict], table[:restrict]).to_gensim()
        known = [q for q in questions if known_words.rows(q) is not None]
        rows = np.array([known_words.rows(q) for q in known])
        ours = [words[i].upper() for i in answer_analogies(known_words, rows, method)]
        theirs = [gensim_answer(keyed, q, method) for q in known]
        assert ours == theirs
        assert 0.05 < np.mean([t == q[3] for t, q in zip(theirs, known)]) < 0.95
    assert 10 <= len(handed_over) < 0.2 * 2 * len(questions)


def test_similarity_matches_gensim(structured_vectors: WordVectors, tmp_path: Path) -> None:
    _, similarity_files = default_evaluation_files()
    keyed = structured_vectors.to_gensim()
    for path in similarity_files:
        ours = evaluate_similarity(structured_vectors, path)
        _, (rho, _), oov = keyed.evaluate_word_pairs(str(path))
        assert ours.spearman == pytest.approx(rho, abs=1e-9)
        assert ours.skipped * 100 == pytest.approx(oov)
    # Space-separated pairs with a header line read the same as tab-separated ones.
    spaced = tmp_path / "pairs.txt"
    tabbed = tmp_path / "pairs.tsv"
    pairs = [("paris", "london", 3.5), ("tiger", "paris", 1.0), ("london", "tiger", 2.0), ("filler1", "filler2", 2.0)]
    spaced.write_text("word1 word2 score\n" + "".join(f"{a} {b} {s}\n" for a, b, s in pairs))
    tabbed.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    assert evaluate_similarity(structured_vectors, spaced) == evaluate_similarity(structured_vectors, tabbed)


def test_evaluate_all_sums_the_files(structured_vectors: WordVectors) -> None:
    (analogy_file,), similarity_files = default_evaluation_files()
    metrics = evaluate_all(structured_vectors, restrict_vocab=1500)
    add, mul = (evaluate_analogies(structured_vectors, analogy_file, 1500, method) for method in ("3cosadd", "3cosmul"))
    assert metrics["analogy"] == add.accuracy and metrics["analogy_3cosmul"] == mul.correct / add.answered
    assert metrics["analogy_skipped"] == pytest.approx(add.skipped)
    assert metrics["analogy_sections"] == {name: s["accuracy"] for name, s in add.sections.items()}
    for path in similarity_files:
        result = evaluate_similarity(structured_vectors, path, 1500)
        assert (metrics[path.name], metrics[f"{path.name}_skipped"]) == (result.spearman, result.skipped)


def test_bad_evaluation_files(structured_vectors: WordVectors, tmp_path: Path) -> None:
    with pytest.raises(NceLmError, match="not found"):
        evaluate_similarity(structured_vectors, tmp_path / "absent.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text(": s\na b c\n")
    with pytest.raises(NceLmError, match="four words"):
        evaluate_analogies(structured_vectors, bad)
    bad.write_text("a b 1.0\nc d x\n")
    with pytest.raises(NceLmError, match="word1 word2 score"):
        evaluate_similarity(structured_vectors, bad)


def test_undecodable_bytes_are_refused_or_replaced(structured_vectors: WordVectors, tmp_path: Path) -> None:
    """A bad byte inside a word: "strict" names --replace-errors; "replace" scores exactly as the same file
    with U+FFFD written in its place (the analogy copy handed to gensim included)."""
    (analogy_file,), (pairs_file, _) = default_evaluation_files()
    for source, evaluate in (
        (analogy_file, lambda path, **kw: evaluate_analogies(structured_vectors, path, 1500, **kw)),
        (pairs_file, lambda path, **kw: evaluate_similarity(structured_vectors, path, 1500, **kw)),
    ):
        lines = source.read_bytes().splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if i > 2 and not line.startswith(b":"))  # a question or pair
        damaged, repaired = tmp_path / f"damaged-{source.name}", tmp_path / f"repaired-{source.name}"
        damaged.write_bytes(b"".join([*lines[:at], b"\xff" + lines[at], *lines[at + 1 :]]))
        repaired.write_bytes(b"".join([*lines[:at], "\ufffd".encode() + lines[at], *lines[at + 1 :]]))
        with pytest.raises(NceLmError, match=r"invalid UTF-8 at byte offset \d+ \(byte 0xff\).*--replace-errors"):
            evaluate(damaged)
        assert evaluate(damaged, errors="replace") == evaluate(repaired)
    with pytest.raises(NceLmError, match="errors must be one of"):
        evaluate_similarity(structured_vectors, pairs_file, errors="ignore")


def test_the_bar_counts_the_questions_answered(
    structured_vectors: WordVectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its total is both methods' answerable questions (those with an unknown word are left out), and it ends full."""
    import tqdm

    bars = []

    class Recording(tqdm.tqdm):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Recording)
    (analogy_file,), _ = default_evaluation_files()
    evaluate_all(structured_vectors, [analogy_file], restrict_vocab=1500, progress=True)
    answered = evaluate_analogies(structured_vectors, analogy_file, 1500).answered
    assert answered < sum(len(qs) for _, qs in read_analogies(analogy_file))
    assert [(bar.total, bar.n) for bar in bars] == [(2 * answered, 2 * answered)]
