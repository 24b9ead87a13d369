"""Token ids on disk: a corpus encoded once into an int32 ``.npy`` file, memory-mapped by every later run.

A cache folder holds ``tokens.npy`` (shape (N,)) and ``manifest.json``, which records the sources (path, size,
mtime), the vocabulary fingerprint, the tokenizer and decoding settings and the ``.npy``'s size and mtime; the
ids are reused only when all still match. The manifest is removed before a rebuild and written last, so an
interrupted rebuild is rebuilt rather than trusted; a rebuild holds an exclusive :mod:`nce_lm.locks` lock, a
reuse a shared one. Contract: docs/architecture.md, "Token ids on disk".
"""

from __future__ import annotations

import itertools
import mmap
import os
import shutil
import struct
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nce_lm.clobber import check_output_folder, check_outputs
from nce_lm.decoding import check_error_mode
from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path, read_json, write_json_atomic
from nce_lm.locks import folder_lock
from nce_lm.pipeline.corpus import LineBlock, TokenizerConfig, expand_inputs, iter_line_blocks
from nce_lm.pipeline.vocab import (
    DEFAULT_MAX_DISTINCT,
    Vocab,
    build_vocab,
    check_limits,
    file_settings,
    refuse_control_characters,
    vocab_from_counts,
)

MANIFEST_FORMAT = "nce_lm.pipeline.token_cache"
MANIFEST_VERSION = 1
IDS_FILE = "tokens.npy"
MANIFEST_FILE = "manifest.json"
VOCAB_FILE = "vocab.json"  # a copy of the vocabulary, written by ``nce-lm prepare`` so the folder is self-contained
ID_BLOCK = 1 << 22  # ids read or rewritten at a time by a pass over a whole cache (16 MiB)
_NPY_HEADER_BYTES = 128  # magic (6) + version (2) + header length (2) + padded dict, a multiple of 64


@dataclass
class TokenCache:
    """Result of :func:`load_or_build`: the ids and whether an existing cache was reused."""

    ids: np.ndarray  # (N,) int32, memory-mapped read-only
    reused: bool
    manifest: dict[str, Any]


def _npy_header(length: int) -> bytes:
    """A version 1.0 .npy header for a little-endian int32 vector of ``length`` items, always 128 bytes."""
    header = f"{{'descr': '<i4', 'fortran_order': False, 'shape': ({length},), }}"
    room = _NPY_HEADER_BYTES - 10 - 1
    if len(header) > room:
        raise NceLmError(f"token count {length} too large for the cache header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", room + 1) + header.ljust(room).encode("latin1") + b"\n"


def file_identity(path: Path) -> dict[str, Any]:
    """What tells a file apart from an edited or another one: its resolved path, size and mtime (ns)."""
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _expected_manifest(files: list[Path], vocab: Vocab, errors: str) -> dict[str, Any]:
    """Everything the ids depend on; the token count is added once known."""
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "sources": [file_identity(f) for f in files],
        "vocab_fingerprint": vocab.fingerprint(),
        "vocab_size": len(vocab),
        "tokenizer": vocab.tokenizer.to_dict(),
        "errors": errors,
    }


def _reusable(cache_dir: Path, expected: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached ids if the manifest matches ``expected`` and the ids file is intact, else None."""
    manifest_path, ids_path = cache_dir / MANIFEST_FILE, cache_dir / IDS_FILE
    if not manifest_path.is_file() or not ids_path.is_file():
        return None
    try:
        manifest = read_json(manifest_path, "token cache manifest")
    except NceLmError:
        return None  # a damaged manifest only means the cache must be rebuilt
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        return None
    if not all(type(manifest.get(k)) is int and manifest[k] >= 0 for k in ("tokens", "lines")):
        return None
    stat = ids_path.stat()
    if manifest.get("ids_file") != {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
        return None  # the ids were rewritten after this manifest
    try:
        ids = np.load(ids_path, mmap_mode="r")
    except Exception:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError... on damage
        return None
    if ids.dtype != np.int32 or ids.shape != (manifest.get("tokens"),):
        return None
    if not all(int(block.min()) >= 0 and int(block.max()) < expected["vocab_size"] for block in id_blocks(ids)):
        return None
    return ids, manifest


def _is_cache(folder: Path) -> bool:
    """Whether ``folder`` holds a cache of ours: its manifest is ours (or damaged beside our ids, to rebuild),
    or (an interrupted first build) it has neither a manifest nor a copy of the vocabulary, which come last."""
    if not (folder / MANIFEST_FILE).exists():
        return not (folder / VOCAB_FILE).exists()
    try:
        manifest = read_json(folder / MANIFEST_FILE, "token cache manifest")
    except NceLmError:
        return (folder / IDS_FILE).exists()
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


def load_or_build(
    paths: Iterable[str | os.PathLike[str]],
    vocab: Vocab,
    cache_dir: str | os.PathLike[str],
    errors: str = "strict",
    progress: bool = False,
) -> TokenCache:
    """Return the cached ids of ``paths`` under ``vocab``, encoding the corpus first when needed (with a bar of
    the bytes read when ``progress`` and it takes more than 2 seconds). A folder holding other files than a
    cache is refused (:func:`nce_lm.clobber.check_output_folder`)."""
    check_error_mode(errors)
    files = expand_inputs(paths)
    folder = _cache_folder(files, cache_dir)
    if all(f.stat().st_size == 0 for f in files):
        raise NceLmError(f"the corpus ({', '.join(str(f) for f in files)}) is empty")
    expected = _expected_manifest(files, vocab, errors)
    created = not folder.exists()
    try:
        with folder_lock(folder, "token cache", shared=True):
            found = _reusable(folder, expected)
        if found is not None:
            return TokenCache(found[0], True, found[1])
        with folder_lock(folder, "token cache"):
            found = _reusable(folder, expected)  # another process may have built it meanwhile
            if found is not None:
                return TokenCache(found[0], True, found[1])
            return _build(folder, files, vocab, errors, expected, progress)
    except BaseException:
        if created:  # a folder this call made and could not fill: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _cache_folder(files: list[Path], cache_dir: str | os.PathLike[str]) -> Path:
    """``cache_dir`` once checked to be a folder that may hold the ids of ``files`` (none of them, no other
    files than a cache's: :func:`nce_lm.clobber.check_output_folder`)."""
    folder = Path(cache_dir)
    if folder.exists() and not folder.is_dir():
        raise NceLmError(f"cache folder {folder} exists and is not a folder")
    check_outputs(files, folders={"cache folder": folder})
    check_output_folder("cache folder", folder, "prepare", (IDS_FILE, MANIFEST_FILE, VOCAB_FILE), _is_cache)
    return folder


def _build(
    folder: Path, files: list[Path], vocab: Vocab, errors: str, expected: dict[str, Any], progress: bool
) -> TokenCache:
    """Encode ``files`` into ``folder`` (whose lock the caller holds) and write the manifest last."""
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    with atomic_path(folder / IDS_FILE) as tmp:
        blocks = iter_line_blocks(files, vocab.tokenizer, errors, progress="encoding" if progress else None)
        total, lines = _write_ids(tmp, blocks, vocab.ids, vocab.eos_id)
        if total == 0:
            raise NceLmError(f"the corpus ({', '.join(str(f) for f in files)}) holds no token")
    return _finish(folder, files, expected, total, lines)


def _write_ids(
    path: Path, blocks: Iterable[LineBlock], ids_of: Callable[[list[str]], Iterable[int]], eos_id: int
) -> tuple[int, int]:
    """Write the ids of ``blocks`` (``ids_of`` each line's tokens, then ``eos_id``) as an int32 .npy file at
    ``path``; return the number of ids and of lines. Each line is encoded as soon as it is split, while its
    words are still in the CPU cache, and a block's ids are written at once."""
    total = lines = 0
    with open(path, "wb") as out:
        out.write(_npy_header(0))
        for block in blocks:
            ids: list[int] = []
            for line in block.lines:
                ids += ids_of(line)
                ids.append(eos_id)
                lines += 1
            if not block.last_line_ends:
                ids.pop()
                lines -= 1
            out.write(np.array(ids, dtype=np.int32).tobytes())
            total += len(ids)
        out.seek(0)
        out.write(_npy_header(total))
    return total, lines


def _finish(folder: Path, files: list[Path], expected: dict[str, Any], total: int, lines: int) -> TokenCache:
    """Check that the sources did not change while read, write the manifest of the ids just written, load them."""
    if [file_identity(f) for f in files] != expected["sources"]:
        raise NceLmError("a corpus file changed while it was being encoded; run again")
    stat = (folder / IDS_FILE).stat()
    manifest = {
        **expected,
        "tokens": total,
        "lines": lines,
        "ids_file": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
    }
    write_json_atomic(folder / MANIFEST_FILE, manifest)
    return TokenCache(np.load(folder / IDS_FILE, mmap_mode="r"), False, manifest)


class _TooManyDistinct(Exception):
    """The corpus holds more distinct tokens than a vocabulary counts without pruning."""


def build_vocab_and_ids(
    paths: Iterable[str | os.PathLike[str]],
    cache_dir: str | os.PathLike[str],
    *,
    min_count: int = 1,
    max_final_vocab: int | None = None,
    tokenizer: TokenizerConfig = TokenizerConfig(),
    errors: str = "strict",
    max_distinct: int = DEFAULT_MAX_DISTINCT,
    progress: bool = False,
) -> tuple[Vocab, TokenCache]:
    """:func:`nce_lm.pipeline.vocab.build_vocab` of ``paths``, then :func:`load_or_build` of them under that
    vocabulary into ``cache_dir``, reading the corpus once: the same vocabulary, ids and manifest.

    The tokens are written as provisional ids, numbered in order of first appearance, while they are counted;
    once the vocabulary is known, one ``take`` per slice of the file turns them into its ids. The folder is
    always encoded anew (there is no vocabulary to check a cache against before reading). A corpus with more
    than ``max_distinct`` distinct tokens, whose counts pruning changes, is read twice, as the two calls would.
    """
    check_limits(min_count, None)
    check_error_mode(errors)
    files = expand_inputs(paths)
    folder = _cache_folder(files, cache_dir)
    created = not folder.exists()
    try:
        with folder_lock(folder, "token cache"):
            return _build_first_seen(
                folder, files, min_count, max_final_vocab, tokenizer, errors, max_distinct, progress
            )
    except _TooManyDistinct:
        pass
    except BaseException:
        if created:  # a folder this call made and could not fill: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    vocab = build_vocab(files, min_count, None, tokenizer, errors, max_distinct, progress, max_final_vocab)
    return vocab, load_or_build(files, vocab, folder, errors, progress)


def _build_first_seen(
    folder: Path,
    files: list[Path],
    min_count: int,
    max_final_vocab: int | None,
    tokenizer: TokenizerConfig,
    errors: str,
    max_distinct: int,
    progress: bool,
) -> tuple[Vocab, TokenCache]:
    """:func:`build_vocab_and_ids`' reading, in ``folder``, whose lock the caller holds."""
    sources = [file_identity(f) for f in files]
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    first_seen: defaultdict[str, int] = defaultdict(itertools.count().__next__)  # token -> provisional id
    first_seen[Vocab.EOS]  # id 0: line ends, and the corpus's own <eos> tokens

    def provisional_ids(tokens: list[str]) -> Iterator[int]:
        if len(first_seen) - 1 > max_distinct:  # even without <eos>: counting would have pruned
            raise _TooManyDistinct
        return map(first_seen.__getitem__, tokens)

    with atomic_path(folder / IDS_FILE) as tmp:
        blocks = iter_line_blocks(files, tokenizer, errors, progress="counting words" if progress else None)
        total, lines = _write_ids(tmp, blocks, provisional_ids, 0)
        counts = np.zeros(len(first_seen), dtype=np.int64)  # (distinct,)
        for block in id_blocks(np.load(tmp, mmap_mode="r")):
            counts += np.bincount(block, minlength=len(first_seen))
        counter = Counter(dict(zip(first_seen, counts.tolist())))
        counter[Vocab.EOS] -= lines  # what is left are the corpus's own <eos> tokens
        if counter[Vocab.EOS] == 0:
            del counter[Vocab.EOS]
        if len(counter) > max_distinct:
            raise _TooManyDistinct
        refuse_control_characters(counter, files, errors)
        settings = file_settings(files, errors, max_distinct)
        vocab = vocab_from_counts(
            counter, lines, 0, 0, min_count, None, tokenizer, settings, max_final_vocab=max_final_vocab
        )
        final_ids = np.array([vocab.index(token) for token in first_seen], dtype=np.int32)  # (distinct,)
        with open(tmp, "r+b") as file:  # each block read by id_blocks (a copy) is written back in place, remapped
            for start, block in zip(range(0, total, ID_BLOCK), id_blocks(np.load(tmp, mmap_mode="r"))):
                file.seek(_NPY_HEADER_BYTES + 4 * start)
                file.write(final_ids.take(block).tobytes())
    expected = {**_expected_manifest(files, vocab, errors), "sources": sources}
    return vocab, _finish(folder, files, expected, total, lines)


def cached_token_ids(
    paths: Iterable[str | os.PathLike[str]],
    vocab: Vocab,
    cache_dir: str | os.PathLike[str],
    errors: str = "strict",
    progress: bool = False,
) -> np.ndarray:
    """Memory-mapped int32 ids (N,) of every line of ``paths`` followed by ``vocab.eos_id``: :func:`load_or_build`."""
    return load_or_build(paths, vocab, cache_dir, errors, progress).ids


def id_blocks(ids: np.ndarray) -> Iterator[np.ndarray]:
    """``ids`` (N,), :data:`ID_BLOCK` at a time in order, each block read by :func:`read_ids`, so that a pass over
    a corpus of any size holds one block in memory."""
    for start in range(0, len(ids), ID_BLOCK):
        yield read_ids(ids, start, min(start + ID_BLOCK, len(ids)))


def read_ids(ids: np.ndarray, begin: int, end: int) -> np.ndarray:
    """``ids[begin:end]``. From a cache's memory map, a copy, after which the pages read are dropped from the
    process (``madvise(MADV_DONTNEED)``; the kernel reads them again from its page cache if asked), so that
    reading every range of a corpus in turn does not leave every page of the mapping counted as the process's
    memory (where the platform has no madvise, they stay mapped until the map is closed). Through the mapping,
    not the file by its name: a run reads ranges for as long as it trains, and ``prepare`` replaces a cache's ids
    by renaming a new file over that name, so the name may by then be another corpus's."""
    if not _whole_mapping(ids):
        return ids[begin:end]
    stretch = np.array(ids[begin:end])
    if end > begin and hasattr(mmap, "MADV_DONTNEED"):
        into = ids.offset % mmap.ALLOCATIONGRANULARITY  # np.memmap maps from the granule holding its offset
        first = (into + begin * ids.itemsize) // mmap.PAGESIZE * mmap.PAGESIZE
        last = min(len(ids.base), -(-(into + end * ids.itemsize) // mmap.PAGESIZE) * mmap.PAGESIZE)
        ids.base.madvise(mmap.MADV_DONTNEED, first, last - first)
    return stretch


def _whole_mapping(ids: np.ndarray) -> bool:
    """Whether ``ids`` is the whole mapping of an .npy file as ``np.load(mmap_mode=...)`` returns it."""
    return isinstance(ids, np.memmap) and isinstance(ids.base, mmap.mmap)


def _manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = read_json(path, "token cache manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise NceLmError(f"{path} is not a token cache manifest")
    return manifest


def cache_vocab(cache_dir: str | os.PathLike[str]) -> Vocab | None:
    """The vocabulary ``nce-lm prepare`` copied into ``cache_dir``; None for a folder that holds no cache yet."""
    folder = Path(cache_dir)
    if (folder / VOCAB_FILE).is_file():
        return Vocab.load(folder / VOCAB_FILE)
    if (folder / MANIFEST_FILE).is_file():
        raise NceLmError(f"{folder} holds no {VOCAB_FILE}: give the vocabulary it was prepared with (--vocab)")
    return None


def cache_sources(cache_dir: str | os.PathLike[str]) -> list[str]:
    """The corpus files whose ids ``cache_dir`` holds, as its manifest records them."""
    manifest = _manifest(Path(cache_dir))
    if manifest is None:
        raise NceLmError(f"{cache_dir} is not a token cache written by `nce-lm prepare` (no {MANIFEST_FILE})")
    sources = manifest.get("sources")
    if not isinstance(sources, list) or not all(
        isinstance(s, dict) and isinstance(s.get("path"), str) for s in sources
    ):
        raise NceLmError(f"{Path(cache_dir) / MANIFEST_FILE} is damaged: its sources are not a list of files")
    return [s["path"] for s in sources]


def prepared_ids(
    cache_dir: str | os.PathLike[str],
    vocab: Vocab,
    paths: Iterable[str | os.PathLike[str]] | None = None,
    errors: str = "strict",
    progress: bool = False,
) -> np.ndarray:
    """The ids of ``paths`` (default: the files the folder records) under ``vocab`` from a token-cache folder.

    A new or empty folder is filled; a folder holding the same files and vocabulary is reused (re-encoded when
    the files changed, as :func:`load_or_build` does); one prepared from other files or with another
    vocabulary is an :class:`NceLmError`, so that a cache made for one corpus is never overwritten by another.
    """
    folder = Path(cache_dir)
    manifest = _manifest(folder) if folder.is_dir() else None
    if manifest is None:
        if paths is None:
            raise NceLmError(f"{folder} is not a token cache written by `nce-lm prepare` (no {MANIFEST_FILE})")
        return load_or_build(paths, vocab, folder, errors, progress).ids
    if manifest.get("vocab_fingerprint") != vocab.fingerprint():
        raise NceLmError(
            f"{folder} holds token ids made with another vocabulary than this run's: give the "
            f"vocabulary it was prepared with (--vocab, or the folder's own {VOCAB_FILE}), or another folder"
        )
    recorded = cache_sources(folder)
    if paths is not None:
        asked = [str(f.resolve()) for f in expand_inputs(paths)]
        if asked != recorded:
            raise NceLmError(
                f"{folder} holds the token ids of {', '.join(recorded)}, not of {', '.join(asked)}: "
                "give that corpus, or another folder"
            )
    return load_or_build(recorded, vocab, folder, errors, progress).ids
