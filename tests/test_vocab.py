"""The vocabulary: exact counts on the reference corpora, ordering, pruning, JSON round trip and its errors."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nce_lm.errors import NceLmError
from nce_lm.pipeline.corpus import TokenizerConfig
from nce_lm.pipeline.vocab import Vocab, build_vocab, count_tokens, coverage


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
