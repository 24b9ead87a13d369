"""The dataset registry and local lookup (never the network)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from nce_lm.errors import NceLmError
from nce_lm.pipeline.datasets import DATA_ENV, REGISTRY, dataset_path, find_local, get_dataset


def test_registry_names_every_corpus_the_issue_asks_for() -> None:
    assert set(REGISTRY) == {"ptb", "wikitext-2", "wikitext-103", "text8"}
    for dataset in REGISTRY.values():
        assert dataset.url.startswith("http") and dataset.license and "train" in dataset.splits
    with pytest.raises(NceLmError, match="unknown dataset 'ptb2'; known: ptb"):
        get_dataset("ptb2")


@pytest.mark.parametrize("name", ["ptb", "wikitext-2"])
def test_shared_copies_are_found_and_match_the_registry_checksums(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(DATA_ENV, str(shared_data))
    for split, entry in REGISTRY[name].splits.items():
        path = dataset_path(name, split)
        assert path.parent == shared_data / name
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == entry.sha256


def test_missing_local_copy_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert find_local("text8", "train") is None or not str(find_local("text8", "train")).startswith(str(tmp_path))
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8").write_text("a b c")
    assert find_local("text8", "train") == tmp_path / "text8" / "text8"
    with pytest.raises(NceLmError, match="no split 'test'"):
        dataset_path("text8", "test")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    if find_local("wikitext-103", "train") is None:
        with pytest.raises(NceLmError, match="nce-lm data fetch wikitext-103"):
            dataset_path("wikitext-103", "train")


def _fake_dataset(tmp_path: Path, content: bytes, recorded: bytes):
    """A one-split tgz dataset served from a file:// address; ``recorded`` is what the registry's sha256 hashes."""
    import io
    import tarfile

    from nce_lm.pipeline.datasets import Dataset, SplitFile

    archive = tmp_path / "fake.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("./fake/train.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    split = SplitFile("fake/train.txt", "train.txt", hashlib.sha256(recorded).hexdigest())
    return Dataset("fake", archive.as_uri(), "tgz", None, "test only", {"train": split})


def test_fetch_verifies_and_renames_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nce_lm.pipeline.datasets as datasets

    good = _fake_dataset(tmp_path, b"a b c\n", b"a b c\n")
    monkeypatch.setitem(datasets.REGISTRY, "fake", good)
    paths = datasets.fetch("fake", tmp_path / "data")
    assert paths["train"].read_bytes() == b"a b c\n"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fake"]  # no temporary leftovers

    bad = _fake_dataset(tmp_path, b"tampered\n", b"a b c\n")
    monkeypatch.setitem(datasets.REGISTRY, "fake", bad)
    with pytest.raises(NceLmError, match="checksum mismatch"):
        datasets.fetch("fake", tmp_path / "other")
    assert not (tmp_path / "other" / "fake" / "train.txt").exists()
    assert [p.name for p in (tmp_path / "other").iterdir()] == []
