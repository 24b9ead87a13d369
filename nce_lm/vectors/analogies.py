"""Analogy questions answered in batches, with gensim's answers.

For a question "a is to b as c is to ?" over the ``restrict_vocab`` most frequent words (N x d vectors):

- 3CosAdd (Mikolov et al. 2013): the word x maximising cos(x, m), m the unit vector of
  (â + ... ) = (b̂ + ĉ − â) / 3, as gensim's ``most_similar(positive=[b, c], negative=[a])``;
- 3CosMul (Levy & Goldberg 2014, eq. 4 with the shift of their footnote 7): the x maximising
  cos'(x, b) · cos'(x, c) / (cos'(x, a) + ε), cos' = (1 + cos) / 2, ε = 10⁻⁶, as ``most_similar_cosmul``.

The answer is counted as gensim's ``evaluate_word_analogies`` counts it: among the five best words other than a,
b and c themselves, the first that is no spelling of a, b or c (words match case-insensitively, the most
frequent spelling standing for the others); when all five are, the fifth.

gensim scores one question at a time (one matrix-vector product over the N words); here a chunk of questions is
scored with one matrix product (q x d by d x N), and only the two best words of each row are looked at. Float32
products summed in another order differ from gensim's in the last bits, so where the two best scores lie closer
than both computations' rounding error could move them, or where the best is a spelling of a question word, the
question is handed to gensim itself: the answers are gensim's, ties included, at a fraction of the time.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.vectors.word_vectors import WordVectors

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

ANALOGY_METHODS = ("3cosadd", "3cosmul")
COSMUL_EPSILON = 1e-6  # gensim's (the paper's is 1e-3)
CHUNK_QUESTIONS = 64  # questions scored per matrix product: a 64 x N float32 block stays in cache
TOP = 5  # evaluate_word_analogies looks at the five best words


class KnownWords:
    """The words an analogy may use and answer with: the first ``restrict_vocab`` of ``vectors`` (the most
    frequent), with each upper-cased word mapped to the row of its most frequent spelling (``index``) and each row
    to that row (``canonical``, shape (N,))."""

    def __init__(self, vectors: WordVectors, restrict_vocab: int) -> None:
        if restrict_vocab < len(vectors):
            vectors = WordVectors(vectors.words[:restrict_vocab], vectors.vectors[:restrict_vocab])
        self.vectors = vectors
        self.index = {word.upper(): row for row, word in reversed(list(enumerate(vectors.words)))}
        self.canonical = np.array([self.index[word.upper()] for word in vectors.words], dtype=np.int64)
        table = np.asarray(vectors.vectors, dtype=np.float32)
        self.unit = table / np.linalg.norm(table, axis=1, keepdims=True)  # (N, d), gensim's get_vector(norm=True)

    @cached_property
    def keyed(self) -> KeyedVectors:
        """The same words as gensim KeyedVectors, which answers the questions too close to call here."""
        return self.vectors.to_gensim()

    def rows(self, question: tuple[str, ...]) -> list[int] | None:
        """The rows of the question's (upper-cased) words, or None when one is not among the known words."""
        found = [self.index.get(word) for word in question]
        return None if None in found else found  # type: ignore[return-value]


def _scores(table: KnownWords, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str) -> np.ndarray:
    """Scores (q, N) of every word for q questions of rows ``a``, ``b``, ``c`` (each (q,)), in float32."""
    unit = table.unit
    if method == "3cosadd":
        mean = (unit[b] + unit[c] - unit[a]) / np.float32(3)
        mean /= np.linalg.norm(mean, axis=1, keepdims=True)
        return mean @ unit.T
    shifted = [(np.float32(1) + unit[rows] @ unit.T) / np.float32(2) for rows in (a, b, c)]
    return shifted[1] * shifted[2] / (shifted[0] + np.float32(COSMUL_EPSILON))


def _too_close(table: KnownWords, questions: np.ndarray, found: tuple[np.ndarray, ...], method: str) -> np.ndarray:
    """Questions (bool, (q,)) whose two best words, rows ``found[0]`` and ``found[2]`` scoring ``found[1]`` and
    ``found[3]``, gensim's rounding could order otherwise (or whose scores are NaN).

    A cosine computed in float32 over d terms of unit vectors is off by at most about d·2⁻²⁴, in gensim's order of
    summation as in ours; two 3CosAdd scores closer than twice that are too close to call, and 3CosMul carries the
    bound through its product and quotient."""
    best, top, second, runner_up = found
    bound = 2 * (table.unit.shape[1] + 4) * 2.0**-24
    if method == "3cosadd":
        return ~(top - runner_up > 2 * bound)

    def error(words: np.ndarray, value: np.ndarray) -> np.ndarray:
        a, b, c = ((1 + np.einsum("qd,qd->q", table.unit[questions[:, i]], table.unit[words])) / 2 for i in range(3))
        return np.abs(value) * (bound * (1 / b + 1 / c + 1 / (a + COSMUL_EPSILON)) + 2.0**-21)

    return ~(top - runner_up > error(best, top) + error(second, runner_up))


def _gensim_answer(table: KnownWords, question: np.ndarray, method: str) -> int:
    """gensim's answer (a canonical row, -1 for none) to one question of rows (a, b, c, expected)."""
    a, b, c = (table.vectors.words[row] for row in question[:3])
    solve = table.keyed.most_similar if method == "3cosadd" else table.keyed.most_similar_cosmul
    rows = [int(table.canonical[table.keyed.key_to_index[word]]) for word, _ in solve([b, c], [a], topn=TOP)]
    return next((row for row in rows if row not in question[:3]), rows[-1] if rows else -1)


def answer_analogies(
    table: KnownWords, questions: np.ndarray, method: str, on_answered: Callable[[int], object] | None = None
) -> np.ndarray:
    """The answer (canonical row, (k,)) to each of the k questions of rows (a, b, c, expected), ``questions``
    (k, 4): right where it equals the expected row. ``on_answered`` is told the number answered, chunk by chunk."""
    predicted = np.empty(len(questions), dtype=np.int64)
    for start in range(0, len(questions), CHUNK_QUESTIONS):
        chunk = questions[start : start + CHUNK_QUESTIONS]
        a, b, c = chunk[:, 0], chunk[:, 1], chunk[:, 2]
        scores = _scores(table, a, b, c, method)
        rows = np.arange(len(chunk))
        for given in (a, b, c):  # never the question's words themselves
            scores[rows, given] = -np.inf
        best = scores.argmax(axis=1)
        top = scores[rows, best]
        scores[rows, best] = -np.inf
        second = scores.argmax(axis=1)
        spelling = table.canonical[best]
        doubtful = (spelling == a) | (spelling == b) | (spelling == c)
        doubtful |= _too_close(table, chunk, (best, top, second, scores[rows, second]), method)
        predicted[start : start + len(chunk)] = spelling
        for row in np.flatnonzero(doubtful):
            predicted[start + row] = _gensim_answer(table, chunk[row], method)
        if on_answered is not None:
            on_answered(len(chunk))
    return predicted
