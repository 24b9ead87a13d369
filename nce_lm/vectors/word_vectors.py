"""Trained word vectors in gensim's shape: :class:`WordVectors` is what a trainer exports (a skip-gram result's
``.wv``), with ``KeyedVectors``' attributes (``index_to_key``, ``key_to_index``, ``vectors``) and queries (answered
through one ``KeyedVectors`` built at the first query), saved and loaded through the format registry
(:mod:`nce_lm.vectors.formats`; word2vec binary by default, a pickle only with ``trust_pickle=True``). Formats,
timings and checks: docs/vectors.md, "Formats".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.vectors.formats import read_vectors, write_vectors
from nce_lm.vectors.gensim_format import keyed_vectors
from nce_lm.vectors.gensim_model import Word2VecTraining

if TYPE_CHECKING:
    from gensim.models import KeyedVectors


@dataclass
class WordVectors:
    """Words, their vectors (float32 (V, d), same order) and optionally their corpus counts (V,)."""

    words: list[str]
    vectors: np.ndarray
    counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise NceLmError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}")
        if self.counts is not None:
            self.counts = np.asarray(self.counts, dtype=np.int64)
            if self.counts.shape != (len(self.words),):
                raise NceLmError(f"{len(self.words)} words but {self.counts.size} counts")
        if len(set(self.words)) != len(self.words):
            raise NceLmError("a word appears twice in the word vectors")
        self._keyed: KeyedVectors | None = None

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def index_to_key(self) -> list[str]:
        """The words in row order (gensim's name): ``vectors[i]`` is the vector of ``index_to_key[i]``."""
        return self.words

    @cached_property
    def key_to_index(self) -> dict[str, int]:
        """Each word's row (gensim's name), the inverse of :attr:`index_to_key`; built at the first use."""
        return {word: i for i, word in enumerate(self.words)}

    def save(
        self, path: str | os.PathLike[str], format: str = "word2vec-bin", training: Word2VecTraining | None = None
    ) -> None:
        """Write the vectors to ``path`` in ``format`` (``word2vec-bin``, ``word2vec-txt``, ``gensim``;
        ``gensim-model`` needs the trainer's ``training``), atomically."""
        write_vectors(path, self.words, self.vectors, self.counts, format, training)

    def save_word2vec_format(self, path: str | os.PathLike[str], binary: bool = True) -> None:
        """gensim's ``save_word2vec_format``: word2vec binary, or text with ``binary=False``."""
        self.save(path, "word2vec-bin" if binary else "word2vec-txt")

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], format: str | None = None, errors: str = "strict", trust_pickle: bool = False
    ) -> WordVectors:
        """Read vectors written by :meth:`save`, word2vec or gensim. ``format`` None: word2vec binary or text,
        told apart by content. gensim's formats are pickles, which run code when loaded: read only with
        ``trust_pickle=True``, whatever the file is called. ``errors="replace"`` reads a word's undecodable
        bytes as U+FFFD instead of refusing the file."""
        return cls(*read_vectors(path, format, errors, trust_pickle))

    def to_gensim(self) -> KeyedVectors:
        """A gensim ``KeyedVectors`` holding a copy of these vectors (same order, ``count`` attributes when
        known), built at the first call and shared by the queries below (which therefore do not see later
        in-place changes to ``vectors``)."""
        if self._keyed is None:
            self._keyed = keyed_vectors(self.words, self.vectors, self.counts)
        return self._keyed

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self.to_gensim()  # gensim's `in` takes an int as a row number

    def __getitem__(self, words: str | list[str]) -> np.ndarray:
        """The vector of a word (d,), or the vectors of a list of words (n, d); KeyError for an unknown word."""
        try:
            return self.to_gensim()[words]
        except KeyError:
            unknown = next(word for word in ([words] if isinstance(words, str) else words) if word not in self)
            raise KeyError(f"word {unknown!r} is not in the vectors") from None

    def most_similar(
        self, positive: str | list[str] | None = None, negative: str | list[str] | None = None, topn: int = 10
    ) -> list[tuple[str, float]]:
        """The ``topn`` words nearest by cosine to the mean of the unit vectors of ``positive`` minus those of
        ``negative`` (the query words excluded): ``most_similar(["king", "woman"], ["man"])`` is 3CosAdd's
        analogy, ``most_similar("king")`` the nearest neighbours (gensim's ``most_similar``)."""
        return self.to_gensim().most_similar(positive=positive, negative=negative, topn=topn)

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words."""
        return float(self.to_gensim().similarity(word1, word2))

    def doesnt_match(self, words: list[str]) -> str:
        """The word furthest from the mean of the others' unit vectors (gensim's ``doesnt_match``)."""
        return self.to_gensim().doesnt_match(words)

    def unit_vectors(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero), float32 (V, d)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.where(norms > 0, norms, 1.0)
