"""A run's progress as JSON lines: one record per line, appended and flushed as it is written.

Each record is one ``write`` of one line to a file opened for appending, closed (so flushed to the operating
system) before the run goes on: a run killed at any point keeps every record it logged, at worst with a last line
cut short, and nothing is ever rewritten (a record costs O(its length), not O(the log)). Values that are not
finite numbers are written as ``null``, so every line is strict JSON. The language model writes ``log.jsonl`` in
its run folder (docs/lm.md, "Watching a run"); skip-gram writes ``CHECKPOINT.log.jsonl`` beside its checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class JsonLinesLog:
    """Records appended to ``path``. A resumed run (``append``) continues the file; a new one replaces it at its
    first record, so a run that fails before logging anything leaves no file (or an earlier run's) behind."""

    def __init__(self, path: str | os.PathLike[str], append: bool) -> None:
        self.path = Path(path)
        self._mode = "a" if append else "w"

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line (floats that are not finite become null) and flush it."""
        finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with open(self.path, self._mode, encoding="utf-8") as log:
            log.write(json.dumps(finite, allow_nan=False) + "\n")
        self._mode = "a"
