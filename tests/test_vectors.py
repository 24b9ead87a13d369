"""Exported vectors reload exactly, in our loader and in gensim's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nce_lm.errors import NceLmError
from nce_lm.vectors.formats import FORMATS
from nce_lm.vectors.word_vectors import WordVectors


@pytest.fixture
def vectors() -> WordVectors:
    rng = np.random.default_rng(0)
    words = ["the", "naïve", "café", "東京", "Ärger", "x" * 40, "end"]
    values = rng.normal(size=(len(words), 7)).astype(np.float32)
    values[1] = [1e-38, -3.4e38, 0.1, 1 / 3, -0.0, 7e-45, 123456.789]  # extremes survive
    return WordVectors(words, values, np.array([900, 50, 40, 30, 20, 10, 5]))


@pytest.mark.parametrize("format", [name for name, fmt in FORMATS.items() if not fmt.needs_training])
def test_every_format_round_trips_through_gensim(tmp_path: Path, vectors: WordVectors, format: str) -> None:
    path = tmp_path / ("vectors.kv" if format == "gensim" else f"vectors.{format}")
    vectors.save(path, format)
    if format == "gensim":
        keyed = KeyedVectors.load(str(path))
        assert [keyed.get_vecattr(w, "count") for w in vectors.words] == vectors.counts.tolist()
    else:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=format == "word2vec-bin")
    assert keyed.index_to_key == vectors.words  # our order, not re-sorted
    np.testing.assert_array_equal(keyed.vectors, vectors.vectors)  # bit for bit, text included (%.9g)
    ours = WordVectors.load(path, trust_pickle=format == "gensim")
    assert ours.words == vectors.words
    np.testing.assert_array_equal(ours.vectors, vectors.vectors)


def test_binary_file_is_gensims_byte_for_byte(tmp_path: Path) -> None:
    words = ["the", "naïve", "東京", "x"]
    table = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    ours, theirs = tmp_path / "ours.bin", tmp_path / "theirs.bin"
    WordVectors(words, table).save(ours, "word2vec-bin")
    keyed = KeyedVectors(vector_size=5, dtype=np.float32)
    keyed.add_vectors(words, table)
    keyed.save_word2vec_format(str(theirs), binary=True, sort_attr=None)
    assert ours.read_bytes() == theirs.read_bytes()


def test_gensim_written_word2vec_files_load(tmp_path: Path, vectors: WordVectors) -> None:
    keyed = vectors.to_gensim()
    for binary in (True, False):
        path = tmp_path / f"gensim.{binary}"
        keyed.save_word2vec_format(str(path), binary=binary)
        loaded = WordVectors.load(path)
        reference = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert loaded.words == reference.index_to_key
        np.testing.assert_array_equal(loaded.vectors, reference.vectors)


def test_bad_vectors_and_files(tmp_path: Path, vectors: WordVectors) -> None:
    with pytest.raises(NceLmError, match="whitespace"):
        WordVectors(["a b"], np.zeros((1, 2))).save(tmp_path / "v.bin")
    assert not (tmp_path / "v.bin").exists()
    with pytest.raises(NceLmError, match="unknown vector format"):
        vectors.save(tmp_path / "v.x", "glove")
    path = tmp_path / "v.bin"
    vectors.save(path, "word2vec-bin")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(NceLmError, match="truncated"):
        WordVectors.load(path)
    path.write_text("not a header\n")
    with pytest.raises(NceLmError, match="not a word2vec file"):
        WordVectors.load(path)
    with pytest.raises(NceLmError, match="not found"):
        WordVectors.load(tmp_path / "absent")
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(NceLmError, match="cannot load gensim vectors"):
        WordVectors.load(path, "gensim", trust_pickle=True)
    with pytest.raises(NceLmError, match="gensim-model format holds a trainer's output vectors"):
        vectors.save(tmp_path / "w2v.model", "gensim-model")
    with pytest.raises(NceLmError, match="appears twice"):
        WordVectors(["a", "a"], np.zeros((2, 3)))


class _Trap:
    """Unpickling this calls ``_sprung`` (pickle's __reduce__): what a hostile file does to whoever loads it."""

    def __reduce__(self):
        return (_sprung, ())


SPRUNG: list[bool] = []


def _sprung() -> None:
    SPRUNG.append(True)


def test_a_pickle_is_loaded_only_with_trust_pickle(tmp_path: Path) -> None:
    """Issue 25: a .kv file was unpickled because of its name, and ran its payload. Whatever the name and the
    format asked for, a pickle is refused without trust_pickle, and nothing runs."""
    import pickle

    payload = pickle.dumps(_Trap(), protocol=4)
    for name in ("GoogleNews-vectors.bin", "vectors.kv", "w2v.model"):
        hostile = tmp_path / name
        hostile.write_bytes(payload)
        for format in (None, "auto", "gensim", "gensim-model"):
            with pytest.raises(
                NceLmError,
                match="a pickle .gensim's native format., which runs code when loaded; if "
                "you trust the file's source, add --trust-pickle .Python: trust_pickle=True.$",
            ):
                WordVectors.load(hostile, format)
        for format in ("word2vec-bin", "word2vec-txt"):
            with pytest.raises(NceLmError, match="is a pickle .gensim's native format., not a word2vec file"):
                WordVectors.load(hostile, format)
    assert SPRUNG == []  # nothing ran
    with pytest.raises(NceLmError, match="cannot load gensim vectors|not gensim KeyedVectors"):
        WordVectors.load(hostile, trust_pickle=True)  # the user's consent: loaded, and then refused
    assert SPRUNG == [True]


@pytest.mark.parametrize(
    "header, body",
    [
        (b"1000000000 1000000000\n", b"a " + b"\0" * 8),  # absurd sizes: refused before allocating
        (b"3 4\n", b"a " + b"\0" * 16 + b"\n"),  # binary: 3 rows declared, 1 present
        (b"3 4\n", b"a 1 2 3 4\n"),  # text: the same
        (b"99999999999999999999 2\n", b"a 1 2\n"),
    ],
)
def test_headers_are_checked_against_the_file_size(tmp_path: Path, header: bytes, body: bytes) -> None:
    path = tmp_path / "v.bin"
    path.write_bytes(header + body)
    with pytest.raises(NceLmError, match="take at least|not a word2vec file"):
        WordVectors.load(path)


def test_non_finite_vectors_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("2 2\na 1 2\nb nan 1\n")
    with pytest.raises(NceLmError, match="'b' holds NaN"):
        WordVectors.load(path)


@pytest.mark.parametrize(
    "body, binary, message",
    [
        (b"2 2\na " + b"\0" * 8 + b"a " + b"\0" * 8, True, "appears twice"),  # gensim: an empty second row
        (b"1 2\n\xff\xfe " + b"\0" * 8, True, "not valid UTF-8"),
        (b"2 2\na 1 2\nb 1\nc 1 2\n", False, "has 1 values, expected 2"),  # gensim: the 1 repeated
        (b"2 2\na 1 2\nb 1 2 3\n", False, "has 3 values, expected 2"),
        (b"2 2\na 1 2\nb 1 x\n", False, "is not '<word> <2 numbers>'"),
    ],
)
def test_damaged_word2vec_files_are_refused(tmp_path: Path, body: bytes, binary: bool, message: str) -> None:
    path = tmp_path / "v.vec"
    path.write_bytes(body)
    with pytest.raises(NceLmError, match=message):
        WordVectors.load(path, "word2vec-bin" if binary else "word2vec-txt")


@pytest.mark.parametrize("format", ["word2vec-txt", "word2vec-bin"])
def test_an_undecodable_word_is_refused_or_replaced(tmp_path: Path, format: str) -> None:
    vectors = WordVectors(["king", "qu\ufffdeen"], np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    path = tmp_path / "v.vec"
    vectors.save(path, format)
    path.write_bytes(path.read_bytes().replace("\ufffd".encode(), b"\xff"))
    with pytest.raises(NceLmError, match=r"is not valid UTF-8 \(byte 0xff\).*--replace-errors"):
        WordVectors.load(path, format)
    loaded = WordVectors.load(path, format, errors="replace")
    assert loaded.words == vectors.words and np.array_equal(loaded.vectors, vectors.vectors)
