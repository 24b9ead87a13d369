"""A token stream as word2vec's sentences and shrunk windows: the examples (skip-gram pairs or CBOW contexts) of
one chunk of the corpus, on the host (numpy).

Each line is a sentence, cut every :data:`MAX_SENTENCE_WORDS` words as gensim's ``corpus_file`` does, and
windows never cross sentences (Mikolov et al. 2013; word2vec.c).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nce_lm.skipgram.examples import Examples, cbow_examples

MAX_SENTENCE_WORDS = 10_000  # gensim's MAX_WORDS_IN_BATCH: longer lines are cut into sentences this long
CHUNK_TOKENS = 1 << 20  # tokens turned into examples at a time: bounds the memory of their arrays


def sentence_ids(ids: np.ndarray, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a token stream (N,) at ``eos_id`` into words and the sentence each belongs to.

    Returns ``(words, sentence)`` with the end-of-line markers removed: a new sentence starts after each
    marker and every :data:`MAX_SENTENCE_WORDS` words within a line.
    """
    is_eos = ids == eos_id
    line = np.cumsum(is_eos) - is_eos  # line number of every token
    words = ids[~is_eos]
    line = line[~is_eos]
    if len(words) == 0:
        return words, line
    starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])  # first word of each line
    position = np.arange(len(words)) - np.repeat(starts, np.diff(np.r_[starts, len(words)]))
    return words, line.astype(np.int64) * (1 + len(words) // MAX_SENTENCE_WORDS) + position // MAX_SENTENCE_WORDS


def window_examples(
    words: np.ndarray,
    sentence: np.ndarray,
    window: int,
    rng: np.random.Generator,
    model: str = "skipgram",
    positions: np.ndarray | None = None,
) -> Examples:
    """The examples of word2vec's shrunk windows, in word2vec's order.

    words, sentence: (n,). Each centre i draws b_i ~ U{1..window}; every j ≠ i with |i − j| ≤ b_i in the
    same sentence is a context word of i. Skip-gram: one example, the pair (words[j], words[i]), per context
    word; CBOW: one example per centre with at least one context word. Examples come centre by centre in corpus
    order, and context words from the leftmost to the rightmost, as word2vec.c visits them. int32 words.
    ``positions`` (n,) int64: each word's position in the epoch, given to skip-gram's pairs as the noise key
    of their window (:class:`Examples`; ``noise_per="window"``).
    """
    n = len(words)
    words = words.astype(np.int32, copy=False)
    reach = rng.integers(1, window + 1, size=n)  # (n,) the shrunk window b_i
    offsets = [*range(-window, 0), *range(1, window + 1)]  # left to right
    within = np.zeros((n, len(offsets)), dtype=bool)  # (n, 2·window): is word i + offset a context of i?
    context = np.zeros((n, len(offsets)), dtype=np.int32)  # (n, 2·window): that word
    for column, offset in enumerate(offsets):
        distance = abs(offset)
        if distance >= n:
            continue
        centres = slice(distance, n) if offset < 0 else slice(0, n - distance)
        contexts = slice(0, n - distance) if offset < 0 else slice(distance, n)
        within[centres, column] = (reach[centres] >= distance) & (sentence[centres] == sentence[contexts])
        context[centres, column] = words[contexts]
    counts = within.sum(axis=1)  # (n,) context words per centre
    context = context[within]  # row-major: centre order, then offset order
    if model == "cbow":
        return cbow_examples(context, words, counts)
    noise_key = None if positions is None else np.repeat(positions, counts)
    return Examples(context, np.repeat(words, counts), noise_key=noise_key)


def epoch_examples(
    words: np.ndarray,
    sentence: np.ndarray,
    keep: np.ndarray,
    window: int,
    model: str,
    seed: int,
    epoch: int,
    noise_per: str = "pair",
) -> Iterator[tuple[Examples, int]]:
    """One epoch's examples, chunk of :data:`CHUNK_TOKENS` words by chunk: each chunk's subsampled examples and
    the number of words it covered.

    words, sentence: (N,) from :func:`sentence_ids`; keep: the keep-probability of every id (V,)
    (``noise.keep_probabilities``). The draws are a function of (seed, epoch) alone. With ``noise_per``
    "window", skip-gram's pairs carry their window's key: the centre's position in ``words``, unique in the
    epoch whatever the chunks.
    """
    rng = np.random.default_rng([seed, epoch])
    keyed = noise_per == "window" and model == "skipgram"
    for start in range(0, len(words), CHUNK_TOKENS):
        chunk, chunk_sentence = words[start : start + CHUNK_TOKENS], sentence[start : start + CHUNK_TOKENS]
        kept = rng.random(len(chunk)) < keep[chunk]
        positions = start + np.flatnonzero(kept) if keyed else None
        yield window_examples(chunk[kept], chunk_sentence[kept], window, rng, model, positions), len(chunk)
