"""What every scripts/bench_*.py shares (run as ``python scripts/bench_X.py``, which puts this folder on sys.path):
the parser with ``--output``, the line saying on what machine, at which commit and on which day a table was made,
and the markdown table, printed and written."""

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
