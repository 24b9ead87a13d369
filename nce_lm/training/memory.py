"""A memory budget checked before the large allocations of a run, so that an absurd setting is refused in one
line instead of ending in the kernel's out-of-memory killer (which may take a shared machine's other jobs
with it).

The budget is the machine's physical memory (``os.sysconf``), or ``NCE_LM_MEMORY_BUDGET`` (a positive whole
number of bytes) when set; any other value of the variable is refused rather than ignored. Callers estimate the
bytes of their largest tensors from the settings and the vocabulary size, so a check costs nothing and errs on
the side of running: an estimate below the budget can still fail later, one above it cannot succeed.
"""

from __future__ import annotations

import os

from nce_lm.errors import NceLmError

BUDGET_ENV = "NCE_LM_MEMORY_BUDGET"


def memory_budget() -> int:
    """Bytes a run may plan to allocate: ``$NCE_LM_MEMORY_BUDGET``, else the physical memory."""
    text = os.environ.get(BUDGET_ENV)
    if text is not None:
        value = text.strip().replace("_", "")
        if not value.isascii() or not value.isdigit() or int(value) == 0:
            raise NceLmError(
                f"{BUDGET_ENV} must be a positive whole number of bytes (such as 8000000000), got {text!r}; "
                "unset it to plan against the machine's memory"
            )
        return int(value)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 40


def _size(count: int) -> str:
    """A byte count in GiB, or in MiB or bytes when that would read 0.0 GiB."""
    if count >= 2**30 // 10:
        return f"{count / 2**30:,.1f} GiB"
    return f"{count / 2**20:,.1f} MiB" if count >= 2**20 // 10 else f"{count:,} bytes"


def check_memory(parts: dict[str, int], advice: str) -> None:
    """Refuse when the estimated bytes of ``parts`` (name -> bytes) exceed the budget, naming the largest."""
    total, budget = sum(parts.values()), memory_budget()
    if total > budget:
        largest = max(parts, key=parts.__getitem__)
        limit = f"{BUDGET_ENV}={budget}" if BUDGET_ENV in os.environ else "the memory this machine has"
        raise NceLmError(
            f"these settings need about {_size(total)} ({largest}: {_size(parts[largest])}), more than the "
            f"{_size(budget)} of {limit}; {advice}"
        )
