"""The vector file formats, in one registry: each format's name, how it is written and read, and whether reading
it unpickles (runs code named by the file). Both the CLI and :class:`~nce_lm.vectors.word_vectors.WordVectors`
go through :func:`write_vectors` and :func:`read_vectors`; nothing else decides what a format is.

- ``word2vec-bin``, ``word2vec-txt``: word2vec's files (:mod:`nce_lm.vectors.word2vec_format`); safe to read.
- ``gensim``: gensim's ``KeyedVectors.save``, each word's count kept (:mod:`nce_lm.vectors.gensim_format`).
- ``gensim-model``: a whole gensim ``Word2Vec`` model, trainable further (:mod:`nce_lm.vectors.gensim_model`);
  written from a trainer's output vectors and settings (:class:`Word2VecTraining`); read as its input vectors.

The two gensim formats are pickles: :func:`read_vectors` opens one only with ``trust_pickle=True`` (the CLI's
``--trust-pickle``), whatever the file is called, and otherwise says why and how in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nce_lm.decoding import check_error_mode
from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path
from nce_lm.vectors.gensim_format import load_pickled, save_keyed
from nce_lm.vectors.gensim_model import Word2VecTraining, save_gensim_model
from nce_lm.vectors.word2vec_format import check_words, is_pickle, read_word2vec, write_binary, write_text

Table = tuple[list[str], np.ndarray, "np.ndarray | None"]  # words, vectors float32 (V, d), counts (V,) or None


@dataclass(frozen=True)
class VectorFormat:
    """One file format. ``write(path, words, vectors, counts, training)`` writes ``path`` in place (the registry
    makes it atomic); ``read(path, errors)`` returns the :data:`Table`. ``pickled``: reading it runs code the file
    names."""

    name: str
    description: str
    write: Callable[[Path, list[str], np.ndarray, np.ndarray | None, Word2VecTraining | None], None]
    read: Callable[[Path, str], Table]
    pickled: bool = False
    word2vec: bool = False  # words may not hold whitespace
    needs_training: bool = False  # written from a trainer's output vectors and settings too (Word2VecTraining)
    beside: str | None = None

    @property
    def output_vectors_format(self) -> str:
        """The format of the output vectors written beside this file: this one, except beside a gensim model
        (which holds them too, as ``syn1neg``): gensim's ``KeyedVectors``."""
        return self.beside or self.name


def _write_gensim_model(
    path: Path, words: list[str], vectors: np.ndarray, counts: np.ndarray | None, training: Word2VecTraining | None
) -> None:
    if training is None:
        raise NceLmError(
            "the gensim-model format holds a trainer's output vectors and settings too: save it from the "
            "skip-gram result (result.save(path, format='gensim-model')), or choose gensim for the vectors alone"
        )
    save_gensim_model(path, words, vectors, counts, training)


def _read_pickled(path: Path, errors: str) -> Table:
    return load_pickled(path)


FORMATS: dict[str, VectorFormat] = {
    fmt.name: fmt
    for fmt in (
        VectorFormat(
            "word2vec-bin",
            "word2vec binary",
            lambda path, words, vectors, counts, _: write_binary(path, words, vectors),
            lambda path, errors: (*read_word2vec(path, True, errors), None),
            word2vec=True,
        ),
        VectorFormat(
            "word2vec-txt",
            "word2vec text",
            lambda path, words, vectors, counts, _: write_text(path, words, vectors),
            lambda path, errors: (*read_word2vec(path, False, errors), None),
            word2vec=True,
        ),
        VectorFormat(
            "gensim",
            "gensim KeyedVectors (a pickle)",
            lambda path, words, vectors, counts, _: save_keyed(path, words, vectors, counts),
            _read_pickled,
            pickled=True,
        ),
        VectorFormat(
            "gensim-model",
            "gensim Word2Vec model (a pickle)",
            _write_gensim_model,
            _read_pickled,
            pickled=True,
            needs_training=True,
            beside="gensim",
        ),
    )
}
AUTO = "auto"  # word2vec binary or text told apart by content; a pickle only with trust_pickle


def format_named(name: str) -> VectorFormat:
    """The registered format called ``name``; an :class:`NceLmError` listing the names otherwise."""
    if name not in FORMATS:
        raise NceLmError(f"unknown vector format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def write_vectors(
    path: str | os.PathLike[str],
    words: list[str],
    vectors: np.ndarray,
    counts: np.ndarray | None = None,
    format: str = "word2vec-bin",
    training: Word2VecTraining | None = None,
) -> None:
    """Write the table in ``format`` to ``path``, atomically (temporary beside it, renamed once complete)."""
    fmt = format_named(format)
    if fmt.word2vec:
        check_words(words)
    with atomic_path(path) as tmp:
        fmt.write(tmp, words, vectors, counts, training)


def _pickle_refusal(path: Path, named: str | None) -> NceLmError:
    what = f"the {named} format is" if named else f"{path} is"
    return NceLmError(
        f"{what} a pickle (gensim's native format), which runs code when loaded; if you trust the file's source, "
        "add --trust-pickle (Python: trust_pickle=True)"
    )


def read_vectors(
    path: str | os.PathLike[str], format: str | None = None, errors: str = "strict", trust_pickle: bool = False
) -> Table:
    """The table in ``path``. ``format`` None or ``"auto"``: word2vec binary or text, told apart by content (a
    pickle is read as gensim's only with ``trust_pickle``); a format's name reads it as that format (a pickled
    one only with ``trust_pickle``). ``errors``: "strict" refuses a word that is not valid UTF-8, "replace"
    reads its bad bytes as U+FFFD."""
    path = Path(path)
    fmt = None if format in (None, AUTO) else format_named(format)
    check_error_mode(errors)
    if not path.is_file():
        raise NceLmError(f"vector file not found: {path}")
    pickled = fmt.pickled if fmt is not None else is_pickle(path)
    if pickled and not trust_pickle:
        raise _pickle_refusal(path, fmt.name if fmt is not None else None)
    if fmt is None:
        table = load_pickled(path) if pickled else (*read_word2vec(path, None, errors), None)
    else:
        table = fmt.read(path, errors)
    _check_finite(path, table[0], table[1])
    return table


def _check_finite(path: Path, words: list[str], vectors: np.ndarray) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise NceLmError(
            f"{path}: the vector of {words[int(np.flatnonzero(bad)[0])]!r} holds NaN or infinity "
            f"({int(bad.sum())} such vectors)"
        )
