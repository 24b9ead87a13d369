"""Atomic file writes: output appears complete under its final name, or not at all.

Every file the package writes (vocabularies, token caches, checkpoints, exported vectors, metrics) goes
through :func:`atomic_path`: the data are written to a temporary file in the destination folder, flushed,
and renamed over the destination only once the write succeeded. An interrupted run therefore never leaves
a half-written file behind, and never destroys the previous good version.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nce_lm.errors import NceLmError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise NceLmError(f"cannot write {final}: {err.strerror or err}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_safe(data: Any) -> Any:
    """``data`` with every non-finite float replaced by None: JSON has no NaN or infinity."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(value) for value in data]
    return data


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented, strictly valid JSON to ``path`` atomically (NaN and ±inf become null)."""
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file, turning a missing or unparsable file into a one-line :class:`NceLmError`.

    ``what`` names the file's role in the message ("vocabulary", "checkpoint config"...).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NceLmError(f"{what} file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NceLmError(f"cannot read {what} file {p}: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise NceLmError(f"{what} file {p} is corrupted (invalid JSON at line {err.lineno})") from None
