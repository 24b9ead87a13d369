"""word2vec's two vector files (Mikolov et al. 2013, the ``word2vec`` tool's ``-binary 1|0``), read and written.

Both start with a header ``"<count> <dim>\\n"``; binary then holds per word its UTF-8 bytes, a space and ``dim``
little-endian float32 values, text one ``word v1 ... vd`` line per word. Binary is read through gensim (bit for
bit) and written here, byte for byte as gensim writes it (importing gensim would cost a skip-gram run about a
second); text is read and written here, because gensim's is slower and lax. The header is checked against the
file's size before anything is allocated (gensim allocates what it declares). Timings: docs/vectors.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nce_lm.decoding import undecodable
from nce_lm.errors import NceLmError

PICKLE_MAGIC = b"\x80"  # the first byte of a pickle (protocol 2 and later): gensim's native formats


def check_words(words: list[str]) -> None:
    """Refuse a word the word2vec formats cannot store: empty, or holding whitespace (their separator)."""
    for word in words:
        if not word or any(ch.isspace() for ch in word):
            raise NceLmError(f"word {word!r} is empty or holds whitespace: the word2vec formats cannot store it")


def write_binary(path: str | os.PathLike[str], words: list[str], vectors: np.ndarray) -> None:
    """word2vec binary at ``path`` (not atomically: the caller writes a temporary): the header, then per word its
    UTF-8 bytes, a space and its d little-endian float32 values, rows back to back — byte for byte what gensim's
    ``save_word2vec_format(binary=True)`` writes (tests/test_vectors.py), without importing gensim (about 1 s)."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    with open(path, "wb") as out:
        out.write(f"{len(words)} {rows.shape[1]}\n".encode())
        out.writelines(word.encode() + b" " + row.tobytes() for word, row in zip(words, rows))


def write_text(path: str | os.PathLike[str], words: list[str], vectors: np.ndarray) -> None:
    """word2vec text at ``path`` (not atomically: the caller writes a temporary), ``%.9g``: float32 exactly."""
    with open(path, "wb") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, row in zip(words, vectors.tolist()):
            out.write(f"{word} {' '.join(f'{x:.9g}' for x in row)}\n".encode())


def _parse_header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise NceLmError(f"{path} is not a word2vec file: the first line must be '<count> <dim>'")
    count, dim = int(parts[0]), int(parts[1])
    if count < 1 or dim < 1:
        raise NceLmError(f"{path} declares {count} vectors of dimension {dim}")
    return count, dim


def _check_size(path: Path, count: int, dim: int, body_bytes: int, binary: bool) -> None:
    """Refuse a header whose rows cannot fit in the ``body_bytes`` after it, before anything is allocated.

    Each binary row takes at least 4·dim + 2 bytes (a one-byte word, a space, the floats); each text row at
    least 2·dim + 2 (a word, then a space and a digit per value, a newline).
    """
    least = count * ((4 if binary else 2) * dim + 2)
    if least > body_bytes:
        raise NceLmError(
            f"{path} declares {count:,} vectors of dimension {dim:,}, which take at least {least:,} "
            f"bytes, but holds {body_bytes:,}: the header is wrong or the file truncated"
        )


def _read_binary(path: Path, count: int, errors: str) -> tuple[list[str], np.ndarray]:
    from gensim.models import KeyedVectors

    try:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors=errors)
    except EOFError:
        raise NceLmError(f"{path} is truncated: it holds fewer than the {count:,} vectors declared") from None
    except UnicodeDecodeError as err:
        raise undecodable(f"{path}: a word is not valid UTF-8", err) from None
    if len(keyed.key_to_index) != len(keyed.index_to_key):
        raise NceLmError(f"{path}: a word appears twice")
    return list(keyed.index_to_key), keyed.vectors  # gensim's made-up counts left behind


def _read_text(path: Path, handle: BinaryIO, count: int, dim: int, errors: str) -> tuple[list[str], np.ndarray]:
    words, rows = [], np.empty((count, dim), dtype=np.float32)
    for i in range(count):
        line = handle.readline()
        if not line:
            raise NceLmError(f"{path} is truncated: {i} of {count} vectors read")
        try:
            parts = line.decode("utf-8", errors).rstrip("\n").rstrip(" ").split(" ")
        except UnicodeDecodeError as err:
            raise undecodable(f"{path}: line {i + 2} is not valid UTF-8", err) from None
        try:
            values = [float(x) for x in parts[1:]]
        except ValueError:
            raise NceLmError(f"{path}: line {i + 2} is not '<word> <{dim} numbers>'") from None
        if len(values) != dim:
            raise NceLmError(f"{path}: line {i + 2} has {len(values)} values, expected {dim}")
        words.append(parts[0])
        rows[i] = values
    return words, rows


def read_word2vec(path: Path, binary: bool | None, errors: str) -> tuple[list[str], np.ndarray]:
    """Words and float32 vectors (V, d) of a word2vec file; ``binary`` None tells binary from text by the bytes
    after the header. A pickle is refused here: its loader is gensim's and needs the caller's consent."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.readline(256)
        if first.startswith(PICKLE_MAGIC):
            raise NceLmError(f"{path} is a pickle (gensim's native format), not a word2vec file")
        count, dim = _parse_header(first, path)
        start = handle.tell()
        if binary is None:
            sample = handle.read(min(4 * dim + 256, 1 << 16))
            handle.seek(start)
            binary = not all(b == 0x0A or b == 0x0D or b >= 0x20 or b == 0x09 for b in sample)
        _check_size(path, count, dim, size - start, binary)
        if not binary:
            return _read_text(path, handle, count, dim, errors)
    return _read_binary(path, count, errors)


def is_pickle(path: Path) -> bool:
    """Whether the file starts as a pickle does (gensim's ``.save``), which only a trusted source may be."""
    with open(path, "rb") as handle:
        return handle.read(1) == PICKLE_MAGIC
