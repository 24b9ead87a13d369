"""Option values checked when the command line is parsed, each refusal giving the range and the reason.

A bad value stops before anything is read or written, in one line such as ``nce-lm VERB: error: argument
--dim: must be between 1 and 100,000 (...), got 0``, and exit status 2 (:class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nce_lm.errors import NceLmError
from nce_lm.training.preemption import CheckpointEvery


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``PROG: error: MESSAGE``) and exit status 2.

    An option is never guessed from its first letters (``allow_abbrev`` off: ``--negative`` is no ``--negatives``),
    and an unknown argument is refused by the innermost (sub)command, which names itself and the closest option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Also record the innermost (sub)command's name, ``nce-lm lm train``, as ``command`` for error lines."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            hint = self.closest_option(next((e for e in extras if e.startswith("-")), ""))
            self.error(f"unrecognized arguments: {' '.join(extras)}" + (f" (did you mean {hint}?)" if hint else ""))
        if not getattr(namespace, "command", None):
            namespace.command = self.prog
        return namespace, extras

    def closest_option(self, given: str) -> str | None:
        """The long option ``given`` (``--name`` or ``--name=value``) most likely meant: one it extends or begins
        (``--dimensions``, ``--negative``), else the closest spelling; None when none is close."""
        name = given.split("=", 1)[0]
        if len(name) < 3 or not name.startswith("--"):
            return None
        options = [option for option in self._option_string_actions if option.startswith("--")]
        related = [option for option in options if name.startswith(option) or option.startswith(name)]
        found = difflib.get_close_matches(name, related or options, n=1, cutoff=0.0 if related else 0.6)
        return found[0] if found else None

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _range_text(low: float | None, high: float | None) -> str:
    if high is None:
        return f"at least {low:,}"
    if low is None:
        return f"at most {high:,}"
    return f"between {low:,} and {high:,}"


def integer(low: int | None = 1, high: int | None = None, reason: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (either end open when None); ``reason`` explains the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            why = f" ({reason})" if reason else ""
            raise argparse.ArgumentTypeError(f"must be {_range_text(low, high)}{why}, got {value:,}")
        return value

    return parse


def number(
    low: float | None = None, high: float | None = None, *, above: bool = False, reason: str = ""
) -> Callable[[str], float]:
    """An argparse type: a finite float in [low, high] (``above``: strictly greater than ``low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = low is not None and (value <= low if above else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            bounds = (
                (f"greater than {low:g}" + (f" and at most {high:g}" if high is not None else ""))
                if above
                else _range_text(low, high)
            )
            why = f" ({reason})" if reason else ""
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}{why}, got {text}")
        return value

    return parse


def device_name(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N."""
    from nce_lm.training.devices import check_device_name  # imports torch, which only the trainers need

    try:
        check_device_name(text)
    except NceLmError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


KERNEL_SIZE = integer(1, 2**31 - 1, "the C kernel counts in 32-bit integers")  # skip-gram's sizes
# _kernel.c's train_pairs keeps a pair's 1 + k scores on its stack and refuses k above 4096.
MAX_NEGATIVES = 4096
NEGATIVES = integer(1, MAX_NEGATIVES, "the C kernel keeps a pair's noise scores on its stack")
# Every model here diverges far below 10; a larger rate is a typo (1e-3 meant), and 1e300 overflows the schedule.
LEARNING_RATE = number(0, 10, above=True, reason="larger rates only diverge")  # skip-gram's SGD (word2vec: 0.025)
# the LM's SGD starts at 20; a rate that diverges stops the run (exit 2); past 1e6 torch's steps overflow
LM_LEARNING_RATE = number(0, 1e6, above=True, reason="larger rates overflow the steps")
FINAL_LEARNING_RATE = number(0, 10, reason="larger rates only diverge")
# word2vec's subsampling keeps a word of frequency f with probability (sqrt(f/t) + 1) t/f, which is 1 for every
# word once t >= 1: larger thresholds change nothing; 0 turns subsampling off.
SAMPLE = number(0, 1, reason="t = 1 already keeps every word; 0 turns subsampling off")
SEED = integer(0, 2**32 - 1, "numpy and torch take 32-bit seeds")


def checkpoint_every(text: str) -> CheckpointEvery:
    """An argparse type: ``--checkpoint-every DURATION|STEPS`` (``30m``, ``600s``, ``2h`` or ``5000``)."""
    try:
        return CheckpointEvery.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def threads(text: str) -> int:
    """An argparse type: a CPU thread count, at most MAX_THREADS (nce_lm.training.devices)."""
    from nce_lm.training.devices import MAX_THREADS  # imports torch, which only the trainers need

    return integer(1, MAX_THREADS, f"more threads than the {os.cpu_count()} CPUs only wait for each other")(text)


def add_replace_errors(parser: argparse.ArgumentParser) -> None:
    """``--replace-errors``, taken by every verb that reads text: undecodable bytes become U+FFFD."""
    parser.add_argument(
        "--replace-errors",
        action="store_true",
        help="replace undecodable bytes with U+FFFD instead of stopping with an error",
    )


def error_mode(args: argparse.Namespace) -> str:
    """The ``errors`` value (nce_lm.decoding.ERROR_MODES) that ``--replace-errors`` chose."""
    return "replace" if args.replace_errors else "strict"
