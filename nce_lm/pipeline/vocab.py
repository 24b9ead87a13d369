"""The vocabulary: tokens, their corpus counts and their ids, with a JSON round trip.

Ids follow word2vec's frequency order (Mikolov et al. 2013) after ``<unk>`` (0) and ``<eos>`` (1); the counts
are the exact frequencies of the encoded stream, as the noise distribution needs. Past ``max_distinct``
distinct tokens the rarest are pruned while counting, as in word2vec's ``ReduceVocab``; the occurrences lost
that way go to ``<unk>``, so the total stays exact, and counts above ``settings["prune_threshold"]`` are exact.
Contract: docs/architecture.md, "Vocabulary".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice, repeat
from pathlib import Path
from typing import Any

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic
from nce_lm.pipeline.corpus import (
    CONTROL_CHARACTER,
    LineBlock,
    TokenChunk,
    TokenizerConfig,
    expand_inputs,
    first_line_holding,
    iter_line_blocks,
)

FORMAT = "nce_lm.pipeline.vocab"
FORMAT_VERSION = 1
DEFAULT_MAX_DISTINCT = 30_000_000  # word2vec's vocab_hash_size * 0.7 is of this order
_WHITESPACE = re.compile(r"\s")  # str patterns: the characters for which str.isspace() is true


class Vocab:
    """Tokens, counts (int64, same order) and the tokenizer settings that produced them."""

    UNK = "<unk>"
    EOS = "<eos>"
    unk_id = 0
    eos_id = 1

    def __init__(
        self,
        tokens: list[str],
        counts: np.ndarray | list[int],
        tokenizer: TokenizerConfig = TokenizerConfig(),
        settings: dict[str, Any] | None = None,
    ) -> None:
        """Check the invariants (specials first, no duplicates, no empty tokens nor tokens holding whitespace or
        control characters, every word counted at least once) and build the index."""
        self.tokens = list(tokens)
        self.counts = np.asarray(counts, dtype=np.int64)  # (V,)
        self.tokenizer = tokenizer
        self.settings = dict(settings or {})
        if self.counts.ndim != 1 or len(self.counts) != len(self.tokens):
            raise NceLmError(
                f"vocabulary has {len(self.tokens)} tokens but {self.counts.size} counts; the lengths must match"
            )
        if self.tokens[:2] != [self.UNK, self.EOS]:
            raise NceLmError(f"vocabulary must start with the special tokens {self.UNK} and {self.EOS}")
        if len(self.tokens) < 3:
            raise NceLmError("vocabulary holds no tokens besides the special ones")
        if (self.counts < 0).any():
            bad = int(np.flatnonzero(self.counts < 0)[0])
            raise NceLmError(f"vocabulary count of {self.tokens[bad]!r} is negative ({self.counts[bad]})")
        if (self.counts[2:] < 1).any():
            bad = 2 + int(np.flatnonzero(self.counts[2:] < 1)[0])
            raise NceLmError(
                f"vocabulary count of {self.tokens[bad]!r} is {self.counts[bad]}: every word was seen at "
                "least once (the noise distribution needs positive counts)"
            )
        blank = _blank_token(self.tokens)
        if blank is not None:
            raise NceLmError(
                f"vocabulary token {blank!r} is empty or holds whitespace: word2vec's files separate words by "
                "spaces, so no text file yields such a token and no vector file could store it"
            )
        control = control_token(self.tokens)
        if control is not None:
            raise NceLmError(
                f"vocabulary token {control!r} holds the control character "
                f"U+{ord(CONTROL_CHARACTER.search(control)[0]):04X}: no text holds one inside a word"
            )
        self._index = {token: i for i, token in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            duplicate = next(t for t, n in Counter(self.tokens).items() if n > 1)
            raise NceLmError(f"vocabulary lists the token {duplicate!r} twice")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def index(self, token: str) -> int:
        """Id of ``token``; ``unk_id`` when it is not in the vocabulary."""
        return self._index.get(token, self.unk_id)

    def ids(self, tokens: Iterable[str]) -> Iterator[int]:
        """The ids of ``tokens``, lazily; out-of-vocabulary tokens map to ``unk_id``."""
        return map(self._index.get, tokens, repeat(self.unk_id))

    def encode(self, tokens: list[str]) -> np.ndarray:
        """Ids of ``tokens`` as int32, out-of-vocabulary tokens mapped to ``unk_id``.  # (len(tokens),)"""
        return np.fromiter(self.ids(tokens), dtype=np.int32, count=len(tokens))

    def fingerprint(self) -> str:
        """sha256 of the tokens, counts and tokenizer settings: equal fingerprints encode identically."""
        payload = json.dumps(
            {"tokens": self.tokens, "counts": self.counts.tolist(), "tokenizer": self.tokenizer.to_dict()},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "tokenizer": self.tokenizer.to_dict(),
            "settings": self.settings,
            "tokens": self.tokens,
            "counts": self.counts.tolist(),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Read a vocabulary saved by :meth:`save`; anything malformed is an :class:`NceLmError` naming the file."""
        data = read_json(path, "vocabulary")
        try:
            return cls.from_dict(data)
        except NceLmError as err:
            raise NceLmError(f"vocabulary file {path} is invalid: {err}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Vocab:
        """Rebuild a vocabulary from :meth:`to_dict` output, checking its format; errors are NceLmError."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NceLmError(f'not an nce_lm vocabulary (expected "format": "{FORMAT}")')
        if data.get("version") != FORMAT_VERSION:
            raise NceLmError(f"unsupported version {data.get('version')!r} (this nce_lm reads {FORMAT_VERSION})")
        tokens, counts = data.get("tokens"), data.get("counts")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise NceLmError('"tokens" must be a list of strings')
        if not isinstance(counts, list) or not all(type(c) is int for c in counts):
            raise NceLmError('"counts" must be a list of integers')
        if counts and (max(counts) >= 2**63 or sum(c for c in counts if c > 0) >= 2**63):
            raise NceLmError(f'"counts" add up to {sum(counts):.3g}, more than a 64-bit count holds')
        settings = data.get("settings", {})
        if not isinstance(settings, dict):
            raise NceLmError('"settings" must be a JSON object')
        return cls(tokens, counts, TokenizerConfig.from_dict(data.get("tokenizer")), settings)


def _blank_token(tokens: list[str]) -> str | None:
    """The first of ``tokens`` that is empty or holds whitespace (str.isspace), or None; one regular-expression
    search over all of them joined, and a token-by-token look only when it finds one."""
    if "" not in tokens and _WHITESPACE.search("".join(tokens)) is None:
        return None
    return next(t for t in tokens if not t or _WHITESPACE.search(t))


def control_token(tokens: Iterable[str]) -> str | None:
    """The first of ``tokens`` holding a control character (:data:`CONTROL_CHARACTER`), or None.

    One regular-expression search per batch of joined tokens, so checking a vocabulary's distinct words costs
    a small fraction of counting them, in little memory."""
    remaining = iter(tokens)
    while batch := list(islice(remaining, 65_536)):
        if CONTROL_CHARACTER.search(" ".join(batch)) is not None:
            return next(t for t in batch if CONTROL_CHARACTER.search(t))
    return None


def refuse_control_characters(counter: Counter[str], files: list[Path], errors: str) -> None:
    """Refuse a corpus in which a token holds a control character, naming the file and the line."""
    token = control_token(counter)
    if token is None:
        return
    character = CONTROL_CHARACTER.search(token)[0]
    place = first_line_holding(files, character, errors)
    where = f"{place[0]}: line {place[1]}" if place else "the corpus"
    raise NceLmError(
        f"{where} holds the control character U+{ord(character):04X} inside the token {token!r}: is this a "
        "text file? Remove such characters and run again"
    )


def count_tokens(
    paths: Iterable[str | os.PathLike[str]],
    tokenizer: TokenizerConfig = TokenizerConfig(),
    errors: str = "strict",
    max_distinct: int = DEFAULT_MAX_DISTINCT,
    progress: str | None = None,
) -> tuple[Counter[str], int, int, int]:
    """:func:`count_chunks` of the corpus files; ``progress`` labels a bar of the bytes read (shown past 2 s)."""
    return count_blocks(iter_line_blocks(paths, tokenizer, errors, progress=progress), max_distinct)


def count_blocks(
    blocks: Iterable[LineBlock], max_distinct: int = DEFAULT_MAX_DISTINCT
) -> tuple[Counter[str], int, int, int]:
    """:func:`count_chunks` of the chunks of ``blocks`` (:func:`nce_lm.pipeline.corpus.iter_line_blocks`):
    past ``max_distinct`` distinct tokens, checked after every line, the rarest are pruned (:func:`_prune`)."""
    if max_distinct < 1:
        raise NceLmError(f"max_distinct must be at least 1, got {max_distinct}")
    counter: Counter[str] = Counter()
    lines = pruned = threshold = 0
    for block in blocks:
        for line in block.lines:
            counter.update(line)
            lines += 1
            while len(counter) > max_distinct:
                threshold += 1
                pruned += _prune(counter, threshold)
        lines -= not block.last_line_ends
    return counter, lines, pruned, threshold


def count_chunks(
    chunks: Iterable[TokenChunk], max_distinct: int = DEFAULT_MAX_DISTINCT
) -> tuple[Counter[str], int, int, int]:
    """Count the tokens of ``chunks`` (from a file or from token lists), pruning past ``max_distinct``.

    Returns ``(counts, lines, pruned_occurrences, prune_threshold)``: the token counter, the number of
    lines, how many occurrences pruning discarded, and the last threshold applied (0: exact counts).
    """
    return count_blocks((LineBlock(iter([chunk.tokens]), chunk.line_end) for chunk in chunks), max_distinct)


def _prune(counter: Counter[str], threshold: int) -> int:
    """Drop from ``counter`` every token but ``<unk>`` seen at most ``threshold`` times (word2vec's
    ``ReduceVocab``); return how many occurrences went."""
    rare = [t for t, c in counter.items() if c <= threshold and t != Vocab.UNK]
    return sum(counter.pop(token) for token in rare)


def check_limits(min_count: int, max_size: int | None) -> None:
    if min_count < 1:
        raise NceLmError(f"min_count must be at least 1, got {min_count}")
    if max_size is not None and max_size < 3:
        raise NceLmError(f"max_size must be at least 3 (two special tokens and one word), got {max_size}")


def build_vocab(
    paths: Iterable[str | os.PathLike[str]],
    min_count: int = 1,
    max_size: int | None = None,
    tokenizer: TokenizerConfig = TokenizerConfig(),
    errors: str = "strict",
    max_distinct: int = DEFAULT_MAX_DISTINCT,
    progress: bool = False,
    max_final_vocab: int | None = None,
) -> Vocab:
    """Count the corpus and keep tokens with count >= ``min_count``, at most ``max_size`` entries in all.

    ``max_size`` counts the two specials; past it, of tokens with equal counts the first by string are kept.
    ``max_final_vocab`` (gensim's) instead raises ``min_count`` (:func:`final_vocab_min_count`, saved as
    ``settings["effective_min_count"]``), so words with equal counts are kept or dropped together. A vocabulary
    with no ordinary token is an :class:`NceLmError`. ``progress``: a bar of the bytes read, past 2 seconds.
    """
    check_limits(min_count, max_size)  # before a long count
    files = expand_inputs(paths)
    counted = count_tokens(files, tokenizer, errors, max_distinct, "counting words" if progress else None)
    refuse_control_characters(counted[0], files, errors)
    return vocab_from_counts(
        *counted,
        min_count=min_count,
        max_size=max_size,
        tokenizer=tokenizer,
        settings=file_settings(files, errors, max_distinct),
        max_final_vocab=max_final_vocab,
    )


def file_settings(files: list[Path], errors: str, max_distinct: int) -> dict[str, Any]:
    """What a vocabulary counted from ``files`` records of how it was read (its ``settings``)."""
    sources = [{"path": str(f.resolve()), "bytes": f.stat().st_size} for f in files]
    return {"max_distinct": max_distinct, "errors": errors, "sources": sources}


def vocab_from_counts(
    counter: Counter[str],
    lines: int,
    pruned: int,
    threshold: int,
    min_count: int = 1,
    max_size: int | None = None,
    tokenizer: TokenizerConfig = TokenizerConfig(),
    settings: dict[str, Any] | None = None,
    max_final_vocab: int | None = None,
) -> Vocab:
    """The vocabulary of counted tokens (:func:`count_chunks`' result): :func:`build_vocab`'s rules."""
    check_limits(min_count, max_size)
    unk_count = counter.pop(Vocab.UNK, 0) + pruned
    eos_count = counter.pop(Vocab.EOS, 0) + lines
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    effective_min_count = final_vocab_min_count([c for _, c in ranked], min_count, max_final_vocab)
    kept = [item for item in ranked if item[1] >= effective_min_count]
    if max_size is not None:
        kept = kept[: max_size - 2]
    if not kept:
        total = sum(counter.values())
        raise NceLmError(
            f"the vocabulary is empty: no token of the {total} in the corpus occurs at least "
            f"min_count={min_count} times"
        )
    unk_count += sum(counter.values()) - sum(c for _, c in kept)
    settings = {
        "min_count": min_count,
        "max_final_vocab": max_final_vocab,
        "effective_min_count": effective_min_count,
        "max_size": max_size,
        "prune_threshold": threshold,
        **(settings or {}),
    }
    tokens = [Vocab.UNK, Vocab.EOS] + [t for t, _ in kept]
    counts = [unk_count, eos_count] + [c for _, c in kept]
    return Vocab(tokens, counts, tokenizer, settings)


def final_vocab_min_count(ranked_counts: list[int], min_count: int, max_final_vocab: int | None) -> int:
    """The ``min_count`` that leaves at most ``max_final_vocab`` words, as gensim's ``prepare_vocab`` sets it.

    ranked_counts: every word's count, most frequent first. With more than N = ``max_final_vocab`` words, the
    count of the (N + 1)-th word plus one (so that word and every word tied with it go), else 1; never below
    ``min_count``. With ties at the cut the vocabulary is smaller than N: counts 9, 7, 7, 5 and N = 2 keep
    only the word seen 9 times.
    """
    if max_final_vocab is None:
        return min_count
    if max_final_vocab < 1:
        raise NceLmError(f"max_final_vocab must be at least 1, got {max_final_vocab}")
    cut = ranked_counts[max_final_vocab] + 1 if len(ranked_counts) > max_final_vocab else 1
    return max(min_count, cut)


def coverage(vocab: Vocab) -> float:
    """Fraction of the corpus's word tokens (not counting <eos>) that the vocabulary covers (not <unk>)."""
    words = int(vocab.counts.sum() - vocab.counts[vocab.eos_id])
    return float(vocab.counts[2:].sum()) / words if words else 0.0
