"""What a skip-gram or CBOW run means to gensim's ``Word2Vec``: its settings as gensim's keyword arguments, its
output vectors and its corpus totals, for the ``gensim-model`` format (:mod:`nce_lm.vectors.gensim_model`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nce_lm.errors import NceLmError
from nce_lm.vectors.gensim_model import Word2VecTraining

if TYPE_CHECKING:
    from nce_lm.skipgram.trainer import SkipGramResult


def word2vec_training(result: SkipGramResult) -> Word2VecTraining:
    """``result``'s output vectors, settings and corpus totals as a gensim ``Word2Vec`` model holds them
    (gensim trains further with plain negative sampling, without our output bias)."""
    config, vectors, context = result.config, result.vectors, result.context_vectors
    if config is None or context is None or vectors.counts is None:
        raise NceLmError("a gensim model needs the run's settings, output vectors and word counts")
    settings = {
        "window": config.window,
        "min_count": config.min_count,
        "max_final_vocab": config.max_final_vocab,
        "sample": config.sample,
        "seed": config.seed,
        "sg": int(config.model == "skipgram"),
        "negative": config.noise_samples,
        "ns_exponent": config.noise_power,
        "alpha": config.start_lr(),
        "min_alpha": config.min_lr,
        "epochs": config.epochs,
    }
    return Word2VecTraining(
        context_vectors=context.vectors,
        settings=settings,
        corpus_lines=int(result.vocab.counts[result.vocab.eos_id]),  # one <eos> per line
        corpus_words=int(result.metrics.get("corpus_words", vectors.counts.sum())),
    )
