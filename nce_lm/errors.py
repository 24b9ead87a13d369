"""The one exception type that reaches the user.

Library code raises :class:`NceLmError` for every bad input it can recognise (a missing file, an option
out of range, a corrupted checkpoint...). The command line prints its message as a single line and exits
with status 2; anything else that escapes is a bug.
"""


class NceLmError(Exception):
    """A problem with the user's input, described in one line that says what to do about it."""
