"""A token stream as word2vec's sentences and shrunk windows: the examples (skip-gram pairs or CBOW contexts) of
one chunk of the corpus, on the host (numpy).

Each line is a sentence, cut every :data:`MAX_SENTENCE_WORDS` words as gensim's ``corpus_file`` does, and
windows never cross sentences (Mikolov et al. 2013; word2vec.c).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nce_lm.pipeline.token_cache import id_blocks, read_ids
from nce_lm.skipgram.examples import Examples, cbow_examples
from nce_lm.skipgram.kernel import _kernel

MAX_SENTENCE_WORDS = 10_000  # gensim's MAX_WORDS_IN_BATCH: longer lines are cut into sentences this long
CHUNK_TOKENS = 1 << 20  # tokens turned into examples at a time: bounds the memory of their arrays
INDEX_STEP = 1 << 16  # ids per entry of CorpusWords' index of where its words are in the token stream


@dataclass(frozen=True)
class CorpusWords:
    """The words an epoch walks, and where its sentences start, read from the token stream a chunk at a time.

    ids: (N,) the token stream itself (a token cache's memory map is read through its file,
    :func:`~nce_lm.pipeline.token_cache.read_ids`), kept instead of a copy of its words, so that a run holds one
    chunk's words at a time: 4 bytes a word less than the whole corpus's (gensim's ``corpus_file`` keeps none).
    unk_id, eos_id: the ids that are not words: ``<unk>`` (removed words) and line ends.
    kept_before: (⌈N / INDEX_STEP⌉ + 1,) int64, the number of words in ``ids[: i · INDEX_STEP]``; the last entry
    is the number of words, N' (:meth:`words` reads only the stretch of ``ids`` that holds the words it is asked for).
    starts: (S,) int64, ascending from 0: the position among the words of each sentence's first word. A sentence is
    a line, cut every :data:`MAX_SENTENCE_WORDS` words. Keeping the starts instead of a sentence number per word
    saves 8 bytes a word; :meth:`sentences` numbers a chunk's words when it is read.
    counts: (V,) int64, the corpus's count of every id (``<unk>`` and line ends included).
    """

    ids: np.ndarray
    unk_id: int
    eos_id: int
    kept_before: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_ids(cls, ids: np.ndarray, vocab_size: int, unk_id: int, eos_id: int) -> CorpusWords:
        """Index a token stream ``ids`` (N,) in one pass of :func:`id_blocks`, holding one block at a time."""
        counts = np.zeros(vocab_size, dtype=np.int64)
        kept_before = np.zeros(-(-len(ids) // INDEX_STEP) + 1, dtype=np.int64)
        line_starts = [np.zeros(1, dtype=np.int64)]
        filled = offset = 0  # words so far; ids so far
        for block in id_blocks(ids):
            counts += np.bincount(block, minlength=vocab_size)
            words_through = np.cumsum((block != unk_id) & (block != eos_id))  # (n,) words in block[: j + 1]
            steps = np.arange(offset // INDEX_STEP + 1, (offset + len(block)) // INDEX_STEP + 1)  # ends inside
            kept_before[steps] = filled + words_through[steps * INDEX_STEP - offset - 1]
            block = block[block != unk_id]
            ends = np.flatnonzero(block == eos_id)  # (lines ending in the block,)
            line_starts.append(filled + ends - np.arange(len(ends)))  # the word after each line end
            filled += len(block) - len(ends)
            offset += len(words_through)
        kept_before[-1] = filled
        starts = np.unique(np.concatenate(line_starts))  # empty lines repeat a start
        starts = starts[starts < filled]
        lengths = np.diff(np.r_[starts, filled])
        long = lengths > MAX_SENTENCE_WORDS
        cuts = [s + np.arange(MAX_SENTENCE_WORDS, n, MAX_SENTENCE_WORDS) for s, n in zip(starts[long], lengths[long])]
        return cls(ids, unk_id, eos_id, kept_before, np.sort(np.concatenate([starts, *cuts])), counts)

    def __len__(self) -> int:
        return int(self.kept_before[-1])

    def words(self, start: int, stop: int) -> np.ndarray:
        """(stop − start,) int32: the words at positions ``start`` to ``stop`` − 1 (0 <= start <= stop <= len),
        read from the stretch of ``ids`` that holds them."""
        first = int(np.searchsorted(self.kept_before, start, side="right")) - 1  # ids before: words before start
        last = int(np.searchsorted(self.kept_before, stop, side="left"))  # ids before: every word before stop
        stretch = read_ids(self.ids, first * INDEX_STEP, min(last * INDEX_STEP, len(self.ids)))
        words = stretch[(stretch != self.unk_id) & (stretch != self.eos_id)]
        skipped = start - int(self.kept_before[first])
        return words[skipped : skipped + stop - start].astype(np.int32, copy=False)

    def sentences(self, start: int, stop: int) -> np.ndarray:
        """(stop − start,) int64: a number per word of ``words(start, stop)``, equal for two words exactly when
        they are in the same sentence."""
        inside = self.starts[np.searchsorted(self.starts, start, side="right") : np.searchsorted(self.starts, stop)]
        number = np.zeros(stop - start, dtype=np.int64)
        number[inside - start] = 1
        return np.cumsum(number, out=number)


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
    if _kernel is not None:
        return _kernel_examples(words, sentence, reach, window, model, positions)
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


def _kernel_examples(
    words: np.ndarray, sentence: np.ndarray, reach: np.ndarray, window: int, model: str, positions: np.ndarray | None
) -> Examples:
    """:func:`window_examples`' examples for these draws, formed by the C extension (a pass to count, a pass to
    fill arrays of the exact size) instead of the numpy above, which stays as the reference
    (tests/test_skipgram.py compares the two). ``sentence`` must be nondecreasing, as a chunk's sentence
    numbers are: the C passes take a sentence to be a run of equal numbers."""
    keyed = positions is not None and model == "skipgram"
    sentence = np.ascontiguousarray(sentence, dtype=np.int64)
    positions = np.ascontiguousarray(positions if keyed else np.empty(0), dtype=np.int64)
    counts = np.empty(len(words), dtype=np.int64)  # (n,) context words per centre
    nothing32, nothing64 = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
    pairs = _kernel.window_pairs(words, sentence, reach, positions, window, nothing32, counts, nothing32, nothing64)
    context = np.empty(pairs, dtype=np.int32)
    centre = np.empty(pairs if model == "skipgram" else 0, dtype=np.int32)
    keys = np.empty(pairs if keyed else 0, dtype=np.int64)
    _kernel.window_pairs(words, sentence, reach, positions, window, context, counts, centre, keys)
    if model == "cbow":
        return cbow_examples(context, words, counts)
    return Examples(context, centre, noise_key=keys if keyed else None)


def epoch_examples(
    corpus: CorpusWords, keep: np.ndarray, window: int, model: str, seed: int, epoch: int, noise_per: str = "pair"
) -> Iterator[tuple[Examples, int]]:
    """One epoch's examples, chunk of :data:`CHUNK_TOKENS` words by chunk: each chunk's subsampled examples and
    the number of words it covered.

    keep: the keep-probability of every id (V,) (``noise.keep_probabilities``). The draws are a function of
    (seed, epoch) alone. With ``noise_per`` "window", skip-gram's pairs carry their window's key: the centre's
    position among ``corpus``'s words, unique in the epoch whatever the chunks.
    """
    rng = np.random.default_rng([seed, epoch])
    keyed = noise_per == "window" and model == "skipgram"
    for start in range(0, len(corpus), CHUNK_TOKENS):
        chunk = corpus.words(start, min(start + CHUNK_TOKENS, len(corpus)))
        chunk_sentence = corpus.sentences(start, start + len(chunk))
        kept = rng.random(len(chunk)) < keep[chunk]
        positions = start + np.flatnonzero(kept) if keyed else None
        yield window_examples(chunk[kept], chunk_sentence[kept], window, rng, model, positions), len(chunk)
