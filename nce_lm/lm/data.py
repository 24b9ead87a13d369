"""How a language-model run finds its texts: the train, valid and test files of its data, and their token ids.

``--data`` (``LMConfig.train``) is a registered dataset or a folder of splits
(:func:`nce_lm.pipeline.datasets.data_splits`), or else a file; ids are cached per file
(:mod:`nce_lm.pipeline.token_cache`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.lm.config import LMConfig
from nce_lm.pipeline.datasets import data_splits
from nce_lm.pipeline.token_cache import cached_token_ids, prepared_ids
from nce_lm.pipeline.vocab import Vocab


def split_paths(config: LMConfig) -> dict[str, Path | None]:
    """The train, valid and test files: ``config.train`` is a file, a registered dataset or a folder of splits,
    and ``config.valid``/``config.test`` replace the splits it gives."""
    splits = data_splits(config.train)
    paths = splits or {"train": Path(config.train), "valid": None, "test": None}
    paths = {
        split: Path(getattr(config, split)) if split != "train" and getattr(config, split) else path
        for split, path in paths.items()
    }
    if paths["valid"] is None:
        lacking = f" ({config.train} has none)" if splits else ""
        raise NceLmError(f"no validation data{lacking}: give --valid FILE, or --data with a validation split")
    for split, path in paths.items():
        if path is not None and not path.is_file():
            raise NceLmError(f"{split} file not found: {path}")
    return paths


def eval_path(data: str) -> Path:
    """The text ``lm eval`` scores: the test split of a registered dataset or folder, else ``data`` itself."""
    splits = data_splits(data)
    if splits is None:
        return Path(data)
    if splits["test"] is None:
        raise NceLmError(f"{data} has no test split")
    return splits["test"]


def token_ids(path: Path, vocab: Vocab, cache_dir: Path, errors: str = "strict", progress: bool = False) -> np.ndarray:
    """Token ids (N,) of one text (with <eos> per line), cached under ``cache_dir``/<file name>."""
    return np.asarray(cached_token_ids([path], vocab, cache_dir / path.name, errors, progress))


def split_ids(
    paths: dict[str, Path | None], vocab: Vocab, run_dir: Path, cache_dir: Path | None, errors: str, progress: bool
) -> dict[str, np.ndarray]:
    """Token ids of each split: the training text's from ``cache_dir`` (a folder of ``nce-lm prepare``) when given,
    the rest (and otherwise all) from caches in the run folder."""
    ids = {
        split: token_ids(path, vocab, run_dir / "cache", errors, progress)
        for split, path in paths.items()
        if path is not None and not (split == "train" and cache_dir is not None)
    }
    if cache_dir is not None:
        ids["train"] = np.asarray(prepared_ids(cache_dir, vocab, [paths["train"]], errors, progress))
    return ids
