"""Outputs never overwrite inputs: the one check every verb runs before it writes anything.

An output file that is one of the inputs (the same file through any name, hard link or symbolic link:
``os.path.samefile``) would destroy what the run reads, and an output folder that holds an input would mix
our files with the user's (``nce-lm prepare -o CORPUS_DIR``). :func:`check_outputs` refuses both, and an
output file named like an existing folder, before any file is created. :func:`check_output_folder` refuses an
output folder that holds files the verb did not write (``nce-lm synth -o ~/notes``), and accepts the verb's own
earlier output, which a second run replaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from nce_lm.errors import NceLmError
from nce_lm.locks import LOCK_FILE

PathLike = str | os.PathLike[str]
_TEMPORARY = re.compile(r"\.(.+)\.pid\d+-[A-Za-z0-9_]+\.tmp")  # fileio.atomic_path's temporary names


def _input_files(inputs: Iterable[PathLike | None]) -> list[Path]:
    """The existing input files: files as given, folders expanded to every file below them."""
    files = []
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file())
    return files


def _check_writable(option: str, path: Path) -> None:
    """Refuse ``path`` when its nearest existing ancestor (itself, for an existing folder) is a file or cannot
    be written."""
    place = path.absolute() if path.is_dir() else path.absolute().parent
    while not place.exists():
        place = place.parent
    if not place.is_dir():
        raise NceLmError(f"{option} {path}: {place} is a file, not a folder")
    if not os.access(place, os.W_OK | os.X_OK):
        raise NceLmError(f"{option} {path}: no permission to write in {place}")


def check_outputs(
    inputs: Iterable[PathLike | None],
    files: Mapping[str, PathLike | None] | None = None,
    folders: Mapping[str, PathLike | None] | None = None,
) -> None:
    """Refuse outputs that would clobber an input: an :class:`NceLmError` naming the option and the input.

    ``inputs``: files or folders the run reads (None entries are skipped). ``files``: output files by the
    option that names them (``{"-o": path}``); each must not be an input, an existing folder, or another
    output. ``folders``: output folders by option; none may hold an input, nor be one.
    """
    sources = _input_files(inputs)
    given = [(option, Path(path)) for option, path in (files or {}).items() if path is not None]
    for index, (option, path) in enumerate(given):
        if path.is_dir():
            raise NceLmError(f"{option} {path} is a folder; give a file name")
        _check_writable(option, path)
        for other_option, other in given[:index]:
            if path.resolve() == other.resolve() or (path.exists() and other.exists() and path.samefile(other)):
                raise NceLmError(f"{option} and {other_option} name the same file {path}")
        if path.exists():
            for source in sources:
                if path.samefile(source):
                    raise NceLmError(f"{option} {path} is the input {source}: refusing to overwrite it")
    for option, folder in (folders or {}).items():
        if folder is None:
            continue
        root = Path(folder).resolve()
        for source in sources:
            if source.resolve().is_relative_to(root):
                raise NceLmError(f"{option} {folder} holds the input {source}: give the output a folder of its own")
        if Path(folder).is_file():
            raise NceLmError(f"{option} {folder} is a file; give a folder")
        _check_writable(option, Path(folder))


def _temporary_of(name: str) -> str | None:
    """The output name whose temporary (:func:`nce_lm.fileio.atomic_path`) ``name`` is, or None."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


def check_output_folder(
    option: str, folder: PathLike, verb: str, names: Collection[str], is_own: Callable[[Path], bool]
) -> None:
    """Refuse to write into an existing folder that holds anything but ``verb``'s own earlier output.

    ``names``: the entries ``verb`` writes in the folder; ``is_own(folder)`` tells whether the ones there were
    written by ``verb`` (the folder's identifying file parses as ours). The lock file and temporaries of
    ``names`` are ours too. A link is followed: a link to a foreign folder is refused like the folder. The
    refusal names a few of the foreign entries and says how to replace the folder.
    """
    path = Path(folder)
    if not path.is_dir():
        return
    try:
        entries = sorted(entry.name for entry in path.iterdir())
    except OSError as err:
        raise NceLmError(f"{option} {folder}: cannot list it ({err.strerror or err})") from None
    foreign = [name for name in entries if name not in names and name != LOCK_FILE and _temporary_of(name) not in names]
    if not foreign and (not set(entries) & set(names) or is_own(path)):
        return
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    what = f"holds {shown}, which" if foreign else "holds files that"
    raise NceLmError(
        f"{option} {folder} {what} `nce-lm {verb}` did not write: give a new or empty folder, or remove this one "
        f"first (rm -r {folder}) to replace it"
    )
