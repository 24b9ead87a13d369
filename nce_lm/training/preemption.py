"""Pre-emption: what SIGTERM and SIGINT do while a command runs, and when the trainers checkpoint on their own.

SIGTERM is what schedulers (Slurm, Kubernetes, spot instances) send before they kill a job, SIGINT what Ctrl-C
sends; both are handled alike. While :func:`signals_handled` is in force a signal raises :class:`Stopped` at once,
so the ``finally`` blocks and :func:`nce_lm.fileio.atomic_path` remove the command's temporaries and nothing
half-written is left; the command line turns it into exit status 128 + the signal's number (143 for SIGTERM, 130
for SIGINT). Inside :func:`deferred` (a trainer's loop) a signal is only recorded: the trainer looks at
:func:`pending` at its next step boundary, writes a resumable checkpoint and then raises :class:`Stopped` itself,
saying what it saved; one that comes after the last step boundary lets the run complete. Once a command is
stopping, further signals are ignored (with a note), so that a second Ctrl-C cannot interrupt the checkpoint being
written or the clean-up; SIGKILL still ends it at once.

:class:`CheckpointEvery` is the ``--checkpoint-every DURATION|STEPS`` of both trainers, and
:class:`StepBoundaries` decides at each step boundary whether to checkpoint and whether to stop.
docs/reliability.md is the user's account. This module imports the standard library alone.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """A command ended by SIGTERM or SIGINT. A KeyboardInterrupt, so that code that cleans up after Ctrl-C does
    so after SIGTERM too.

    ``where``: where a trainer stopped ("in epoch 2 after chunk 3 of 7"); ``saved``: the file or run folder it
    saved there to resume from, or None; ``advice``: what to do next when nothing was saved; ``resume_command``:
    the command line that resumes, filled in by the command line's verb.
    """

    def __init__(self, signum: int, where: str = "", saved: str | None = None, advice: str | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.where, self.saved, self.advice = where, saved, advice
        self.resume_command: str | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended: 143 (SIGTERM), 130 (SIGINT)."""
        return 128 + self.signum

    def report(self) -> str:
        """One line: which signal stopped the command, what was saved, and how to resume."""
        line = f"stopped by {signal.Signals(self.signum).name}" + (f" {self.where}" if self.where else "")
        if self.saved is None:
            return f"{line}; nothing was saved" + (f": {self.advice}" if self.advice else "")
        line += f"; saved {self.saved}"
        return line + (f"; resume with: {self.resume_command}" if self.resume_command else "")


class _Signals:
    """The process's signal state: how deep in :func:`deferred` the main thread is, the signal recorded there, and
    whether the command is already stopping."""

    depth = 0
    pending: int | None = None
    stopping = False
    trained = False  # a deferred block (a training) has ended: what is left of the command is quick, and completes


def _handle(signum: int, frame: object) -> None:
    """The handler of SIGTERM and SIGINT: record the signal inside :func:`deferred` and after it, else stop the
    command now."""
    if _Signals.stopping or _Signals.pending is not None:
        note = "already stopping, after the checkpoint and the clean-up (SIGKILL ends it at once, leaving temporaries)"
    elif _Signals.depth > 0:
        _Signals.pending = signum
        note = "stopping at the next step boundary, with a checkpoint"
    elif _Signals.trained:
        _Signals.pending = signum
        note = "the training is done: the command completes first (it is writing its outputs)"
    else:
        _Signals.stopping = True
        raise Stopped(signum)
    print(f"{signal.Signals(signum).name}: {note}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def signals_handled() -> Iterator[None]:
    """Handle SIGTERM and SIGINT as this module says for the block, then restore the previous handlers.

    Only the main thread can set handlers: elsewhere the block runs with the handlers as they are. Nested use
    keeps the outer handling."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handle) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if previous[signal.SIGTERM] is not _handle:  # the outermost block: a later command starts afresh
            _Signals.pending, _Signals.stopping, _Signals.trained = None, False, False


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """For the block, a signal is recorded (:func:`pending`) instead of stopping the command: the code checks it at
    its step boundaries. Once the outermost block has ended (the training is done), signals wait for the rest of the
    command, which is quick (writing its outputs): a signal that came after the last step boundary lets the command
    complete."""
    _Signals.depth += 1
    try:
        yield
    finally:
        _Signals.depth -= 1
        _Signals.trained = _Signals.depth == 0


def pending() -> int | None:
    """The signal received inside :func:`deferred` and not acted on yet, or None."""
    return _Signals.pending


def stop(signum: int, where: str, saved: str | None = None, advice: str | None = None) -> Stopped:
    """The :class:`Stopped` a trainer raises at a step boundary for the pending ``signum``, having saved ``saved``
    (or nothing, with ``advice``); the command is then stopping (further signals are ignored)."""
    _Signals.stopping = True
    return Stopped(signum, where, saved, advice)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class CheckpointEvery:
    """``--checkpoint-every``: a checkpoint every ``seconds`` of training, or every ``steps`` step boundaries (the
    language model's optimizer steps, skip-gram's chunks); exactly one of them is set."""

    seconds: float | None = None
    steps: int | None = None

    @classmethod
    def parse(cls, text: str) -> CheckpointEvery:
        """``30m``, ``600s``, ``1.5h`` (a duration) or ``5000`` (steps); a ValueError for anything else."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", text)
        if match is None:
            raise ValueError(f"expected a duration (30m, 600s, 2h) or a number of steps (5000), got {text!r}")
        number, unit = match.groups()
        if not unit:
            if not number.isdigit() or int(number) < 1:
                raise ValueError(f"a number of steps is a whole number of at least 1, got {text!r}")
            return cls(steps=int(number))
        seconds = float(number) * _UNITS[unit]
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"a duration must be above 0, got {text!r}")
        return cls(seconds=seconds)


class StepBoundaries:
    """A trainer's step boundaries: at each, whether to write a checkpoint (``every`` is due, or a signal asks the
    run to stop) and which signal stops it. The clock of ``every.seconds`` starts at construction and again at
    each checkpoint."""

    def __init__(self, every: CheckpointEvery | None = None) -> None:
        self.every = every
        self._steps = 0
        self._since = time.monotonic()

    def reached(self) -> tuple[bool, int | None]:
        """Called once per step boundary: (checkpoint now, the signal that stops the run or None)."""
        self._steps += 1
        signum = pending()
        due = self.every is not None and (
            (self.every.steps is not None and self._steps >= self.every.steps)
            or (self.every.seconds is not None and time.monotonic() - self._since >= self.every.seconds)
        )
        if due or signum is not None:
            self._steps, self._since = 0, time.monotonic()
        return due or signum is not None, signum
