"""Checkpoint files of both trainers: one torch file, tagged with its kind and its vocabulary's fingerprint.

Written to a temporary name and renamed (:func:`nce_lm.fileio.atomic_path`); read with
``torch.load(weights_only=True)``, so a file holds only tensors and plain containers. A missing, damaged or
other kind of file, and one trained on another vocabulary, are each a one-line :class:`NceLmError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import torch

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path


class Fingerprinted(Protocol):
    """What a checkpoint needs of its vocabulary (a :class:`nce_lm.pipeline.vocab.Vocab`, a layer above)."""

    def fingerprint(self) -> str: ...


def save_checkpoint(path: str | os.PathLike[str], kind: str, vocab: Fingerprinted, payload: dict[str, Any]) -> None:
    """Write ``payload`` with its kind (``format``) and ``vocab``'s fingerprint, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": kind, "vocab_fingerprint": vocab.fingerprint(), **payload}, tmp)


def load_checkpoint(path: str | os.PathLike[str], kind: str, what: str) -> dict[str, Any]:
    """The payload of a checkpoint of ``kind`` (named ``what`` in errors) written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise NceLmError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise NceLmError(f"checkpoint {path} is corrupted or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise NceLmError(f"{path} is not an nce_lm {what} checkpoint")
    return payload


def check_vocabulary(payload: dict[str, Any], vocab: Fingerprinted, problem: str) -> None:
    """An :class:`NceLmError` saying ``problem`` unless ``payload`` was saved with ``vocab``."""
    if payload.get("vocab_fingerprint") != vocab.fingerprint():
        raise NceLmError(problem)
