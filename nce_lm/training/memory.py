"""A memory budget checked before the large allocations of a run, so that an absurd setting is refused in one
line instead of ending in the kernel's out-of-memory killer (which may take a shared machine's other jobs
with it).

The budget is the machine's physical memory (``os.sysconf``), or ``NCE_LM_MEMORY_BUDGET`` (bytes) when set.
Callers estimate the bytes of their largest tensors from the settings and the vocabulary size, so a check
costs nothing and errs on the side of running: an estimate below the budget can still fail later, one above
it cannot succeed.
"""

from __future__ import annotations

import os

from nce_lm.errors import NceLmError

BUDGET_ENV = "NCE_LM_MEMORY_BUDGET"


def memory_budget() -> int:
    """Bytes a run may plan to allocate: ``$NCE_LM_MEMORY_BUDGET``, else the physical memory."""
    if os.environ.get(BUDGET_ENV, "").isdigit():
        return int(os.environ[BUDGET_ENV])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 40


def check_memory(parts: dict[str, int], advice: str) -> None:
    """Refuse when the estimated bytes of ``parts`` (name -> bytes) exceed the budget, naming the largest."""
    total, budget = sum(parts.values()), memory_budget()
    if total > budget:
        largest = max(parts, key=parts.__getitem__)
        raise NceLmError(
            f"these settings need about {total / 2**30:,.1f} GiB ({largest}: {parts[largest] / 2**30:,.1f} "
            f"GiB), more than the {budget / 2**30:,.1f} GiB of memory this machine has; {advice}"
        )
