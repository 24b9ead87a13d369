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
    with pytest.raises(NceLmError, match=r"unknown dataset 'ptb2' \(did you mean ptb\?\)"):
        get_dataset("ptb2")
    with pytest.raises(NceLmError, match="unknown dataset 'corpus'; known: ptb, wikitext-2"):
        get_dataset("corpus")


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
    import nce_lm.pipeline.datasets as datasets

    assert Path(__file__).resolve().parents[1] / "data" == datasets.PROJECT_DATA_DIR  # README: the project's data/
    monkeypatch.setattr(datasets, "PROJECT_DATA_DIR", tmp_path / "project")  # empty, whatever the checkout holds
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    (tmp_path / "env" / "text8").mkdir(parents=True)  # a dataset folder without the split's file holds no copy
    assert find_local("text8", "train") is None
    with pytest.raises(
        NceLmError, match=f"no local copy of text8 train in {tmp_path / 'env'}.*nce-lm data fetch text8"
    ):
        dataset_path("text8", "train")
    for folder in ("project", "env"):  # the project's folder is searched too, and NCE_LM_DATA first
        (tmp_path / folder / "text8").mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "text8" / "text8").write_text("a b c")
        assert find_local("text8", "train") == tmp_path / folder / "text8" / "text8"
    with pytest.raises(NceLmError, match="no split 'test'"):
        dataset_path("text8", "test")


def test_fetch_verifies_and_renames_into_place(tmp_path: Path, tgz_dataset) -> None:
    import nce_lm.pipeline.datasets as datasets

    tgz_dataset("fake", b"a b c\n")
    paths = datasets.fetch("fake", tmp_path / "data")
    assert paths["train"].read_bytes() == b"a b c\n"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fake"]  # no temporary leftovers

    tgz_dataset("fake", b"tampered\n", recorded=b"a b c\n")
    with pytest.raises(NceLmError, match="checksum mismatch"):
        datasets.fetch("fake", tmp_path / "other")
    assert not (tmp_path / "other" / "fake" / "train.txt").exists()
    assert [p.name for p in (tmp_path / "other").iterdir()] == []
