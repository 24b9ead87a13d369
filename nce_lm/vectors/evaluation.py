"""Intrinsic evaluation of word vectors: analogies and word similarity, with gensim's figures.

Analogies: 3CosAdd (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space") and
3CosMul (Levy & Goldberg 2014, "Linguistic Regularities in Sparse and Explicit Word Representations"), both
answered in batches (:mod:`nce_lm.vectors.analogies`) with the answers of gensim's ``most_similar`` and
``most_similar_cosmul``, counted as gensim 4.4's ``evaluate_word_analogies`` counts 3CosAdd's (it calls
``most_similar`` whatever ``similarity_function`` names) over the ``restrict_vocab`` most frequent words.

Similarity: Spearman's ρ as gensim's ``evaluate_word_pairs`` computes it; the pairs are read here, because
gensim's reader takes one delimiter and skips malformed lines without a word. Conventions and timings:
docs/vectors.md, "Evaluation".
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nce_lm.decoding import check_error_mode, undecodable
from nce_lm.errors import NceLmError
from nce_lm.vectors.analogies import ANALOGY_METHODS, KnownWords, answer_analogies
from nce_lm.vectors.word_vectors import WordVectors

DEFAULT_RESTRICT_VOCAB = 300_000  # gensim's default


@dataclass
class AnalogyResult:
    """Accuracy overall and per section over the questions answered; ``skipped`` is the fraction of the
    ``questions`` that hold an unknown word."""

    accuracy: float
    correct: int
    answered: int
    questions: int
    sections: dict[str, dict[str, float | int]] = field(default_factory=dict)

    @property
    def skipped(self) -> float:
        return 1.0 - self.answered / self.questions


@dataclass
class SimilarityResult:
    spearman: float
    pairs: int
    skipped: float


def _read_lines(path: str | os.PathLike[str], errors: str) -> list[str]:
    check_error_mode(errors)
    try:
        return Path(path).read_text(encoding="utf-8", errors=errors).splitlines()
    except FileNotFoundError:
        raise NceLmError(f"evaluation file not found: {path}") from None
    except UnicodeDecodeError as err:
        raise undecodable(f"{path}: invalid UTF-8 at byte offset {err.start}", err) from None
    except OSError as err:
        raise NceLmError(f"cannot read evaluation file {path}: {err}") from None


def read_analogies(
    path: str | os.PathLike[str], errors: str = "strict"
) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of ``questions-words.txt``-style questions, upper-cased: [(section, [(a, b, c, d), ...])]. A
    malformed line is an error (gensim's reader skips it)."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for number, line in enumerate(_read_lines(path, errors), start=1):
        if line.startswith(": "):
            sections.append((line[2:].strip(), []))
            continue
        words = line.upper().split()
        if not words:
            continue
        if len(words) != 4:
            raise NceLmError(f"{path}:{number}: an analogy needs four words, found {len(words)}")
        if not sections:
            raise NceLmError(f"{path}:{number}: question before the first ': section' header")
        sections[-1][1].append((words[0], words[1], words[2], words[3]))
    if not any(questions for _, questions in sections):
        raise NceLmError(f"{path} holds no analogy questions")
    return sections


def _known_words(vectors: WordVectors, restrict_vocab: int) -> KnownWords:
    """The first ``restrict_vocab`` words (the most frequent ones), which alone are known to the evaluation."""
    if restrict_vocab < 1:
        raise NceLmError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
    return KnownWords(vectors, restrict_vocab)


@dataclass
class _KnownQuestions:
    """The questions of some analogy files as rows of the known words: per section, its name and the rows (k, 4)
    of its questions whose four words are known; ``total`` counts the skipped ones too."""

    sections: list[tuple[str, np.ndarray]]
    total: int

    @classmethod
    def of(cls, table: KnownWords, sections: list[tuple[str, list[tuple[str, str, str, str]]]]) -> _KnownQuestions:
        found = []
        for name, questions in sections:
            rows = [r for r in (table.rows(q) for q in questions) if r is not None]
            found.append((name, np.array(rows, dtype=np.int64).reshape(-1, 4)))
        return cls(found, sum(len(questions) for _, questions in sections))

    @property
    def answerable(self) -> int:
        return sum(len(rows) for _, rows in self.sections)


def _score_sections(
    table: KnownWords, known: _KnownQuestions, method: str, on_answered: Callable[[int], object] | None = None
) -> AnalogyResult:
    """``method``'s accuracy over the known questions, overall and per section."""
    scored = [
        (name, int((answer_analogies(table, rows, method, on_answered) == rows[:, 3]).sum()), len(rows))
        for name, rows in known.sections
    ]
    correct, answered = sum(right for _, right, _ in scored), known.answerable
    result = AnalogyResult(correct / answered if answered else 0.0, correct, answered, known.total)
    for name, right, count in scored:
        result.sections[name] = {"accuracy": right / count if count else 0.0, "correct": right, "answered": count}
    return result


def evaluate_analogies(
    vectors: WordVectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
    method: str = "3cosadd",
    errors: str = "strict",
) -> AnalogyResult:
    """Analogy accuracy with ``method`` "3cosadd" or "3cosmul" over the questions of ``path``; ``errors``
    "replace" reads undecodable bytes as U+FFFD."""
    if method not in ANALOGY_METHODS:
        raise NceLmError(f"analogy method must be 3cosadd or 3cosmul, got {method!r}")
    table = _known_words(vectors, restrict_vocab)
    return _score_sections(table, _KnownQuestions.of(table, read_analogies(path, errors)), method)


def read_word_pairs(path: str | os.PathLike[str], errors: str = "strict") -> list[tuple[str, str, float]]:
    """``word1 word2 score`` lines, tab- or space-separated; ``#`` comments and a header line are skipped."""
    pairs = []
    for number, line in enumerate(_read_lines(path, errors), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            first, second, score = parts[0].strip(), parts[1].strip(), float(parts[2])
        except (IndexError, ValueError):
            if not pairs:
                continue  # a header line
            raise NceLmError(f"{path}:{number}: expected 'word1 word2 score'") from None
        pairs.append((first.upper(), second.upper(), score))
    if not pairs:
        raise NceLmError(f"{path} holds no word pairs")
    return pairs


def evaluate_similarity(
    vectors: WordVectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
    errors: str = "strict",
) -> SimilarityResult:
    """Spearman correlation of cosine similarity with the human scores of ``path``, known pairs only."""
    from scipy.stats import spearmanr

    pairs = read_word_pairs(path, errors)
    table = _known_words(vectors, restrict_vocab)
    words, index = table.vectors.words, table.index
    known = [(words[index[a]], words[index[b]], score) for a, b, score in pairs if a in index and b in index]
    correlation = math.nan
    if len(known) > 1:
        with warnings.catch_warnings():  # constant scores: NaN, which the caller reports as such
            warnings.simplefilter("ignore")
            model = [table.keyed.similarity(a, b) for a, b, _ in known]
            correlation = float(spearmanr([score for _, _, score in known], model).statistic)
    return SimilarityResult(correlation, len(known), 1.0 - len(known) / len(pairs))


def default_evaluation_files() -> tuple[list[Path], list[Path]]:
    """gensim's bundled questions-words.txt, and its wordsim353.tsv and simlex999.txt."""
    from gensim.test.utils import datapath

    return [Path(datapath("questions-words.txt"))], [Path(datapath("wordsim353.tsv")), Path(datapath("simlex999.txt"))]


def _analogy_figures(
    table: KnownWords, paths: Sequence[str | os.PathLike[str]], progress: bool, errors: str
) -> tuple[AnalogyResult, AnalogyResult]:
    """3CosAdd's and 3CosMul's results over the questions of all ``paths`` (their sections in turn), with a bar
    counting the questions answered (those with an unknown word are skipped before counting), shown past 2 s."""
    from tqdm import tqdm

    known = _KnownQuestions.of(table, [section for path in paths for section in read_analogies(path, errors)])
    total = 2 * known.answerable
    bar = tqdm(total=total, desc="analogies", unit="question", leave=False, delay=2, disable=not progress)
    with bar:
        add, mul = (_score_sections(table, known, method, bar.update) for method in ANALOGY_METHODS)
    return add, mul


def evaluate_all(
    vectors: WordVectors,
    analogies: Sequence[str | os.PathLike[str]] | None = None,
    similarities: Sequence[str | os.PathLike[str]] | None = None,
    restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
    progress: bool = False,
    errors: str = "strict",
) -> dict[str, object]:
    """Every analogy and similarity figure as one JSON-ready dict (keys: docs/vectors.md, "Evaluation");
    gensim's bundled files when none given. ``progress``: a bar over the analogy questions, past 2 seconds;
    ``errors`` "replace": the files' undecodable bytes read as U+FFFD."""
    if analogies is None and similarities is None:
        analogies, similarities = default_evaluation_files()
    metrics: dict[str, object] = {}
    if analogies:
        add, mul = _analogy_figures(_known_words(vectors, restrict_vocab), analogies, progress, errors)
        metrics["analogy"] = add.accuracy
        metrics["analogy_3cosmul"] = mul.accuracy
        metrics["analogy_skipped"] = add.skipped
        metrics["analogy_sections"] = {name: s["accuracy"] for name, s in add.sections.items()}
    for path in similarities or []:
        result = evaluate_similarity(vectors, path, restrict_vocab, errors)
        metrics[Path(path).name] = result.spearman
        metrics[f"{Path(path).name}_skipped"] = result.skipped
    return metrics
