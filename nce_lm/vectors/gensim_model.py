"""Trained word vectors as a gensim ``Word2Vec`` model, which gensim can load and train further.

gensim builds the model from our counts (so its noise and subsampling tables are its own), then its
``wv.vectors`` and ``syn1neg`` are replaced by our input vectors v and output vectors u, word by word (gensim
orders equal counts differently); see docs/skipgram.md, ``--format gensim-model``. gensim has no output bias
and no objective but negative sampling, so a run continues in gensim as plain negative sampling without bias.
The exporter takes tables and settings, not a trainer's result: the trainer says what its run means to gensim.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nce_lm.errors import NceLmError

if TYPE_CHECKING:
    from gensim.models import Word2Vec


@dataclass(frozen=True)
class Word2VecTraining:
    """What a gensim ``Word2Vec`` model holds beyond the input vectors and their counts.

    ``context_vectors``: the output vectors u, float32 (V, d) in the input vectors' order (gensim's ``syn1neg``).
    ``settings``: keyword arguments of ``gensim.models.Word2Vec`` (``window``, ``sample``, ``sg``, ``negative``,
    ``alpha``...; ``vector_size`` comes from the vectors). ``corpus_lines`` and ``corpus_words``: the corpus's
    sentence and word totals, which gensim's learning-rate schedule reads when it trains further.
    """

    context_vectors: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    corpus_lines: int = 0
    corpus_words: int = 0


def to_gensim_word2vec(
    words: list[str], vectors: np.ndarray, counts: np.ndarray | None, training: Word2VecTraining
) -> Word2Vec:
    """``words`` with their input vectors (V, d), corpus counts (V,) and ``training`` as a gensim ``Word2Vec``
    ready to train."""
    from gensim.models import Word2Vec

    if counts is None:
        raise NceLmError("a gensim model needs the words' corpus counts")
    if training.context_vectors.shape != vectors.shape:
        raise NceLmError(f"output vectors of shape {training.context_vectors.shape} for input vectors {vectors.shape}")
    settings = {**training.settings, "min_count": min(training.settings.get("min_count", 1), int(counts.min()))}
    model = Word2Vec(vector_size=vectors.shape[1], hs=0, cbow_mean=1, **settings)
    model.build_vocab_from_freq(dict(zip(words, counts.tolist())))
    if len(model.wv) != len(words):
        raise NceLmError(f"gensim kept {len(model.wv)} of the {len(words)} words; cannot export the model")
    rows = np.array([model.wv.key_to_index[word] for word in words])  # our row i is gensim's rows[i]
    model.wv.vectors[rows] = vectors
    model.syn1neg[rows] = training.context_vectors
    model.corpus_count = training.corpus_lines
    model.corpus_total_words = training.corpus_words
    return model


def save_gensim_model(
    path: str | os.PathLike[str],
    words: list[str],
    vectors: np.ndarray,
    counts: np.ndarray | None,
    training: Word2VecTraining,
) -> None:
    """The model of :func:`to_gensim_word2vec` at ``path`` as one pickle (gensim writes large arrays to side files
    only past 10 MB per array, which ``sep_limit`` lifts here); the caller writes a temporary and renames it."""
    to_gensim_word2vec(words, vectors, counts, training).save(str(path), sep_limit=1 << 62)
