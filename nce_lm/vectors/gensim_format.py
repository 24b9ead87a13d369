"""Word vectors as gensim's ``KeyedVectors``: built from our arrays, and gensim's native (pickled) file.

gensim's ``.save`` format is a Python pickle, and unpickling runs whatever code the file names: a file from an
untrusted source can take over the process. :func:`load_pickled` therefore runs only after the caller's
explicit consent (``trust_pickle``, checked by :mod:`nce_lm.vectors.formats`), never because of a file's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.errors import NceLmError

if TYPE_CHECKING:
    from gensim.models import KeyedVectors


def keyed_vectors(words: list[str], vectors: np.ndarray, counts: np.ndarray | None) -> KeyedVectors:
    """A gensim ``KeyedVectors`` holding a copy of ``vectors`` (float32 (V, d)) in our order, with each word's
    corpus count (V,) as its ``count`` attribute when known."""
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=vectors.shape[1], dtype=np.float32)
    keyed.add_vectors(words, vectors)
    if counts is not None:  # gensim 4.4's add_vectors(extras=...) fails
        keyed.allocate_vecattrs(["count"], [np.int64])
        keyed.expandos["count"][:] = counts
    return keyed


def load_pickled(path: Path) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Words, vectors (V, d) and counts (V,) or None of a gensim ``KeyedVectors`` file, or of the input vectors
    of a ``Word2Vec`` model file. Unpickles: trusted files only."""
    from gensim.models import KeyedVectors, Word2Vec
    from gensim.utils import SaveLoad

    try:
        loaded = SaveLoad.load(str(path))
    except Exception as err:  # a damaged pickle can raise anything
        raise NceLmError(f"cannot load gensim vectors from {path}: {type(err).__name__}: {err}") from None
    keyed = loaded.wv if isinstance(loaded, Word2Vec) else loaded
    if not isinstance(keyed, KeyedVectors):
        raise NceLmError(f"{path} holds a {type(loaded).__name__}, not gensim KeyedVectors or a Word2Vec model")
    words = list(keyed.index_to_key)
    counts = None
    if words and keyed.has_index_for(words[0]) and "count" in keyed.expandos:
        counts = np.asarray(keyed.expandos["count"], dtype=np.int64)
    return words, np.asarray(keyed.vectors), counts


def save_keyed(path: str | os.PathLike[str], words: list[str], vectors: np.ndarray, counts: np.ndarray | None) -> None:
    """gensim's ``KeyedVectors.save`` at ``path`` (the caller writes a temporary and renames it)."""
    keyed_vectors(words, vectors, counts).save(str(path))
