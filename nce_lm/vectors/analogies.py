"""Analogy questions answered in batches, with gensim's answers.

For a question "a is to b as c is to ?" over the ``restrict_vocab`` most frequent words (N x d vectors):

- 3CosAdd (Mikolov et al. 2013): the word x maximising cos(x, m), m the unit vector of b̂ + ĉ − â (unit vectors
  written with a hat), as gensim's ``most_similar(positive=[b, c], negative=[a])``;
- 3CosMul (Levy & Goldberg 2014, eq. 4 with the shift of their footnote 7): the x maximising
  cos'(x, b) · cos'(x, c) / (cos'(x, a) + ε), cos' = (1 + cos) / 2, ε = 10⁻⁶, as ``most_similar_cosmul``.

The answer is counted as gensim's ``evaluate_word_analogies`` counts it: among the five best words other than a,
b and c themselves, the first that is no spelling of a, b or c (words match case-insensitively, the most
frequent spelling standing for the others); when all five are, the fifth.

gensim answers one question at a time, scoring the N words with a matrix-vector product and sorting them. Here a
chunk of questions is scored at once and only the two best words of each are looked at:

- 3CosMul's scores are built from cos'(·, w) of each question word w, computed once per word with gensim's own
  expression (the same matrix-vector product), so they equal gensim's bit for bit;
- 3CosAdd's mean is new for every question, so its scores come from one float32 matrix product per chunk (q x d
  by d x N), which sums in another order than gensim's matrix-vector product: they differ in the last bits.

A question whose two best scores tie (3CosMul) or lie within both computations' rounding error (3CosAdd), or whose
best word is a spelling of a question word, is handed to gensim itself: the answers are gensim's, ties included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.vectors.word_vectors import WordVectors

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

ANALOGY_METHODS = ("3cosadd", "3cosmul")
COSMUL_EPSILON = 1e-6  # gensim's (the paper's is 1e-3)
CHUNK_QUESTIONS = 64  # questions scored at once: a 64 x N float32 block stays in cache
TOP = 5  # evaluate_word_analogies looks at the five best words
COSINE_CACHE_BYTES = 256 << 20  # the cos'(·, w) rows kept for reuse by later questions


class KnownWords:
    """The words an analogy may use and answer with: the first ``restrict_vocab`` of ``vectors`` (the most
    frequent), with each upper-cased word mapped to the row of its most frequent spelling (``index``) and each row
    to that row (``canonical``, shape (N,)); ``unit`` (N, d) holds gensim's unit vectors."""

    def __init__(self, vectors: WordVectors, restrict_vocab: int) -> None:
        if restrict_vocab < len(vectors):
            vectors = WordVectors(vectors.words[:restrict_vocab], vectors.vectors[:restrict_vocab])
        self.vectors = vectors
        self.keyed: KeyedVectors = vectors.to_gensim()
        self.keyed.fill_norms()
        self.index = {word.upper(): row for row, word in reversed(list(enumerate(vectors.words)))}
        self.canonical = np.array([self.index[word.upper()] for word in vectors.words], dtype=np.int64)
        self.unit = self.keyed.vectors / self.keyed.norms[:, None]  # gensim's get_vector(norm=True), every row
        self._shifted: dict[int, np.ndarray] = {}

    def rows(self, question: tuple[str, ...]) -> list[int] | None:
        """The rows of the question's (upper-cased) words, or None when one is not among the known words."""
        found = [self.index.get(word) for word in question]
        return None if None in found else found  # type: ignore[return-value]

    def shifted_cosines(self, row: int) -> np.ndarray:
        """cos'(x, w) = (1 + cos(x, w)) / 2 for every word x (N,) and the word w of ``row``, float32, computed as
        gensim's most_similar_cosmul computes it; kept for reuse while they fit in COSINE_CACHE_BYTES."""
        found = self._shifted.get(row)
        if found is None:
            keyed = self.keyed
            found = (1 + np.dot(keyed.vectors, keyed.get_vector(self.vectors.words[row], norm=True)) / keyed.norms) / 2
            if (len(self._shifted) + 1) * found.nbytes > COSINE_CACHE_BYTES:
                self._shifted.pop(next(iter(self._shifted)))
            self._shifted[row] = found
        return found


def _scores(table: KnownWords, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str) -> np.ndarray:
    """Scores (q, N) of every word for q questions of rows ``a``, ``b``, ``c`` (each (q,)), in float32."""
    if method == "3cosadd":
        unit = table.unit
        mean = unit[b] + unit[c] - unit[a]
        mean /= np.linalg.norm(mean, axis=1, keepdims=True)
        return mean @ unit.T
    scores = np.stack([table.shifted_cosines(row) for row in b])
    scores *= np.stack([table.shifted_cosines(row) for row in c])
    scores /= np.stack([table.shifted_cosines(row) for row in a]) + np.float32(COSMUL_EPSILON)
    return scores


def _too_close(table: KnownWords, top: np.ndarray, runner_up: np.ndarray, method: str) -> np.ndarray:
    """Questions (bool, (q,)) whose two best scores, ``top`` and ``runner_up``, gensim may order otherwise (or
    that are NaN).

    3CosMul's scores are gensim's: only a tie is in doubt. A 3CosAdd score computed in float32 over d terms of unit
    vectors is off by at most about d·2⁻²⁴, in gensim's order of summation as in ours, so two scores closer than
    twice that are too close to call."""
    if method == "3cosmul":
        return ~(top > runner_up)
    bound = 2 * (table.unit.shape[1] + 4) * 2.0**-24
    return ~(top - runner_up > 2 * bound)


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
        doubtful |= _too_close(table, top, scores[rows, second], method)
        predicted[start : start + len(chunk)] = spelling
        for row in np.flatnonzero(doubtful):
            predicted[start + row] = _gensim_answer(table, chunk[row], method)
        if on_answered is not None:
            on_answered(len(chunk))
    return predicted
