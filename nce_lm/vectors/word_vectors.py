"""Trained word vectors as plain data, and their files: word2vec binary and text, and gensim's own format.

:class:`WordVectors` is what a trainer exports and answers gensim's queries through one ``KeyedVectors`` built
at the first query. word2vec binary goes through gensim; word2vec text is read and written here, because
gensim's is slower and lax. gensim's format is a pickle, so :func:`load_vectors` opens it only when named; a
word2vec header is checked against the file's size before gensim allocates what it declares. Formats, timings
and checks: docs/vectors.md, "Formats".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path
from nce_lm.pipeline.corpus import check_error_mode, undecodable

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

FORMATS = ("word2vec-bin", "word2vec-txt", "gensim")
LOAD_FORMATS = ("auto", *FORMATS)  # auto: gensim's pickle for a .kv/.model name, else word2vec binary or text
GENSIM_SUFFIXES = (".kv", ".model")


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

    def to_gensim(self) -> KeyedVectors:
        """A gensim ``KeyedVectors`` holding a copy of these vectors (same order, ``count`` attributes when
        known), built at the first call and shared by the queries below (which therefore do not see later
        in-place changes to ``vectors``)."""
        if self._keyed is None:
            from gensim.models import KeyedVectors

            self._keyed = KeyedVectors(vector_size=self.dim, dtype=np.float32)
            self._keyed.add_vectors(self.words, self.vectors)
            if self.counts is not None:  # gensim 4.4's add_vectors(extras=...) fails
                self._keyed.allocate_vecattrs(["count"], [np.int64])
                self._keyed.expandos["count"][:] = self.counts
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


def save_vectors(vectors: WordVectors, path: str | os.PathLike[str], format: str = "word2vec-bin") -> None:
    """Write ``vectors`` to ``path`` in ``format`` (one of :data:`FORMATS`), atomically."""
    if format not in FORMATS:
        raise NceLmError(f"unknown vector format {format!r}; choose one of {', '.join(FORMATS)}")
    if format != "gensim":
        for word in vectors.words:
            if not word or any(ch.isspace() for ch in word):
                raise NceLmError(f"word {word!r} is empty or holds whitespace: the word2vec formats cannot store it")
    with atomic_path(path) as tmp:
        if format == "gensim":
            vectors.to_gensim().save(str(tmp))
        elif format == "word2vec-bin":  # sort_attr=None: our order, not re-sorted by count
            vectors.to_gensim().save_word2vec_format(str(tmp), binary=True, sort_attr=None)
        else:
            with open(tmp, "wb") as out:
                out.write(f"{len(vectors)} {vectors.dim}\n".encode())
                for word, row in zip(vectors.words, vectors.vectors.tolist()):
                    out.write(f"{word} {' '.join(f'{x:.9g}' for x in row)}\n".encode())


def _parse_header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise NceLmError(f"{path} is not a word2vec file: the first line must be '<count> <dim>'")
    count, dim = int(parts[0]), int(parts[1])
    if count < 1 or dim < 1:
        raise NceLmError(f"{path} declares {count} vectors of dimension {dim}")
    return count, dim


def _check_size(path: Path, count: int, dim: int, body_bytes: int, binary: bool) -> None:
    """Refuse a header whose rows cannot fit in the ``body_bytes`` after it, before anything is allocated.

    Each binary row takes at least 4·dim + 2 bytes (a one-byte word, a space, the floats); each text row at
    least 2·dim + 2 (a word, then a space and a digit per value, a newline).
    """
    least = count * ((4 if binary else 2) * dim + 2)
    if least > body_bytes:
        raise NceLmError(
            f"{path} declares {count:,} vectors of dimension {dim:,}, which take at least {least:,} "
            f"bytes, but holds {body_bytes:,}: the header is wrong or the file truncated"
        )


def _load_binary(path: Path, count: int, errors: str) -> WordVectors:
    from gensim.models import KeyedVectors

    try:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors=errors)
    except EOFError:
        raise NceLmError(f"{path} is truncated: it holds fewer than the {count:,} vectors declared") from None
    except UnicodeDecodeError as err:
        raise undecodable(f"{path}: a word is not valid UTF-8", err) from None
    if len(keyed.key_to_index) != len(keyed.index_to_key):
        raise NceLmError(f"{path}: a word appears twice")
    return WordVectors(list(keyed.index_to_key), keyed.vectors)  # its made-up counts left behind


def _load_text(path: Path, handle: BinaryIO, count: int, dim: int, errors: str) -> WordVectors:
    words, rows = [], np.empty((count, dim), dtype=np.float32)
    for i in range(count):
        line = handle.readline()
        if not line:
            raise NceLmError(f"{path} is truncated: {i} of {count} vectors read")
        try:
            parts = line.decode("utf-8", errors).rstrip("\n").rstrip(" ").split(" ")
        except UnicodeDecodeError as err:
            raise undecodable(f"{path}: line {i + 2} is not valid UTF-8", err) from None
        try:
            values = [float(x) for x in parts[1:]]
        except ValueError:
            raise NceLmError(f"{path}: line {i + 2} is not '<word> <{dim} numbers>'") from None
        if len(values) != dim:
            raise NceLmError(f"{path}: line {i + 2} has {len(values)} values, expected {dim}")
        words.append(parts[0])
        rows[i] = values
    return WordVectors(words, rows)


def _check_finite(vectors: WordVectors, path: Path) -> WordVectors:
    bad = ~np.isfinite(vectors.vectors).all(axis=1)
    if bad.any():
        raise NceLmError(
            f"{path}: the vector of {vectors.words[int(np.flatnonzero(bad)[0])]!r} holds NaN or "
            f"infinity ({int(bad.sum())} such vectors)"
        )
    return vectors


def load_vectors(path: str | os.PathLike[str], format: str = "auto", errors: str = "strict") -> WordVectors:
    """Read vectors written by :func:`save_vectors`, word2vec or gensim; ``format`` in :data:`LOAD_FORMATS`.

    ``auto`` reads a ``.kv`` or ``.model`` file as gensim's pickle (trusted sources only), else word2vec.
    ``errors``: "strict" refuses a word that is not valid UTF-8, "replace" reads its bad bytes as U+FFFD.
    """
    path = Path(path)
    if format not in LOAD_FORMATS:
        raise NceLmError(f"unknown vector format {format!r}; choose one of {', '.join(LOAD_FORMATS)}")
    check_error_mode(errors)
    if not path.is_file():
        raise NceLmError(f"vector file not found: {path}")
    if format == "gensim" or (format == "auto" and path.suffix in GENSIM_SUFFIXES):
        return _check_finite(_load_gensim(path), path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.readline(256)
        if first.startswith(b"\x80"):
            raise NceLmError(
                f"{path} looks like a pickle (gensim's native format), which can run code when "
                "loaded; if you trust its source, name the format: --format gensim"
            )
        count, dim = _parse_header(first, path)
        start = handle.tell()
        if format == "auto":
            sample = handle.read(min(4 * dim + 256, 1 << 16))
            handle.seek(start)
            text = all(b == 0x0A or b == 0x0D or b >= 0x20 or b == 0x09 for b in sample)
        else:
            text = format == "word2vec-txt"
        _check_size(path, count, dim, size - start, binary=not text)
        if text:
            return _check_finite(_load_text(path, handle, count, dim, errors), path)
    return _check_finite(_load_binary(path, count, errors), path)


def _load_gensim(path: Path) -> WordVectors:
    from gensim.models import KeyedVectors

    try:
        keyed = KeyedVectors.load(str(path))
    except Exception as err:  # a damaged pickle can raise anything
        raise NceLmError(f"cannot load gensim vectors from {path}: {type(err).__name__}: {err}") from None
    if not isinstance(keyed, KeyedVectors):
        raise NceLmError(f"{path} holds a {type(keyed).__name__}, not gensim KeyedVectors")
    words = list(keyed.index_to_key)
    counts = None
    if words and keyed.has_index_for(words[0]) and "count" in keyed.expandos:
        counts = np.asarray(keyed.expandos["count"], dtype=np.int64)
    return WordVectors(words, np.asarray(keyed.vectors), counts)
