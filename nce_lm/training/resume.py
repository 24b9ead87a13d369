"""What a resumed run may change, for the skip-gram trainer and the language model alike.

A checkpoint continues the run it was saved from, so everything that defines the model and what it learns
(dimension, objective, window, noise, batch, data, seed...) must stay as it was. A resumed run may change how
long it trains (``epochs``, ``max_tokens``), its learning rate (``lr``, ``min_lr``: the advice "lower the
learning rate" must be followable on a resumed run), and where and how visibly it runs (``device``,
``precision``, ``threads``, ``kernel``, ``progress``), and how often skip-gram draws its noise words
(``noise_per``: each pair's noise is k draws from q either way, docs/objectives.md). Each trainer's settings
are a dataclass; the names below that are not fields of it do not apply to it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from nce_lm.errors import NceLmError

RESUMABLE = (
    "epochs",
    "max_tokens",
    "lr",
    "min_lr",
    "device",
    "precision",
    "threads",
    "kernel",
    "noise_per",
    "progress",
)


def resumable_names(settings: Any) -> list[str]:
    """The settings of this dataclass that a resumed run may change."""
    names = {f.name for f in fields(settings)}
    return [name for name in RESUMABLE if name in names]


def refuse_changes(saved: Any, asked: Any, what: str) -> None:
    """Raise an :class:`NceLmError` naming every setting of ``asked`` that differs from ``saved`` (two instances
    of one settings dataclass) and may not change on resume."""
    changed = [
        f.name for f in fields(asked) if f.name not in RESUMABLE and getattr(asked, f.name) != getattr(saved, f.name)
    ]
    if changed:
        details = ", ".join(f"{name} {getattr(saved, name)!r} -> {getattr(asked, name)!r}" for name in changed)
        raise NceLmError(
            f"cannot resume {what} with other settings ({details}); only {', '.join(resumable_names(asked))} may change"
        )
