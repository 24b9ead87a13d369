"""Advisory locks on the folders a run writes into, so that two processes never mix their files.

A writer holds an exclusive ``fcntl.flock`` on ``<folder>/.lock``, a reader of a cache a shared one; the lock
file records the writer's pid so that a refusal can name it, and the system releases a lock when its holder
exits. Contract: docs/architecture.md, "Errors and files".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
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
