"""Intrinsic evaluation of word vectors: analogies and word similarity, counted by gensim.

Analogies: 3CosAdd (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space") and
3CosMul (Levy & Goldberg 2014, "Linguistic Regularities in Sparse and Explicit Word Representations"),
cos'(x, b) · cos'(x, c) / (cos'(x, a) + ε) with cos' = (cos + 1) / 2 and gensim's ε = 10⁻⁶. gensim 4.4's
``evaluate_word_analogies`` calls ``most_similar`` whatever ``similarity_function`` names, so 3CosMul's answers
are counted here, from ``most_similar_cosmul``, the same way; both run on a ``KeyedVectors`` holding only the
``restrict_vocab`` words, because ``most_similar_cosmul`` ignores its ``restrict_vocab``.

Similarity: Spearman's ρ as gensim's ``evaluate_word_pairs`` computes it; the pairs are read here, because
gensim's reader takes one delimiter and skips malformed lines without a word. Conventions and timings:
docs/vectors.md, "Evaluation".
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nce_lm.decoding import check_error_mode, undecodable
from nce_lm.errors import NceLmError
from nce_lm.vectors.word_vectors import WordVectors

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

DEFAULT_RESTRICT_VOCAB = 300_000  # gensim's default
ANALOGY_METHODS = ("3cosadd", "3cosmul")


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
    """Sections of ``questions-words.txt``-style questions, upper-cased: [(section, [(a, b, c, d), ...])].
    gensim reads the file again to evaluate it; this check comes first, since gensim skips a malformed line."""
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


def _most_frequent(vectors: WordVectors, restrict_vocab: int) -> tuple[KeyedVectors, dict[str, str]]:
    """The first ``restrict_vocab`` words (the most frequent ones) as a gensim ``KeyedVectors``, and the
    upper-cased form of each of those words mapped to its most frequent spelling."""
    if restrict_vocab < 1:
        raise NceLmError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
    if restrict_vocab < len(vectors):
        vectors = WordVectors(vectors.words[:restrict_vocab], vectors.vectors[:restrict_vocab])
    return vectors.to_gensim(), {word.upper(): word for word in reversed(vectors.words)}


def _cosmul_answer(keyed: KeyedVectors, spelling: dict[str, str], question: tuple[str, str, str, str]) -> str:
    """3CosMul's answer to ``question`` (upper-cased words), counted as ``evaluate_word_analogies`` counts
    3CosAdd's: the best of gensim's top five that is none of the question's first three words."""
    a, b, c, _ = question
    found = keyed.most_similar_cosmul(positive=[spelling[b], spelling[c]], negative=[spelling[a]], topn=5)
    return next((word.upper() for word, _ in found if word.upper() not in (a, b, c)), "")


def _gensim_3cosadd(keyed: KeyedVectors, path: str | os.PathLike[str], errors: str) -> list[dict[str, list]]:
    """gensim's per-section 3CosAdd counts (its ``evaluate_word_analogies``, which reads ``path`` as strict
    UTF-8: with ``errors`` "replace" it is given a copy with the bad bytes already replaced)."""
    if errors == "strict":
        return keyed.evaluate_word_analogies(str(path), restrict_vocab=len(keyed))[1]
    with tempfile.TemporaryDirectory(prefix="nce_lm-analogies-") as folder:
        copy = Path(folder) / "questions.txt"
        copy.write_text("\n".join(_read_lines(path, errors)) + "\n", encoding="utf-8")
        return keyed.evaluate_word_analogies(str(copy), restrict_vocab=len(keyed))[1]


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
    sections = read_analogies(path, errors)
    keyed, spelling = _most_frequent(vectors, restrict_vocab)
    if method == "3cosadd":
        counted = _gensim_3cosadd(keyed, path, errors)
        scored = [(len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in counted[:-1]]
    else:
        scored = []
        for _, questions in sections:
            known = [q for q in questions if all(word in spelling for word in q)]
            scored.append((sum(_cosmul_answer(keyed, spelling, q) == q[3] for q in known), len(known)))
    correct, answered = sum(right for right, _ in scored), sum(known for _, known in scored)
    questions = sum(len(questions) for _, questions in sections)
    result = AnalogyResult(correct / answered if answered else 0.0, correct, answered, questions)
    for (name, _), (right, known) in zip(sections, scored):
        result.sections[name] = {"accuracy": right / known if known else 0.0, "correct": right, "answered": known}
    return result


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
    keyed, spelling = _most_frequent(vectors, restrict_vocab)
    known = [(spelling[a], spelling[b], score) for a, b, score in pairs if a in spelling and b in spelling]
    correlation = math.nan
    if len(known) > 1:
        with warnings.catch_warnings():  # constant scores: NaN, which the caller reports as such
            warnings.simplefilter("ignore")
            model = [keyed.similarity(a, b) for a, b, _ in known]
            correlation = float(spearmanr([score for _, _, score in known], model).statistic)
    return SimilarityResult(correlation, len(known), 1.0 - len(known) / len(pairs))


def default_evaluation_files() -> tuple[list[Path], list[Path]]:
    """gensim's bundled questions-words.txt, and its wordsim353.tsv and simlex999.txt."""
    from gensim.test.utils import datapath

    return [Path(datapath("questions-words.txt"))], [Path(datapath("wordsim353.tsv")), Path(datapath("simlex999.txt"))]


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
        from tqdm import tqdm

        total = 2 * sum(len(questions) for path in analogies for _, questions in read_analogies(path, errors))
        with tqdm(total=total, desc="analogies", unit="question", leave=False, delay=2, disable=not progress) as bar:
            results: dict[str, list[AnalogyResult]] = {method: [] for method in ANALOGY_METHODS}
            for method, found in results.items():
                for path in analogies:
                    found.append(evaluate_analogies(vectors, path, restrict_vocab, method, errors))
                    bar.update(found[-1].questions)
        add, mul = results["3cosadd"], results["3cosmul"]
        answered = sum(r.answered for r in add)
        metrics["analogy"] = sum(r.correct for r in add) / answered if answered else 0.0
        metrics["analogy_3cosmul"] = sum(r.correct for r in mul) / answered if answered else 0.0
        metrics["analogy_skipped"] = 1.0 - answered / sum(r.questions for r in add)
        metrics["analogy_sections"] = {name: s["accuracy"] for r in add for name, s in r.sections.items()}
    for path in similarities or []:
        result = evaluate_similarity(vectors, path, restrict_vocab, errors)
        metrics[Path(path).name] = result.spearman
        metrics[f"{Path(path).name}_skipped"] = result.skipped
    return metrics
