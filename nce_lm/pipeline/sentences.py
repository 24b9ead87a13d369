"""Corpora held in Python: token lists, as gensim's ``Word2Vec(sentences=...)`` takes them.

Sentences are read twice (to count, then to encode) and only their int32 ids stay in memory, so the iterable
must be re-iterable, as gensim requires; a one-shot iterator is refused. Tokens are used as given, and each
sentence gets ``<eos>`` after it so that windows never cross sentences. Contract: docs/architecture.md,
"Token lists".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.pipeline.corpus import TokenChunk
from nce_lm.pipeline.vocab import Vocab

PathLike = str | os.PathLike[str]
Corpus = PathLike | Iterable[PathLike] | Iterable[Sequence[str]]  # what a trainer accepts
_FLUSH_TOKENS = 1 << 20  # ids gathered in a Python list before they go into a numpy block


def split_corpus(corpus: Corpus) -> tuple[list[PathLike] | None, Iterable[Sequence[str]] | None]:
    """``(paths, None)`` for one path or a collection of paths, ``(None, sentences)`` for token lists.

    What it is is decided by the first item: a string or path means files, anything else token lists. A
    one-shot iterator (a generator, ``map``, an open file) is refused: it could not be read twice.
    """
    if isinstance(corpus, (str, os.PathLike)):
        return [corpus], None
    try:
        if iter(corpus) is corpus:
            raise NceLmError(
                f"the corpus is a one-shot iterator ({type(corpus).__name__}), which would be empty when read a "
                "second time: pass a list of token lists, or an object whose __iter__ starts over (like gensim's "
                "LineSentence), as gensim requires"
            )
        first = next(iter(corpus), None)
    except TypeError:
        raise NceLmError(
            f"the corpus must be file paths or an iterable of token lists, not {type(corpus).__name__}"
        ) from None
    if first is None:
        raise NceLmError("the corpus is empty")
    if isinstance(first, (str, os.PathLike)):
        if isinstance(first, str) and len(first.split()) > 1 and not os.path.exists(first):
            raise NceLmError(
                f"{first[:40]!r} is not a file, and a sentence must be a list of tokens, such as "
                f"{first.split()[:3]!r}: pass file paths, or token lists"
            )
        return list(corpus), None  # type: ignore[arg-type]
    return None, corpus  # type: ignore[return-value]


def sentence_chunks(sentences: Iterable[Sequence[str]], progress: str | None = None) -> Iterator[TokenChunk]:
    """Each sentence as one line of tokens; anything that is not a list of strings is an :class:`NceLmError`.
    ``progress`` labels a tqdm bar of the sentences read, shown when reading takes more than 2 seconds."""
    if progress is not None:
        from tqdm import tqdm

        sentences = tqdm(sentences, desc=progress, unit=" sentences", leave=False, delay=2)
    for number, sentence in enumerate(sentences, 1):
        if isinstance(sentence, (str, bytes)) or not isinstance(sentence, Sequence):
            raise NceLmError(
                f"sentence {number} is a {type(sentence).__name__}, not a list of tokens: give "
                '[["the", "cat"], ...] (or file paths for text files)'
            )
        tokens = list(sentence)
        if not all(isinstance(token, str) for token in tokens):
            bad = next(token for token in tokens if not isinstance(token, str))
            raise NceLmError(f"sentence {number} holds a {type(bad).__name__} ({bad!r}); tokens must be strings")
        yield TokenChunk(tokens, True)


def encode_sentences(sentences: Iterable[Sequence[str]], vocab: Vocab, progress: str | None = None) -> np.ndarray:
    """The ids of every sentence followed by ``vocab.eos_id``, int32 (N,); unknown tokens become ``unk_id``.
    ``progress``: as for :func:`sentence_chunks`."""
    blocks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_tokens = 0
    eos = np.array([vocab.eos_id], dtype=np.int32)
    for chunk in sentence_chunks(sentences, progress):
        pending += [vocab.encode(chunk.tokens), eos]
        pending_tokens += len(chunk.tokens) + 1
        if pending_tokens >= _FLUSH_TOKENS:
            blocks.append(np.concatenate(pending))
            pending, pending_tokens = [], 0
    if pending:
        blocks.append(np.concatenate(pending))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int32)
