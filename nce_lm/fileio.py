"""Atomic file writes: output appears complete under its final name, or not at all.

:func:`atomic_path` writes a temporary file beside the destination and renames it over the destination once
the write succeeded; :func:`staged_folder` does the same for a folder of outputs. Temporaries are named
``.<name>.pid<N>-<random>.tmp`` so that :func:`remove_stale` can delete those of dead processes. Contract:
docs/architecture.md, "Errors and files".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nce_lm.errors import NceLmError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def chmod_as_created(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode an ordinary ``open``/``mkdir`` would have: 0666 (files) or 0777 (folders) less the
    umask."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, under another user
        return True
    return True


def temp_prefix(name: str) -> str:
    """The start of this process's temporary names for ``name``: ``<name>pid<N>-``."""
    return f"{name}pid{os.getpid()}-"


def remove_stale(folder: Path, name: str, suffix: str = "") -> None:
    """Remove ``folder/<name>pid<N>-<random><suffix>`` temporaries (files or folders) of processes no longer running."""
    pattern = re.compile(rf"{re.escape(name)}pid(\d+)-[A-Za-z0-9_]+{re.escape(suffix)}")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _process_running(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched. Stale temporaries of
    ``path`` left by killed processes are removed first.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if final.is_dir():
        raise NceLmError(f"cannot write {final}: it is a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder, f".{final.name}.", ".tmp")
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(f".{final.name}."), suffix=".tmp", dir=folder)
    except OSError as err:
        raise NceLmError(f"cannot write {final}: {err.strerror or err}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        chmod_as_created(tmp)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside the folder ``path``; if the block succeeds, move every file
    written there into ``path`` (created when absent), else leave ``path`` untouched. The temporary folder
    is removed either way."""
    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    if final.exists() and not final.is_dir():
        raise NceLmError(f"{final} exists and is not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent, f".{final.name}.", ".tmp")
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(f".{final.name}."), suffix=".tmp", dir=parent))
    except OSError as err:
        raise NceLmError(f"cannot write {final}: {err.strerror or err}") from None
    try:
        chmod_as_created(staging)
        yield staging
        final.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            os.replace(entry, final / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def check_field_types(cls: type, data: dict[str, Any], what: str) -> None:
    """Refuse values of ``data`` whose type is not the one the dataclass ``cls`` declares for that field.

    Settings read back from JSON (a run's config.json, a checkpoint's config) are checked so before use:
    a hand-edited ``"dim": "200"`` is one line naming the field, not a TypeError deep in the run. An int is
    accepted for a float field; a bool is never taken for an int.
    """
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        declared = hints.get(name)
        if declared is None:
            continue
        options = typing.get_args(declared) if isinstance(declared, types.UnionType) else (declared,)
        allowed = tuple(type(None) if t is None else t for t in options)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        ok = ok or (float in allowed and type(value) is int)
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise NceLmError(f"{what}: {name} must be {names}, got {value!r}")
