"""A trained skip-gram or CBOW run as a gensim ``Word2Vec`` model, which gensim can load and train further.

gensim builds the model from our counts (so its noise and subsampling tables are its own), then its
``wv.vectors`` and ``syn1neg`` are replaced by our v and u, word by word (gensim orders equal counts
differently); see docs/skipgram.md, ``--format gensim-model``. gensim has no output bias and no objective but
negative sampling, so a run continues in gensim as plain negative sampling without bias.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path

if TYPE_CHECKING:
    from gensim.models import Word2Vec

    from nce_lm.skipgram.trainer import SkipGramResult


def to_gensim_word2vec(result: SkipGramResult) -> Word2Vec:
    """``result`` (from :func:`nce_lm.skipgram.trainer.train_skipgram`) as a gensim ``Word2Vec`` ready to train."""
    from gensim.models import Word2Vec

    config, vectors, context = result.config, result.vectors, result.context_vectors
    if config is None or context is None or vectors.counts is None:
        raise NceLmError("a gensim model needs the run's settings, output vectors and word counts")
    counts = vectors.counts
    model = Word2Vec(
        vector_size=config.dim,
        window=config.window,
        min_count=min(config.min_count, int(counts.min())),
        max_final_vocab=config.max_final_vocab,
        sample=config.sample,
        seed=config.seed,
        sg=int(config.model == "skipgram"),
        cbow_mean=1,
        hs=0,
        negative=config.noise_samples,
        ns_exponent=config.noise_power,
        alpha=config.start_lr(),
        min_alpha=config.min_lr,
        epochs=config.epochs,
    )
    model.build_vocab_from_freq(dict(zip(vectors.words, counts.tolist())))
    if len(model.wv) != len(vectors):
        raise NceLmError(f"gensim kept {len(model.wv)} of the {len(vectors)} words; cannot export the model")
    rows = np.array([model.wv.key_to_index[word] for word in vectors.words])  # our row i is gensim's rows[i]
    model.wv.vectors[rows] = vectors.vectors
    model.syn1neg[rows] = context.vectors
    model.corpus_count = int(result.vocab.counts[result.vocab.eos_id])  # lines: one <eos> each
    model.corpus_total_words = int(result.metrics.get("corpus_words", counts.sum()))
    return model


def save_gensim_model(result: SkipGramResult, path: str | os.PathLike[str]) -> None:
    """Write ``result`` as a gensim ``Word2Vec`` model file to ``path``, atomically (one pickle: gensim writes
    large arrays to side files only past 10 MB per array, which ``sep_limit`` lifts here)."""
    model = to_gensim_word2vec(result)
    with atomic_path(path) as tmp:
        model.save(str(tmp), sep_limit=1 << 62)
