"""Checkpoint files of both trainers: one torch file, tagged with its kind and its vocabulary's fingerprint.

Written to a temporary name and renamed (:func:`nce_lm.fileio.atomic_path`); read with
``torch.load(weights_only=True)``, so a file holds only tensors and plain containers. The file also carries a
sha256 of its contents (every tensor's dtype, shape and bytes, every other value's ``repr``), which loading
recomputes: a file damaged on disk or in transfer whose zip structure still opens is refused instead of
resuming or evaluating silently altered weights. Files written before the checksum existed load unchecked. A
missing, damaged or other kind of file, and one trained on another vocabulary, are each a one-line
:class:`NceLmError`. torch is imported when a file is written or read, not with this module.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path


class Fingerprinted(Protocol):
    """What a checkpoint needs of its vocabulary (a :class:`nce_lm.pipeline.vocab.Vocab`, a layer above)."""

    def fingerprint(self) -> str: ...


CHECKSUM_KEY = "checksum"


def _digest(value: Any, sha: Any) -> None:
    """Feed ``value`` (nested dicts, lists and tuples of tensors and plain values) to ``sha`` in a fixed order."""
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        sha.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, dict):
        sha.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            sha.update(f"{key!r}:".encode())
            _digest(item, sha)
    elif isinstance(value, (list, tuple)):
        sha.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _digest(item, sha)
    else:
        sha.update(f"{value!r};".encode())


def content_checksum(payload: dict[str, Any]) -> str:
    """sha256 (hex) of everything in ``payload`` but its own checksum entry."""
    sha = hashlib.sha256()
    _digest({key: value for key, value in payload.items() if key != CHECKSUM_KEY}, sha)
    return sha.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], kind: str, vocab: Fingerprinted, payload: dict[str, Any]) -> None:
    """Write ``payload`` with its kind (``format``), ``vocab``'s fingerprint and their checksum, atomically."""
    import torch

    content = {"format": kind, "vocab_fingerprint": vocab.fingerprint(), **payload}
    with atomic_path(path) as tmp:
        torch.save({**content, CHECKSUM_KEY: content_checksum(content)}, tmp)


def load_checkpoint(path: str | os.PathLike[str], kind: str, what: str) -> dict[str, Any]:
    """The payload of a checkpoint of ``kind`` (named ``what`` in errors) written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise NceLmError(f"checkpoint not found: {path}")
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about a file that is a bare pickle before refusing it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise NceLmError(f"checkpoint {path} is corrupted or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise NceLmError(f"{path} is not an nce_lm {what} checkpoint")
    saved = payload.get(CHECKSUM_KEY)
    if saved is not None and saved != content_checksum(payload):
        raise NceLmError(
            f"corrupted checkpoint {path}: its contents no longer match the checksum written with them (damaged on "
            "disk or in transfer); use another copy"
        )
    return payload


def check_vocabulary(payload: dict[str, Any], vocab: Fingerprinted, problem: str) -> None:
    """An :class:`NceLmError` saying ``problem`` unless ``payload`` was saved with ``vocab``."""
    if payload.get("vocab_fingerprint") != vocab.fingerprint():
        raise NceLmError(problem)
