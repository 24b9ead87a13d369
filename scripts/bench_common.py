"""What every scripts/bench_*.py shares (run as ``python scripts/bench_X.py``, which puts this folder on sys.path):
the parser with ``--output``, the line saying on what machine, at which commit and on which day a table was made,
the markdown table, printed and written, and the adaptive softmax that bench_lm.py and bench_scaling.py compare
with."""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import torch

from nce_lm.fileio import write_text_atomic


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench script's parser: ``doc`` (its module docstring) as the help text, and ``--output FILE``."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--output", help="also write the table to this file")
    return result


def heading(device: str = "cpu") -> str:
    """The GPU's name (or the CPU's model and torch's threads); torch's version; ``git describe``; today."""
    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(device)
    else:
        cpuinfo = Path("/proc/cpuinfo")
        names = re.findall(r"model name\s*: (.*)", cpuinfo.read_text()) if cpuinfo.is_file() else []
        where = f"{names[0] if names else platform.machine()}, {torch.get_num_threads()} threads"
    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    try:  # a benchmark that ran for an hour must not fail for want of git
        commit = subprocess.run(git, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return f"{where}; torch {torch.__version__}; commit {commit or 'unknown'}; {datetime.date.today()}"


def markdown(header: str, rows: Iterable[str]) -> list[str]:
    """The lines of a markdown table whose ``header`` and ``rows`` are cells joined by " | "."""
    return [f"| {header} |", "|" + "---|" * (header.count(" | ") + 1), *(f"| {row} |" for row in rows)]


def emit(lines: list[str], output: str | None, device: str = "cpu") -> None:
    """Print :func:`heading` and ``lines``; write them to ``output`` too when given."""
    text = "\n".join([heading(device), *lines]) + "\n"
    print(text, end="")
    if output:
        write_text_atomic(output, text)


ADAPTIVE_MASS = (0.8, 0.95)  # cutoffs where the frequency-sorted vocabulary reaches these shares of the tokens


def adaptive_cutoffs(counts, mass: tuple[float, ...] = ADAPTIVE_MASS) -> list[int]:
    """Cutoffs for ``torch.nn.AdaptiveLogSoftmaxWithLoss`` by Grave et al.'s (2017) rule: the head holds the most
    frequent words up to ``mass[0]`` of the tokens, each tail cluster the words up to the next share.
    ``counts`` (V,) must be sorted by decreasing frequency (the module assumes ids in that order)."""
    import numpy as np

    share = np.cumsum(counts) / np.sum(counts)
    cuts = sorted({int(np.searchsorted(share, m)) + 1 for m in mass})
    return [c for c in cuts if 0 < c < len(counts)]


def adaptive_softmax(dim: int, counts, mass: tuple[float, ...] = ADAPTIVE_MASS) -> torch.nn.AdaptiveLogSoftmaxWithLoss:
    """torch's adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs") on hidden states of
    size ``dim`` over V = len(counts) words, ``counts`` (V,) in decreasing order (a Vocab's: its two specials
    first, then by count): cutoffs by :func:`adaptive_cutoffs`, div_value 4 (tail i projects to dim / 4^(i+1)),
    the head's bias started at log unigram for its words and at the log share of the tokens for each tail's
    logit, as our output bias starts at log q."""
    import itertools

    from nce_lm.lm.model import LOG_Q_FLOOR

    cutoffs = adaptive_cutoffs(counts, mass)
    head = torch.nn.AdaptiveLogSoftmaxWithLoss(dim, len(counts), cutoffs, div_value=4.0, head_bias=True)
    probs = torch.as_tensor(counts / counts.sum(), dtype=torch.float32)
    bounds = [*cutoffs, len(counts)]  # the head: [0, cutoffs[0]); tail i: [cutoffs[i], cutoffs[i + 1])
    with torch.no_grad():
        clusters = [probs[lo:hi].sum() for lo, hi in itertools.pairwise(bounds)]
        head.head.bias.copy_(torch.cat([probs[: cutoffs[0]], torch.stack(clusters)]).log().clamp(min=LOG_Q_FLOOR))
    return head
