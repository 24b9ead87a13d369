"""The registry of named corpora: where each comes from, how to check it, and where a local copy lives.

Each entry gives the https address, the archive's and each split file's sha256 (None where no published value
could be verified: that check is skipped), the licence and the archive member of each split. ``fetch`` checks
everything in temporary files before renaming them into place, so a failed check leaves nothing behind.
Lookup order and the ``--allow-unverified`` rule: README.md, "Datasets".
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path, remove_stale, temp_prefix

DATA_ENV = "NCE_LM_DATA"
PROJECT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # the checkout's data/, beside nce_lm/
_COPY_BYTES = 1 << 20


@dataclass(frozen=True)
class SplitFile:
    """One split of a dataset: the archive member it comes from and the file it becomes."""

    member: str  # path inside the archive, without a leading "./"
    filename: str  # name under <data folder>/<dataset>/
    sha256: str | None  # of the uncompressed file; None: not verified


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    archive: str  # "tgz" or "zip": how fetch extracts the splits
    archive_sha256: str | None  # None: no verified published checksum, the archive check is skipped
    license: str
    splits: dict[str, SplitFile]
    max_bytes: int = 1 << 31  # no split file may expand past this (2 GiB; wikitext-103's train is 0.5 GB)

    @property
    def verified(self) -> bool:
        """Whether a download is checked: the archive's sha256, or every split file's, is recorded."""
        return self.archive_sha256 is not None or all(f.sha256 for f in self.splits.values())


def _splits(folder: str, pattern: str, sha256: dict[str, str | None]) -> dict[str, SplitFile]:
    """The splits named in ``sha256``, each the member ``folder/NAME`` of its archive, NAME being ``pattern`` with
    the split's name put in (``ptb.{}.txt``)."""
    return {
        split: SplitFile(f"{folder}/{pattern.format(split)}", pattern.format(split), sha256[split]) for split in sha256
    }


REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="ptb",
            url="https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
            archive="tgz",
            archive_sha256=None,
            license="Penn Treebank WSJ text (LDC99T42), Mikolov's preprocessing; LDC licence terms apply",
            splits=_splits(
                "simple-examples/data",
                "ptb.{}.txt",
                {
                    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                },
            ),
        ),
        Dataset(
            name="wikitext-2",
            url="https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
            archive="zip",
            archive_sha256=None,
            license="CC BY-SA (Merity et al. 2016, text from Wikipedia)",
            splits=_splits(
                "wikitext-2",
                "wiki.{}.tokens",
                {
                    "train": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                },
            ),
        ),
        Dataset(
            name="wikitext-103",
            url="https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
            archive="zip",
            archive_sha256=None,
            license="CC BY-SA (Merity et al. 2016, text from Wikipedia)",
            splits=_splits("wikitext-103", "wiki.{}.tokens", dict.fromkeys(("train", "valid", "test"))),
        ),
        Dataset(
            name="text8",
            url="https://mattmahoney.net/dc/text8.zip",
            archive="zip",
            archive_sha256=None,
            license="Wikipedia text (CC BY-SA), cleaned by Matt Mahoney",
            splits={"train": SplitFile("text8", "text8", None)},
        ),
    )
}


def closest_dataset(name: str | os.PathLike[str]) -> str | None:
    """The registered dataset ``name`` most likely means (itself, or a close spelling: wikitext2), or None."""
    found = difflib.get_close_matches(str(name).lower(), REGISTRY, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_dataset(name: str | os.PathLike[str]) -> NceLmError:
    """The error for a dataset name that is not registered: the closest registered name, or all of them."""
    close = closest_dataset(name)
    hint = f" (did you mean {close}?)" if close and close != str(name) else f"; known: {', '.join(REGISTRY)}"
    return NceLmError(f"unknown dataset {str(name)!r}{hint}")


def get_dataset(name: str) -> Dataset:
    """The registry entry for ``name``; an unknown name is an :class:`NceLmError` naming the closest known one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise unknown_dataset(name) from None


def _split_file(dataset: Dataset, split: str) -> SplitFile:
    try:
        return dataset.splits[split]
    except KeyError:
        raise NceLmError(f"dataset {dataset.name} has no split {split!r}; it has {', '.join(dataset.splits)}") from None


def search_folders() -> list[Path]:
    """Where local copies are looked for, in order: $NCE_LM_DATA (when set), then the project's data/."""
    folders = []
    if os.environ.get(DATA_ENV):
        folders.append(Path(os.environ[DATA_ENV]))
    folders.append(PROJECT_DATA_DIR)
    return folders


def find_local(name: str, split: str) -> Path | None:
    """An existing local copy of the split (plain or ``.gz``), or None."""
    entry = _split_file(get_dataset(name), split)
    for folder in search_folders():
        for candidate in (entry.filename, entry.filename + ".gz"):
            path = folder / name / candidate
            if path.is_file():
                return path
    return None


def dataset_path(name: str, split: str = "train") -> Path:
    """Path of a local copy of ``name``'s ``split``; when there is none, an error saying how to get it."""
    found = find_local(name, split)
    if found is None:
        where = " or ".join(str(folder / name) for folder in search_folders())
        raise NceLmError(
            f"no local copy of {name} {split} in {where}; run `nce-lm data fetch {name}` "
            f"or set {DATA_ENV} to a folder holding {name}/{_split_file(get_dataset(name), split).filename}"
        )
    return found


# How split files are recognised in a folder: a name part (between ".", "_", "-") equal to one of these.
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}


def data_splits(data: str | os.PathLike[str]) -> dict[str, Path | None] | None:
    """The train, valid and test files of ``data``: a registered dataset name (its local copy), or a folder
    holding one file per split named like ``train.txt`` (``nce-lm synth``), ``ptb.valid.txt`` or
    ``wiki.test.tokens``; None when ``data`` is neither (a file). A split the dataset or folder lacks is None;
    a folder with no training file, two files for one split, or a missing path spelled like a dataset (wikitext2)
    is an :class:`NceLmError`."""
    if str(data) in REGISTRY:
        dataset = REGISTRY[str(data)]
        return {split: dataset_path(dataset.name, split) if split in dataset.splits else None for split in SPLIT_NAMES}
    folder = Path(data)
    if not folder.exists() and closest_dataset(data):
        raise unknown_dataset(data)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    splits: dict[str, Path | None] = {}
    for split, names in SPLIT_NAMES.items():
        found = [f for f in files if set(re.split(r"[._-]", f.name)) & set(names)]
        if len(found) > 1:
            raise NceLmError(
                f"{folder} holds {len(found)} {split} files ({', '.join(f.name for f in found)}); "
                "give the splits with --train/--valid/--test"
            )
        splits[split] = found[0] if found else None
    if splits["train"] is None:
        raise NceLmError(f"{folder} holds no training file (a name like train.txt or NAME.train.txt)")
    return splits


def _copy_hashing(source: IO[bytes], target: IO[bytes], limit: int | None = None, what: str = "") -> str:
    """Copy a stream in blocks and return the sha256 of what was copied; past ``limit`` bytes, an NceLmError."""
    digest = hashlib.sha256()
    copied = 0
    while block := source.read(_COPY_BYTES):
        copied += len(block)
        if limit is not None and copied > limit:
            raise NceLmError(f"{what} expands past {limit:,} bytes, more than the dataset can hold; nothing was kept")
        digest.update(block)
        target.write(block)
    return digest.hexdigest()


def _check(what: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise NceLmError(f"checksum mismatch for {what}: sha256 {actual}, expected {expected}; nothing was kept")


def _open_member(dataset: Dataset, handle: tarfile.TarFile | zipfile.ZipFile, member: str) -> IO[bytes]:
    """Open ``member`` of an opened archive, matching names with or without a leading "./"."""
    missing = NceLmError(f"the {dataset.name} archive from {dataset.url} has no member {member}")
    if isinstance(handle, zipfile.ZipFile):
        names = {n.removeprefix("./"): n for n in handle.namelist()}
        if member not in names:
            raise missing
        return handle.open(names[member])
    members = {m.name.removeprefix("./"): m for m in handle.getmembers() if m.isfile()}
    extracted = handle.extractfile(members[member]) if member in members else None
    if extracted is None:
        raise missing
    return extracted


def fetch(name: str, data_dir: str | os.PathLike[str] | None = None, allow_unverified: bool = False) -> dict[str, Path]:
    """Download ``name``, verify it and extract its splits to ``<data_dir>/<name>/``; return split -> path.

    ``data_dir`` defaults to the project's data/ folder. Splits already present there are kept as they are.
    A dataset without any recorded checksum is refused unless ``allow_unverified``.
    """
    dataset = get_dataset(name)
    if not dataset.verified and not allow_unverified:
        raise NceLmError(
            f"no checksum of {name} is recorded, so its download from {dataset.url} cannot be "
            "verified; pass --allow-unverified to fetch it anyway"
        )
    target_dir = Path(data_dir) if data_dir is not None else PROJECT_DATA_DIR
    targets = {split: target_dir / name / f.filename for split, f in dataset.splits.items()}
    if all(path.is_file() for path in targets.values()):
        return targets
    target_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(target_dir, f".{name}-download-")  # left by a killed fetch
    import urllib.error  # here, not at the top: every nce-lm command imports this module, few download
    import urllib.request

    with tempfile.TemporaryDirectory(prefix=temp_prefix(f".{name}-download-"), dir=target_dir) as tmp:
        archive_path = Path(tmp) / f"archive.{dataset.archive}"
        try:
            with urllib.request.urlopen(dataset.url) as response, open(archive_path, "wb") as out:
                archive_sha = _copy_hashing(response, out)
        except (urllib.error.URLError, OSError) as err:
            raise NceLmError(f"cannot download {name} from {dataset.url}: {getattr(err, 'reason', err)}") from None
        _check(f"{name} archive {dataset.url}", archive_sha, dataset.archive_sha256)
        with ExitStack() as stack:
            try:
                handle: tarfile.TarFile | zipfile.ZipFile = stack.enter_context(
                    zipfile.ZipFile(archive_path) if dataset.archive == "zip" else tarfile.open(archive_path)  # noqa: SIM115
                )
            except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
                raise NceLmError(f"downloaded {name} archive is not a valid {dataset.archive}: {err}") from None
            staged = _extract_splits(dataset, handle, Path(tmp))
        (target_dir / name).mkdir(parents=True, exist_ok=True)
        for split, path in staged.items():
            if not targets[split].is_file():
                with atomic_path(targets[split]) as final_tmp:
                    shutil.move(path, final_tmp)
    return targets


def _extract_splits(dataset: Dataset, handle: tarfile.TarFile | zipfile.ZipFile, staging: Path) -> dict[str, Path]:
    """Extract and verify every split into ``staging``; raise before anything reaches the data folder."""
    staged = {}
    for split, entry in dataset.splits.items():
        path = staging / entry.filename
        try:
            with _open_member(dataset, handle, entry.member) as source, open(path, "wb") as out:
                sha = _copy_hashing(source, out, dataset.max_bytes, f"{entry.member} of the {dataset.name} archive")
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as err:
            raise NceLmError(f"cannot extract {entry.member} from the {dataset.name} archive: {err}") from None
        _check(f"{dataset.name} {split} ({entry.member})", sha, entry.sha256)
        staged[split] = path
    return staged
