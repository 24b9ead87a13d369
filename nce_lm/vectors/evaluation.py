"""Intrinsic evaluation of word vectors: analogies, word similarity, nearest neighbours.

Analogies (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space"): for
"a is to b as c is to d" in Google's ``questions-words.txt`` format (``: section`` headers, four words per
line), predict d as the word x, other than a, b and c, that maximizes

* 3CosAdd: cos(x, b − a + c), computed as cos(x, b̂ − â + ĉ) over unit vectors (Mikolov et al. 2013), or
* 3CosMul: cos'(x, b) · cos'(x, c) / (cos'(x, a) + ε), cos' = (cos + 1) / 2, ε = 0.001 (Levy & Goldberg
  2014, "Linguistic Regularities in Sparse and Explicit Word Representations").

Both follow gensim's ``evaluate_word_analogies`` conventions, so figures compare with gensim's: only the
``restrict_vocab`` most frequent words are candidates and count as known, matching is case-insensitive with
the most frequent spelling of a word standing for all of them, a question with an unknown word is skipped
(and the fraction skipped reported), and the accuracy is over the questions answered.

Similarity: the Spearman rank correlation between human scores and cosine similarities for every pair
whose two words are known (ties take their average rank), as gensim's ``evaluate_word_pairs`` computes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.vectors.word_vectors import WordVectors

DEFAULT_RESTRICT_VOCAB = 300_000  # gensim's default
COSMUL_EPSILON = 1e-3
_QUESTION_BATCH = 512


@dataclass
class AnalogyResult:
    """Accuracy overall and per section; ``skipped`` is the fraction of questions with an unknown word."""

    accuracy: float
    correct: int
    answered: int
    skipped: float
    sections: dict[str, dict[str, float | int]] = field(default_factory=dict)


@dataclass
class SimilarityResult:
    spearman: float
    pairs: int
    skipped: float


class _CaseInsensitiveIndex:
    """Upper-cased word → row among the first ``restrict_vocab`` words, the most frequent spelling winning."""

    def __init__(self, vectors: WordVectors, restrict_vocab: int) -> None:
        if restrict_vocab < 1:
            raise NceLmError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
        self.size = min(restrict_vocab, len(vectors))
        self.rows: dict[str, int] = {}
        for i in reversed(range(self.size)):
            self.rows[vectors.words[i].upper()] = i
        self.upper_words = [w.upper() for w in vectors.words[: self.size]]
        self.unit = vectors.unit_vectors()[: self.size]  # (n, d)


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NceLmError(f"evaluation file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NceLmError(f"cannot read evaluation file {path}: {err}") from None


def read_analogies(path: str | os.PathLike[str]) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of ``questions-words.txt``-style questions, upper-cased: [(section, [(a, b, c, d), ...])]."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for number, line in enumerate(_read_lines(path), start=1):
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


def _predict(index: _CaseInsensitiveIndex, questions: np.ndarray, method: str) -> np.ndarray:
    """Predicted rows for questions (Q, 3) of rows (a, b, c), excluding a, b and c (and their spellings)."""
    unit = index.unit
    predictions = np.empty(len(questions), dtype=np.int64)
    for start in range(0, len(questions), _QUESTION_BATCH):
        batch = questions[start : start + _QUESTION_BATCH]  # (q, 3)
        a, b, c = (unit[batch[:, i]] for i in range(3))  # (q, d) each
        if method == "3cosadd":
            scores = (b - a + c) @ unit.T  # (q, n): ranks as cos(x, b̂ − â + ĉ)
        else:
            shifted = [(x @ unit.T + 1.0) / 2.0 for x in (a, b, c)]
            scores = shifted[1] * shifted[2] / (shifted[0] + COSMUL_EPSILON)
        rows = np.arange(len(batch))[:, None]
        scores[rows, batch] = -np.inf
        predictions[start : start + len(batch)] = scores.argmax(axis=1)
    return predictions


def evaluate_analogies(
    vectors: WordVectors,
    path: str | os.PathLike[str],
    restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
    method: str = "3cosadd",
    on_section: Callable[[int], object] | None = None,
) -> AnalogyResult:
    """Analogy accuracy with ``method`` "3cosadd" or "3cosmul" over the questions of ``path``; ``on_section``
    is told the number of questions of each section once it is evaluated (a progress bar's ``update``)."""
    if method not in ("3cosadd", "3cosmul"):
        raise NceLmError(f"analogy method must be 3cosadd or 3cosmul, got {method!r}")
    index = _CaseInsensitiveIndex(vectors, restrict_vocab)
    sections = read_analogies(path)
    result = AnalogyResult(0.0, 0, 0, 0.0)
    total = 0
    for name, questions in sections:
        known = [q for q in questions if all(w in index.rows for w in q)]
        total += len(questions)
        correct = 0
        if known:
            rows = np.array([[index.rows[w] for w in q] for q in known], dtype=np.int64)  # (Q, 4)
            predicted = _predict(index, rows[:, :3], method)
            # Another spelling of a, b or c is never an answer either (gensim's `ignore` set).
            for k, (question, row) in enumerate(zip(known, predicted)):
                if index.upper_words[row] in question[:3]:
                    predicted[k] = _second_choice(index, rows[k], method)
            correct = int(sum(index.upper_words[p] == q[3] for p, q in zip(predicted, known)))
        result.sections[name] = {
            "accuracy": correct / len(known) if known else 0.0,
            "correct": correct,
            "answered": len(known),
            "questions": len(questions),
        }
        result.correct += correct
        result.answered += len(known)
        if on_section is not None:
            on_section(len(questions))
    result.accuracy = result.correct / result.answered if result.answered else 0.0
    result.skipped = 1.0 - result.answered / total
    return result


def _second_choice(index: _CaseInsensitiveIndex, row: np.ndarray, method: str) -> int:
    """The best candidate once every spelling of the question words is excluded (rare: mixed-case vocabularies)."""
    banned = {index.upper_words[r] for r in row[:3]}
    scores = _scores_for_one(index, row[:3], method)
    for candidate in np.argsort(-scores):
        if index.upper_words[candidate] not in banned:
            return int(candidate)
    return int(row[0])


def _scores_for_one(index: _CaseInsensitiveIndex, abc: np.ndarray, method: str) -> np.ndarray:
    a, b, c = (index.unit[r] for r in abc)
    if method == "3cosadd":
        return index.unit @ (b - a + c)
    cos = [(index.unit @ x + 1.0) / 2.0 for x in (a, b, c)]
    return cos[1] * cos[2] / (cos[0] + COSMUL_EPSILON)


def read_word_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str, float]]:
    """``word1 word2 score`` lines, tab- or space-separated; ``#`` comments and a header line are skipped."""
    pairs = []
    for number, line in enumerate(_read_lines(path), start=1):
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


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, ties sharing their average rank."""
    rx, ry = _average_ranks(np.asarray(x, dtype=np.float64)), _average_ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def evaluate_similarity(
    vectors: WordVectors, path: str | os.PathLike[str], restrict_vocab: int = DEFAULT_RESTRICT_VOCAB
) -> SimilarityResult:
    """Spearman correlation of cosine similarity with the human scores of ``path``, known pairs only."""
    index = _CaseInsensitiveIndex(vectors, restrict_vocab)
    pairs = read_word_pairs(path)
    gold, model = [], []
    for first, second, score in pairs:
        if first in index.rows and second in index.rows:
            gold.append(score)
            model.append(float(index.unit[index.rows[first]] @ index.unit[index.rows[second]]))
    correlation = spearman(gold, model) if len(gold) > 1 else float("nan")
    return SimilarityResult(correlation, len(gold), 1.0 - len(gold) / len(pairs))


def nearest_neighbors(vectors: WordVectors, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words most cosine-similar to ``word`` (itself excluded), with their similarity."""
    if word not in vectors:
        raise NceLmError(f"word {word!r} is not in the vectors")
    unit = vectors.unit_vectors()
    row = vectors.index(word)
    similarity = unit @ unit[row]  # (V,)
    similarity[row] = -np.inf
    best = np.argsort(-similarity)[:k]
    return [(vectors.words[i], float(similarity[i])) for i in best]


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
) -> dict[str, object]:
    """Every analogy and similarity figure as one JSON-ready dict; gensim's bundled files when none given.
    ``progress`` shows a bar over the analogy questions when they take more than 2 seconds.

    Keys: ``analogy`` (3CosAdd accuracy over all files' questions), ``analogy_3cosmul``,
    ``analogy_skipped``, ``analogy_sections`` and, per similarity file, its name (Spearman) and
    ``<name>_skipped``.
    """
    if analogies is None and similarities is None:
        analogies, similarities = default_evaluation_files()
    metrics: dict[str, object] = {}
    if analogies:
        bar = None
        if progress:
            from tqdm import tqdm

            total = 2 * sum(len(questions) for path in analogies for _, questions in read_analogies(path))
            bar = tqdm(total=total, desc="analogies", unit="question", leave=False, delay=2)
        update = bar.update if bar is not None else None
        add = [evaluate_analogies(vectors, path, restrict_vocab, "3cosadd", update) for path in analogies]
        mul = [evaluate_analogies(vectors, path, restrict_vocab, "3cosmul", update) for path in analogies]
        if bar is not None:
            bar.close()
        answered = sum(r.answered for r in add)
        metrics["analogy"] = sum(r.correct for r in add) / answered if answered else 0.0
        metrics["analogy_3cosmul"] = sum(r.correct for r in mul) / answered if answered else 0.0
        questions = sum(sum(int(s["questions"]) for s in r.sections.values()) for r in add)
        metrics["analogy_skipped"] = 1.0 - answered / questions
        metrics["analogy_sections"] = {name: s["accuracy"] for r in add for name, s in r.sections.items()}
    for path in similarities or []:
        result = evaluate_similarity(vectors, path, restrict_vocab)
        metrics[Path(path).name] = result.spearman
        metrics[f"{Path(path).name}_skipped"] = result.skipped
    return metrics
