"""The token-id cache: ids with <eos> per line, reuse, and invalidation when sources or vocabulary change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nce_lm.errors import NceLmError
from nce_lm.pipeline import token_cache
from nce_lm.pipeline.token_cache import IDS_FILE, MANIFEST_FILE, cached_token_ids, load_or_build
from nce_lm.pipeline.vocab import build_vocab


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("a b a\nc a\n\nb zzz\n")
    return path


def test_ids_follow_the_vocabulary_with_eos_per_line(tmp_path: Path, corpus: Path) -> None:
    vocab = build_vocab([corpus], min_count=2)  # a:3, b:2; c and zzz become <unk>
    ids = cached_token_ids([corpus], vocab, tmp_path / "cache")
    a, b, unk, eos = vocab.index("a"), vocab.index("b"), vocab.unk_id, vocab.eos_id
    assert ids.tolist() == [a, b, a, eos, unk, a, eos, eos, b, unk, eos]
    assert ids.dtype == np.int32 and isinstance(ids, np.memmap)
    # The encoded stream's frequencies are exactly the vocabulary counts.
    assert np.bincount(ids, minlength=len(vocab)).tolist() == vocab.counts.tolist()


def test_cache_is_reused_then_rebuilt_when_inputs_change(tmp_path: Path, corpus: Path) -> None:
    vocab = build_vocab([corpus])
    cache_dir = tmp_path / "cache"
    assert not load_or_build([corpus], vocab, cache_dir).reused
    assert load_or_build([corpus], vocab, cache_dir).reused

    corpus.write_text("a b a\nc a\n\nb zzz a\n")  # the source changes
    os.utime(corpus, ns=(1, 1))
    rebuilt = load_or_build([corpus], vocab, cache_dir)
    assert not rebuilt.reused and len(rebuilt.ids) == 12

    other_vocab = build_vocab([corpus], min_count=2)  # the vocabulary changes
    assert not load_or_build([corpus], other_vocab, cache_dir).reused
    assert load_or_build([corpus], other_vocab, cache_dir).reused
    assert not load_or_build([corpus], other_vocab, cache_dir, errors="replace").reused


def test_damaged_cache_is_rebuilt_not_trusted(tmp_path: Path, corpus: Path) -> None:
    vocab = build_vocab([corpus])
    cache_dir = tmp_path / "cache"
    expected = cached_token_ids([corpus], vocab, cache_dir).tolist()
    (cache_dir / MANIFEST_FILE).write_text("{ truncated")
    assert not load_or_build([corpus], vocab, cache_dir).reused
    ids_path = cache_dir / IDS_FILE
    ids_path.write_bytes(ids_path.read_bytes()[:-4])  # one id short
    rebuilt = load_or_build([corpus], vocab, cache_dir)
    assert not rebuilt.reused and rebuilt.ids.tolist() == expected


def test_cache_with_an_id_outside_the_vocabulary_is_rebuilt(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_cache, "ID_BLOCK", 5)  # the range is checked a block at a time, read from the file
    vocab = build_vocab([corpus])
    cache_dir = tmp_path / "cache"
    expected = cached_token_ids([corpus], vocab, cache_dir).tolist()
    ids_path, manifest_path = cache_dir / IDS_FILE, cache_dir / MANIFEST_FILE
    ids = np.load(ids_path)
    ids[-2] = len(vocab)  # in the last block
    np.save(ids_path, ids)
    manifest = json.loads(manifest_path.read_text())
    manifest["ids_file"] = {"bytes": ids_path.stat().st_size, "mtime_ns": ids_path.stat().st_mtime_ns}
    manifest_path.write_text(json.dumps(manifest))  # the ids file's size and time as the manifest says
    rebuilt = load_or_build([corpus], vocab, cache_dir)
    assert not rebuilt.reused and rebuilt.ids.tolist() == expected


def test_cache_errors(tmp_path: Path, corpus: Path) -> None:
    vocab = build_vocab([corpus])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NceLmError, match="not a folder"):
        load_or_build([corpus], vocab, blocker)
    with pytest.raises(NceLmError, match="not found"):
        load_or_build([tmp_path / "absent.txt"], vocab, tmp_path / "cache")
