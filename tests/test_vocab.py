"""The vocabulary: exact counts on the reference corpora, ordering, pruning, JSON round trip and its errors."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tokenizers import pre_tokenizers

from nce_lm.errors import NceLmError
from nce_lm.pipeline.corpus import DEFAULT_BLOCK_SIZE, TokenizerConfig, iter_chunks, iter_line_blocks
from nce_lm.pipeline.token_cache import build_vocab_and_ids, load_or_build
from nce_lm.pipeline.vocab import Vocab, build_vocab, count_chunks, count_tokens, coverage


def plain_python_counts(path: Path) -> tuple[Counter[str], int]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return Counter(token for line in lines for token in line.split()), len(lines)


@pytest.mark.parametrize(
    "relative, word_types", [("ptb/ptb.train.txt.gz", 9_999), ("wikitext-2/wiki.train.tokens.gz", 33_277)]
)
def test_reference_corpora_counted_exactly(shared_data: Path, relative: str, word_types: int) -> None:
    path = shared_data / relative
    vocab = build_vocab([path], min_count=1)
    expected, lines = plain_python_counts(path)
    # Every word type (the corpus's own <unk> included) plus <eos>.
    assert len(expected) == word_types
    assert len(vocab) == word_types + 1
    assert vocab.counts[vocab.eos_id] == lines
    assert vocab.counts[vocab.unk_id] == expected["<unk>"]
    assert {t: int(c) for t, c in zip(vocab.tokens[2:], vocab.counts[2:])} == {
        t: c for t, c in expected.items() if t != "<unk>"
    }
    assert coverage(vocab) == pytest.approx(1 - expected["<unk>"] / sum(expected.values()))


def test_order_is_count_descending_then_token(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("b a c a\nb d <unk> a\n")
    vocab = build_vocab([path])
    assert vocab.tokens == ["<unk>", "<eos>", "a", "b", "c", "d"]
    assert vocab.counts.tolist() == [1, 2, 3, 2, 1, 1]
    assert vocab.encode(["a", "zzz", "d"]).tolist() == [2, 0, 5]
    assert vocab.encode(["a"]).dtype == np.int32


def test_min_count_and_max_size_move_dropped_tokens_to_unk(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("a a a b b c\n")
    vocab = build_vocab([path], min_count=2)
    assert vocab.tokens == ["<unk>", "<eos>", "a", "b"]
    assert vocab.counts.tolist() == [1, 1, 3, 2]
    capped = build_vocab([path], max_size=3)
    assert capped.tokens == ["<unk>", "<eos>", "a"] and capped.counts.tolist() == [3, 1, 3]
    assert capped.counts.sum() == 7  # every token plus one <eos> per line


def test_vocabulary_that_comes_out_empty_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("a b c\n")
    with pytest.raises(NceLmError, match="vocabulary is empty"):
        build_vocab([path], min_count=2)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(NceLmError, match="vocabulary is empty"):
        build_vocab([empty])
    with pytest.raises(NceLmError, match="min_count"):
        build_vocab([path], min_count=0)
    with pytest.raises(NceLmError, match="max_size"):
        build_vocab([path], max_size=2)


def test_pruning_bounds_distinct_tokens_and_keeps_the_total(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    rare = " ".join(f"r{i}" for i in range(50))
    path.write_text(f"a a a a b b b {rare}\n" * 3)
    counter, lines, _pruned, threshold = count_tokens([path], max_distinct=10)
    assert len(counter) <= 10 and threshold >= 1 and lines == 3
    assert counter["a"] == 12 and counter["b"] == 9
    vocab = build_vocab([path], max_distinct=10)
    assert vocab.counts.sum() == 3 * (7 + 50) + 3
    assert vocab.settings["prune_threshold"] == threshold


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("Ünïcode words ünïcode\nwords\n")
    vocab = build_vocab([path], tokenizer=TokenizerConfig(lowercase=True))
    saved = tmp_path / "vocab.json"
    vocab.save(saved)
    loaded = Vocab.load(saved)
    assert loaded.tokens == vocab.tokens
    assert loaded.counts.tolist() == vocab.counts.tolist()
    assert loaded.tokenizer == TokenizerConfig(lowercase=True)
    assert loaded.fingerprint() == vocab.fingerprint()
    assert loaded.settings == vocab.settings


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON|invalid|corrupt"),
        (lambda text: json.dumps({"format": "something else"}), "not an nce_lm vocabulary"),
        (lambda text: text.replace('"version": 1', '"version": 99'), "unsupported version"),
        (lambda text: text.replace('"<eos>"', '"<bos>"'), "special tokens"),
        (lambda text: text.replace('"a"', '"b"'), "twice"),
    ],
)
def test_corrupted_vocabulary_files_are_rejected(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "c.txt"
    path.write_text("a b b\n")
    saved = tmp_path / "vocab.json"
    build_vocab([path]).save(saved)
    saved.write_text(damage(saved.read_text()))
    with pytest.raises(NceLmError, match=message):
        Vocab.load(saved)


def test_missing_vocabulary_file(tmp_path: Path) -> None:
    with pytest.raises(NceLmError, match="not found|No such|cannot"):
        Vocab.load(tmp_path / "absent.json")


# Every whitespace both str.split and tokenizers' WhitespaceSplit split on (tab, \r\n, vertical tab, form feed,
# NEL, no-break and ideographic spaces, line and paragraph separators), empty lines, non-ASCII words, the
# specials written out, a line that a small block cuts, and a last line without a newline.
HOSTILE_LINES = [
    "tab\tseparated\twords\r",
    "windows line\r",
    "",
    "\u00a0no-break\u00a0spaces  \u2003em\u2003space\u3000ideographic",
    "next\x85line and line\u2028separator paragraph\u2029separator",
    "Ärger über naïve café 日本語 \x0bvertical\x0cfeed",
    "",
    "<unk> <eos> written out, words again: café über tab",
    "a line longer than a small block, cut\u3000at whitespace " * 8,
]
HOSTILE = "\n".join(HOSTILE_LINES * 40 + ["the last line has no newline"])


def tokenizers_reference(text: str, min_count: int) -> tuple[list[str], list[int], list[int]]:
    """The vocabulary (tokens, counts) and ids of ``text`` by the rules of docs/pipeline.md, tokenized by Hugging
    Face's WhitespaceSplit line by line, with plain Python: what the fast paths must give."""
    splitter = pre_tokenizers.WhitespaceSplit()
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    token_lines = [[token for token, _ in splitter.pre_tokenize_str(line)] for line in lines]
    counts = Counter(token for line in token_lines for token in line)
    unk, eos = counts.pop("<unk>", 0), counts.pop("<eos>", 0) + len(lines)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = [(token, count) for token, count in ranked if count >= min_count]
    unk += sum(count for _, count in ranked if count < min_count)
    tokens = ["<unk>", "<eos>"] + [token for token, _ in kept]
    index = {token: i for i, token in enumerate(tokens)}
    ids = [i for line in token_lines for i in [index.get(token, 0) for token in line] + [1]]
    return tokens, [unk, eos] + [count for _, count in kept], ids


@pytest.mark.parametrize("block_size", [64, DEFAULT_BLOCK_SIZE])
@pytest.mark.parametrize("min_count", [1, 3])
def test_fast_paths_give_the_tokenizers_vocabulary_and_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int, min_count: int
) -> None:
    """The default mode splits with str.split, line by line as each line is counted or encoded, and (one pass)
    numbers tokens in order of appearance before the vocabulary is known: all of it must equal WhitespaceSplit's
    tokens counted and encoded by plain Python."""
    monkeypatch.setitem(iter_line_blocks.__kwdefaults__, "block_size", block_size)  # many blocks, cut lines
    path = tmp_path / "hostile.txt"
    path.write_bytes(HOSTILE.encode("utf-8"))
    tokens, counts, ids = tokenizers_reference(HOSTILE, min_count)
    assert "\u00a0no-break" not in tokens and "next" in tokens and "\r" not in "".join(tokens)
    vocab = build_vocab([path], min_count=min_count)
    assert (vocab.tokens, vocab.counts.tolist()) == (tokens, counts)
    assert load_or_build([path], vocab, tmp_path / "two").ids.tolist() == ids
    one_pass_vocab, cache = build_vocab_and_ids([path], tmp_path / "one", min_count=min_count)
    assert one_pass_vocab.to_dict() == vocab.to_dict()
    assert cache.ids.tolist() == ids and cache.manifest["lines"] == counts[1] - HOSTILE.count("<eos>")


@pytest.mark.parametrize("max_distinct", [5, 30, 10_000])
def test_counting_by_blocks_prunes_as_counting_by_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_distinct: int
) -> None:
    """Counting blocks of lines prunes after the same lines as counting chunks, so the counts, the pruned total
    and the threshold equal count_chunks'; the one-pass build, which cannot prune, reads such a corpus twice and
    gives what build_vocab and load_or_build give."""
    monkeypatch.setitem(iter_line_blocks.__kwdefaults__, "block_size", 256)
    path = tmp_path / "c.txt"
    path.write_text("".join(f"a a a b b c{i} d{i % 7} e{i % 3}\n" for i in range(300)))
    by_lines = count_chunks(iter_chunks([path], block_size=256), max_distinct)
    assert count_tokens([path], max_distinct=max_distinct) == by_lines
    assert (by_lines[3] > 0) == (max_distinct < 300)
    vocab = build_vocab([path], max_distinct=max_distinct)
    one_pass_vocab, cache = build_vocab_and_ids([path], tmp_path / "one", max_distinct=max_distinct)
    assert one_pass_vocab.to_dict() == vocab.to_dict()
    assert cache.ids.tolist() == load_or_build([path], vocab, tmp_path / "two").ids.tolist()
