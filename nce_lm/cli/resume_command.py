"""The command line that resumes a stopped run, printed when SIGTERM or SIGINT stops a trainer
(:class:`nce_lm.training.preemption.Stopped`): the user's own command, with the options that named the run's
output or its earlier checkpoint replaced by ``--resume``."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def without_options(argv: Sequence[str], options: Sequence[str]) -> list[str]:
    """``argv`` less each of ``options`` with its value: ``--resume X``, ``--resume=X`` and, for a one-letter option,
    ``-oX``."""
    kept: list[str] = []
    words = iter(argv)
    for word in words:
        if word in options:
            next(words, None)
        elif not any(word.startswith(f"{option}=") for option in options if option.startswith("--")) and not any(
            word.startswith(option) and len(word) > 2 for option in options if len(option) == 2
        ):
            kept.append(word)
    return kept


def resume_command(argv: Sequence[str], replaced: Sequence[str], resume_from: str) -> str:
    """``nce-lm ARGV`` with the options ``replaced`` left out and ``--resume resume_from`` added, quoted for a
    POSIX shell."""
    return shlex.join(["nce-lm", *without_options(argv, replaced), "--resume", resume_from])
