"""Advisory locks on the folders and files a run writes, so that two processes never mix or overwrite their output.

A writer holds an exclusive ``fcntl.flock`` on ``<folder>/.lock``, a reader of a cache a shared one; the lock
file records the writer's pid so that a refusal can name it, and the system releases a lock when its holder
exits. An output file ``DIR/NAME`` (``skipgram -o``, ``--checkpoint``) is locked through ``DIR/.NAME.lock``,
which its holder removes when done. Contract: docs/architecture.md, "Errors and files".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from nce_lm.errors import NceLmError
from nce_lm.fileio import chmod_as_created

LOCK_FILE = ".lock"


def _holder(fd: int) -> str:
    """ " (pid N)" for the process id recorded in an open lock file, or "" when none is."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str, shared: bool = False) -> Iterator[None]:
    """Hold a lock on ``folder`` (created when absent) for the block: exclusive to write, ``shared`` to read.

    Another process holding a conflicting lock is an :class:`NceLmError` naming it; ``what`` names the
    folder's role in the message ("run folder", "token cache").
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise NceLmError(f"cannot lock {what} {folder}: {err.strerror or err}") from None
    try:
        if created:
            chmod_as_created(path)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NceLmError(
                f"{what} {folder} is in use by another process{_holder(fd)}; wait for it to finish or use "
                "another folder"
            ) from None
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _lock_beside(option: str, path: Path) -> tuple[int, Path]:
    """Hold an exclusive lock on ``.NAME.lock`` beside the output file ``path``: (its descriptor, its path).

    The holder removes the lock file when done, so a taker checks that the file it locked is still the one under
    that name, and starts again with the new one when it is not."""
    lock = path.absolute().parent.resolve() / f".{path.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise NceLmError(f"cannot lock {option} {path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise NceLmError(
                f"{option} {path} is being written by another process{holder}; wait for it to finish or give "
                "another file"
            ) from None
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            chmod_as_created(lock)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd, lock
        os.close(fd)


@contextlib.contextmanager
def output_file_lock(files: Mapping[str, str | os.PathLike[str] | None]) -> Iterator[None]:
    """Hold an exclusive lock on each output file (by the option naming it; None entries skipped) for the block.

    A second process writing one of them is refused in one line naming the holder. The lock files go when the
    block ends, and so do the files' folders that this call created and the block left empty.
    """
    held: list[tuple[int, Path]] = []
    created: list[Path] = []
    try:
        for option, path in files.items():
            if path is None:
                continue
            missing = [p for p in reversed(Path(path).absolute().parents) if not p.exists()]
            for folder in missing:
                try:
                    folder.mkdir()
                except FileExistsError:  # made meanwhile by another process
                    continue
                except OSError as err:
                    raise NceLmError(f"cannot create {folder} for {option}: {err.strerror or err}") from None
                created.append(folder)
            held.append(_lock_beside(option, Path(path)))
        yield
    finally:
        for fd, lock in reversed(held):
            lock.unlink(missing_ok=True)
            os.close(fd)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
