"""The streaming reader: compressed inputs, folders, very long lines, bad bytes, tokenizer settings."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest
from tokenizers import normalizers, pre_tokenizers

from nce_lm.errors import NceLmError
from nce_lm.pipeline.corpus import TokenizerConfig, expand_inputs, iter_chunks

TEXT = "the cat sat\non the  mat\n\nÄrger über naïve café\nlast line without newline"


def lines_of(paths, **kwargs) -> list[list[str]]:
    """Reassemble chunks into lines (a line is the concatenation of its chunks)."""
    lines: list[list[str]] = [[]]
    for chunk in iter_chunks(paths, **kwargs):
        lines[-1].extend(chunk.tokens)
        if chunk.line_end:
            lines.append([])
    assert lines[-1] == []
    return lines[:-1]


@pytest.mark.parametrize("suffix, opener", [("", open), (".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_inputs_read_like_plain_text(tmp_path: Path, suffix: str, opener) -> None:
    path = tmp_path / f"corpus.txt{suffix}"
    with opener(path, "wb") as handle:
        handle.write(TEXT.encode("utf-8"))
    assert lines_of([path]) == [line.split() for line in TEXT.split("\n")]


def test_multibyte_characters_split_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "utf8.txt"
    path.write_text(TEXT, encoding="utf-8")
    for block_size in (1, 2, 3, 7):
        assert lines_of([path], block_size=block_size) == [line.split() for line in TEXT.split("\n")]


def test_directories_expand_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("two\n")
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / ".hidden").write_text("secret\n")
    assert expand_inputs([tmp_path]) == [tmp_path / "a.txt", tmp_path / "b" / "2.txt"]
    assert lines_of([tmp_path]) == [["one"], ["two"]]


def test_one_very_long_line_is_streamed_in_bounded_chunks(tmp_path: Path) -> None:
    words = [f"w{i % 997}" for i in range(200_000)]
    path = tmp_path / "text8"
    path.write_text(" ".join(words))  # one line, no newline, like text8
    block = 4096
    chunks = list(iter_chunks([path], block_size=block))
    assert len(chunks) > 100
    assert all(not c.line_end for c in chunks[:-1]) and chunks[-1].line_end
    assert max(sum(len(t) + 1 for t in c.tokens) for c in chunks) <= 2 * block + 1
    assert [t for c in chunks for t in c.tokens] == words


def test_missing_empty_and_odd_inputs(tmp_path: Path) -> None:
    with pytest.raises(NceLmError, match="not found"):
        list(iter_chunks([tmp_path / "nope.txt"]))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(NceLmError, match="holds no corpus files"):
        list(iter_chunks([empty_dir]))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert list(iter_chunks([empty])) == []
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(NceLmError, match="cannot read corpus file"):
        list(iter_chunks([broken]))


def test_undecodable_bytes_name_file_and_offset_or_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good words\nbad \xff byte\n")
    with pytest.raises(NceLmError, match=r"bad\.txt: invalid UTF-8 at byte offset 15"):
        list(iter_chunks([path], block_size=4))
    assert lines_of([path], errors="replace") == [["good", "words"], ["bad", "\ufffd", "byte"]]
    with pytest.raises(NceLmError, match="errors must be one of"):
        list(iter_chunks([path], errors="ignore"))


def test_tokenizer_options_agree_with_hugging_face_tokenizers(tmp_path: Path) -> None:
    text = "Hello, World! It's 3.5 km\x1cfar\nÉcole NORMALE."
    path = tmp_path / "t.txt"
    path.write_text(text)
    for lowercase in (False, True):
        for split_punctuation in (False, True):
            config = TokenizerConfig(lowercase, split_punctuation)
            splitter = pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
            expected = []
            for line in text.split("\n"):
                if lowercase:
                    line = normalizers.Lowercase().normalize_str(line)
                expected.append([token for token, _ in splitter.pre_tokenize_str(line)])
            assert lines_of([path], tokenizer=config) == expected
    # U+001C is whitespace to Python's str.split but not to WhitespaceSplit: the fast path must not split on it.
    assert "km\x1cfar" in lines_of([path])[0]


def test_tokenizer_config_round_trip_and_validation() -> None:
    config = TokenizerConfig(lowercase=True)
    assert TokenizerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(NceLmError, match="unknown tokenizer settings"):
        TokenizerConfig.from_dict({"lowercase": True, "stem": True})
    with pytest.raises(NceLmError, match="true or false"):
        TokenizerConfig.from_dict({"lowercase": "yes"})


@pytest.mark.parametrize("ending", ["", " ", "\n", " \n"])
def test_a_long_line_is_one_line_whatever_its_ending(tmp_path: Path, ending: str) -> None:
    path = tmp_path / "long.txt"
    path.write_text("a b c d e f g h " * 50 + "end" + ending + "next line\nx" * (ending == "\n"))
    chunks = list(iter_chunks([path], block_size=16))
    ends = [i for i, c in enumerate(chunks) if c.line_end]
    first_line = [t for c in chunks[: ends[0] + 1] for t in c.tokens]
    assert first_line == ["a", "b", "c", "d", "e", "f", "g", "h"] * 50 + ["end"]
    assert len(ends) == (3 if ending == "\n" else 1)
