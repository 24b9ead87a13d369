"""Streaming corpus reader: text files in, tokenized lines out, in bounded memory.

Files are read in fixed-size blocks through an incremental UTF-8 decoder, so a 100 MB line (text8) is never
held as one string: it is cut at whitespace into several :class:`TokenChunk` s. Tokens follow the word2vec
tradition (Mikolov et al. 2013, "Distributed Representations of Words and Phrases and their
Compositionality"), with Hugging Face ``tokenizers`` rules; the default configuration's fast path,
``str.split``, equals ``WhitespaceSplit`` unless a block holds U+001C..U+001F (whitespace to Python, not to
Rust), which then go through ``tokenizers``. Contract: docs/architecture.md, "Corpus".
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from nce_lm.decoding import check_error_mode, undecodable
from nce_lm.errors import NceLmError

DEFAULT_BLOCK_SIZE = 1 << 20
"""Bytes read per block; also the length (in characters) above which an unfinished line is cut."""

MAX_TOKEN_BLOCKS = 16
"""A single token longer than this many blocks means the input is not text: it is an error."""

# Characters Python's str.split treats as whitespace but Rust's char::is_whitespace (WhitespaceSplit) does not.
_PYTHON_ONLY_WHITESPACE = re.compile("[\x1c-\x1f]")
# Unicode White_Space, the set both pre-tokenizers split on: a safe place to cut an over-long line.
_WHITESPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# C0 and C1 control characters that str.split does not take for whitespace (NUL, ESC, DEL...): no text holds
# them inside a word, so a token that does comes from a binary file or damaged text.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


@dataclass(frozen=True)
class TokenizerConfig:
    """How raw text becomes tokens; saved with the vocabulary so every later step agrees."""

    lowercase: bool = False  # apply the tokenizers Lowercase normalizer before splitting
    split_punctuation: bool = False  # Whitespace pre-tokenizer (\w+|[^\w\s]+) instead of WhitespaceSplit

    def to_dict(self) -> dict[str, bool]:
        return {"lowercase": self.lowercase, "split_punctuation": self.split_punctuation}

    @classmethod
    def from_dict(cls, data: Any) -> TokenizerConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys or non-boolean values are an error."""
        if not isinstance(data, dict):
            raise NceLmError(f"tokenizer settings must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"lowercase", "split_punctuation"})
        if unknown:
            raise NceLmError(f"unknown tokenizer settings: {', '.join(unknown)}")
        for key, value in data.items():
            if not isinstance(value, bool):
                raise NceLmError(f"tokenizer setting {key} must be true or false, got {value!r}")
        return cls(**data)

    def tokenize_lines(self, text: str) -> list[list[str]]:
        """Tokenize ``text`` and return one token list per ``"\\n"``-separated segment of it."""
        return list(self.iter_lines(text))

    def iter_lines(self, text: str) -> Iterator[list[str]]:
        """:meth:`tokenize_lines`, one line at a time: on the fast path each line is split only when asked for,
        so that its words are still in the CPU cache when the caller hashes them (a third faster to count)."""
        if not self.lowercase and not self.split_punctuation and not _PYTHON_ONLY_WHITESPACE.search(text):
            return map(str.split, text.split("\n"))
        return iter(_tokenize_with_tokenizers(text, self))


def _tokenize_with_tokenizers(text: str, config: TokenizerConfig) -> list[list[str]]:
    """Run the ``tokenizers`` normalizer and pre-tokenizer over a whole block, then split it back into lines.

    One call per block instead of one per line keeps the Rust/Python crossing cheap. Newlines are
    whitespace for both pre-tokenizers, so no token spans two lines; each token goes to the line in which
    it starts (offsets are characters of the normalized text).
    """
    from tokenizers import normalizers, pre_tokenizers

    if config.lowercase:
        text = normalizers.Lowercase().normalize_str(text)
    splitter = pre_tokenizers.Whitespace() if config.split_punctuation else pre_tokenizers.WhitespaceSplit()
    lines: list[list[str]] = [[]]
    next_newline = text.find("\n")
    for token, (start, _end) in splitter.pre_tokenize_str(text):
        while next_newline != -1 and next_newline < start:
            lines.append([])
            next_newline = text.find("\n", next_newline + 1)
        lines[-1].append(token)
    while next_newline != -1:
        lines.append([])
        next_newline = text.find("\n", next_newline + 1)
    return lines


@dataclass
class TokenChunk:
    """Tokens of one line, or of one piece of a line too long to hold at once."""

    tokens: list[str]
    line_end: bool  # True when the line ends here: the language model appends <eos>


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, directories expanded recursively in sorted order (hidden entries skipped).

    A missing path, or a directory holding no files, is an :class:`NceLmError`.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise NceLmError(f"directory {path} holds no corpus files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise NceLmError(f"corpus input {path} is neither a file nor a directory")
        else:
            raise NceLmError(f"corpus file not found: {path}")
    if not files:
        raise NceLmError("no corpus files given")
    return files


def _open_binary(path: Path) -> BinaryIO:
    opener = _OPENERS.get(path.suffix.lower())
    try:
        return opener(path, "rb") if opener else open(path, "rb")  # type: ignore[return-value]
    except OSError as err:
        raise NceLmError(f"cannot open corpus file {path}: {err.strerror or err}") from None


def _decoded_blocks(
    path: Path, errors: str, block_size: int, on_read: Callable[[int], object] | None = None
) -> Iterator[str]:
    """Decode ``path`` as UTF-8 block by block; strict mode names the byte offset of a bad sequence.
    ``on_read`` is told the number of (decompressed) bytes of every block read."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    compressed = path.suffix.lower() in _OPENERS
    where = " of the decompressed text" if compressed else ""
    consumed = 0  # bytes handed to the decoder so far
    with _open_binary(path) as handle:
        while True:
            try:
                data = handle.read(block_size)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
                raise NceLmError(f"cannot read corpus file {path}: {err}") from None
            final = not data
            pending = len(decoder.getstate()[0])  # bytes of an unfinished character from the last block
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as err:
                offset = consumed - pending + err.start
                raise undecodable(f"{path}: invalid UTF-8 at byte offset {offset}{where}", err) from None
            consumed += len(data)
            if on_read is not None:
                on_read(len(data))
            if text:
                yield text
            if final:
                return


def iter_chunks(
    paths: Iterable[str | os.PathLike[str]],
    tokenizer: TokenizerConfig = TokenizerConfig(),
    errors: str = "strict",
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: str | None = None,
) -> Iterator[TokenChunk]:
    """Yield the tokens of every line of every input, in order (docs/architecture.md, "Corpus").

    A line longer than ``block_size`` characters is cut into chunks of at most about ``2 * block_size``; a
    final line without a newline still counts. ``progress`` labels a bar of the bytes read, shown past 2 s.
    """
    for block in iter_line_blocks(paths, tokenizer, errors, block_size=block_size, progress=progress):
        previous = next(block.lines)
        for tokens in block.lines:
            yield TokenChunk(previous, True)
            previous = tokens
        yield TokenChunk(previous, block.last_line_ends)


@dataclass
class LineBlock:
    """The token lists of consecutive lines read in one block: :func:`iter_chunks`' chunks without an object
    per line, for the loops that count and encode a corpus."""

    lines: Iterator[list[str]]  # at least one; to be read once (:meth:`TokenizerConfig.iter_lines`)
    last_line_ends: bool  # False when the last list is a piece of a line that continues in the next block


def iter_line_blocks(
    paths: Iterable[str | os.PathLike[str]],
    tokenizer: TokenizerConfig = TokenizerConfig(),
    errors: str = "strict",
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: str | None = None,
) -> Iterator[LineBlock]:
    """:func:`iter_chunks`' chunks, in the same order, grouped by the block of text they were read from."""
    check_error_mode(errors)
    if block_size < 1:
        raise NceLmError(f"block_size must be positive, got {block_size}")
    files = expand_inputs(paths)
    bar = _reading_bar(files, progress)
    try:
        for text, last_line_ends in _file_pieces(files, errors, block_size, bar.update if bar is not None else None):
            yield LineBlock(tokenizer.iter_lines(text), last_line_ends)
    finally:
        if bar is not None:
            bar.close()


def _reading_bar(files: list[Path], label: str | None):
    """A tqdm bar over the bytes of ``files`` (decompressed bytes, with no total, when one is compressed)."""
    if label is None:
        return None
    from tqdm import tqdm

    compressed = any(f.suffix.lower() in _OPENERS for f in files)
    total = None if compressed else sum(f.stat().st_size for f in files)
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, leave=False, delay=2)


def _file_pieces(
    files: list[Path], errors: str, block_size: int, on_read: Callable[[int], object] | None
) -> Iterator[tuple[str, bool]]:
    """The text of every file as ``(text, last_line_ends)`` pieces: whole lines (``"\n"``-separated, the last
    ending too), or, for a line longer than ``block_size``, a piece of it cut at whitespace (False)."""
    for path in files:
        unfinished = ""  # text of the current line not yet emitted
        line_open = False  # part of the current line was already emitted
        for block in _decoded_blocks(path, errors, block_size, on_read):
            text = unfinished + block
            last_newline = text.rfind("\n")
            if last_newline != -1:
                yield text[:last_newline], True
                unfinished = text[last_newline + 1 :]
                line_open = False
            else:
                unfinished = text
            if len(unfinished) > block_size:
                cut = _last_whitespace(unfinished)
                if cut == -1:
                    if len(unfinished) > MAX_TOKEN_BLOCKS * block_size:
                        raise NceLmError(
                            f"{path}: a token longer than {len(unfinished)} characters; is this a text file?"
                        )
                    continue  # a long token: keep reading until it ends
                yield unfinished[:cut], False
                unfinished = unfinished[cut + 1 :]
                line_open = True
        if unfinished or line_open:
            yield unfinished, True


def first_line_holding(files: list[Path], character: str, errors: str = "strict") -> tuple[Path, int] | None:
    """The first file of ``files`` holding ``character``, and the number (from 1) of its line that does; None
    when none does. A second reading, for error messages: the hot path never looks for single characters."""
    for path in files:
        lines_before = 0
        for block in _decoded_blocks(path, errors, DEFAULT_BLOCK_SIZE):
            found = block.find(character)
            if found != -1:
                return path, lines_before + block.count("\n", 0, found) + 1
            lines_before += block.count("\n")
    return None


def _last_whitespace(text: str) -> int:
    """Index of the last Unicode whitespace character in ``text``, or -1."""
    ascii_cut = max(text.rfind(" "), text.rfind("\t"), text.rfind("\r"), text.rfind("\x0b"), text.rfind("\x0c"))
    last = ascii_cut
    for match in _WHITESPACE.finditer(text, ascii_cut + 1):  # a later non-ASCII space, if any
        last = match.start()
    return last
