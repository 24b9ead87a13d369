"""What a command names as its corpus, checked before anything is read: a token cache folder (from
``nce-lm prepare``) given where text is expected, or a corpus name that is a registered dataset's."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nce_lm.errors import NceLmError
from nce_lm.pipeline.datasets import REGISTRY, closest_dataset, unknown_dataset
from nce_lm.pipeline.token_cache import IDS_FILE, MANIFEST_FILE


def is_token_cache(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``nce-lm prepare`` (its token ids and manifest)."""
    return (Path(path) / IDS_FILE).is_file() and (Path(path) / MANIFEST_FILE).is_file()


def check_corpus(paths: Iterable[str | None], cache_option: str | None = None) -> None:
    """Refuse a token cache given as a corpus (naming ``cache_option``, the verb's option that takes one), and
    name the dataset a missing corpus path may have meant, with the command that prints its file."""
    for path in (p for p in paths if p):
        if is_token_cache(path):
            advice = f"give it with {cache_option} {path}" if cache_option else "give the text it was prepared from"
            raise NceLmError(f"{path} is a token cache from `nce-lm prepare`, not a corpus: {advice}")
        dataset = closest_dataset(path) if not Path(path).exists() else None
        if dataset:
            raise NceLmError(
                f"corpus file not found: {path} (the dataset {dataset}? `nce-lm data path {dataset}` prints its "
                "training text)"
            )


def check_data(data: str | None, cache_option: str) -> None:
    """``--data`` of a trainer: a registered dataset or an existing folder (or file) of text, not a token cache."""
    if not data or data in REGISTRY:
        return
    if not Path(data).exists():
        raise unknown_dataset(data)
    check_corpus([data], cache_option)
