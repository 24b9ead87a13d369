"""How text that is not valid UTF-8 is met, for every reader of text (corpora, vector files, evaluation files).

"strict" stops with a one-line :class:`NceLmError` naming the place, the bad byte and the option that reads it
instead; "replace" reads each undecodable byte as U+FFFD (the CLI's ``--replace-errors``).
"""

from __future__ import annotations

from nce_lm.errors import NceLmError

ERROR_MODES = ("strict", "replace")


def check_error_mode(errors: str) -> None:
    """Refuse an ``errors`` value outside :data:`ERROR_MODES`."""
    if errors not in ERROR_MODES:
        raise NceLmError(f"errors must be one of {', '.join(ERROR_MODES)}, got {errors!r}")


def undecodable(place: str, err: UnicodeDecodeError) -> NceLmError:
    """The error for a strict read that met invalid UTF-8: ``place`` (file and where in it), the bad byte, and
    the option that reads it as U+FFFD instead."""
    return NceLmError(
        f"{place} (byte 0x{err.object[err.start]:02x}); use errors='replace' (CLI --replace-errors) to substitute "
        "U+FFFD"
    )
