"""What every scripts/bench_*.py shares: its parser (the docstring as help, ``--output``), the line saying on what
machine, at which commit and on which day a table was made, and the markdown table, printed and written.

The scripts are run as ``python scripts/bench_X.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
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


def machine(device: str = "cpu") -> str:
    """The GPU's name, or the CPU's model and torch's thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def heading(device: str = "cpu") -> str:
    """machine; torch version; commit (``git describe --dirty``); date: the first line of every table."""
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return f"{machine(device)}; torch {torch.__version__}; commit {commit or 'unknown'}; {datetime.date.today()}"


def markdown(header: str, rows: Iterable[str]) -> list[str]:
    """The lines of a markdown table whose ``header`` and ``rows`` are cells joined by " | "."""
    return [f"| {header} |", "|" + "---|" * (header.count(" | ") + 1), *(f"| {row} |" for row in rows)]


def emit(lines: list[str], output: str | None, device: str = "cpu") -> None:
    """Print :func:`heading` and ``lines``; write them to ``output`` too when given."""
    text = "\n".join([heading(device), *lines]) + "\n"
    print(text, end="")
    if output:
        write_text_atomic(output, text)
