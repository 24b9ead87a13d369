"""A failed command leaves no folder it created: the empty folders on its paths that were not there before.

The trainers create their output folders as they go (``lm train -o runs/x`` makes ``runs/`` for its lock), and a
run that fails removes what it wrote; the folders above stay behind. :func:`missing_folders` notes, before the
command runs, every folder on the paths of its arguments that does not exist yet; :func:`remove_if_empty` removes
those that the failed command left empty, deepest first. A folder holding anything is kept, except after a
signal that stopped the command before it saved anything (:func:`remove_created`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def missing_folders(args: argparse.Namespace) -> list[Path]:
    """The paths (and the folders above them) named by ``args``' text values that do not exist, deepest first."""
    values = [v for value in vars(args).values() for v in (value if isinstance(value, list) else [value])]
    missing: set[Path] = set()
    for value in values:
        if not isinstance(value, str) or not value or "\0" in value:
            continue
        path = Path(value).absolute()
        while not path.exists() and path != path.parent:
            missing.add(path)
            path = path.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is now an empty folder."""
    for folder in folders:
        try:
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            pass  # in use or not ours to remove: left as it is


def remove_created(folders: list[Path]) -> None:
    """Remove each of ``folders`` with what it holds: folders this command created (they did not exist when it
    started), for a command stopped before it finished and saved nothing (a cache without its vocabulary, say)."""
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
