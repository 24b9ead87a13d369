"""Time two whole commands in turn, A B A B ..., as a user runs them: start-up, reading, training, writing.

    python scripts/bench_commands.py --runs 3 \
        "nce-lm skipgram corpus.txt -o w.bin --threads 2 --sample 1e-4 --quiet" \
        "python scripts/gensim_skipgram.py corpus.txt g.bin --threads 2 --sample 1e-4"

Each run is one process, measured from outside: wall seconds, CPU seconds (user + system, from the kernel's
accounting of the finished process, os.wait4) and its peak resident memory. Taking turns spreads a drifting
machine over both commands; the ratio A/B is taken pair by pair and its median printed, which is the figure to
quote on a shared machine. Commands are split as a shell splits words (no shell runs them); their output is
thrown away.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """One finished process: wall and CPU seconds, peak resident memory in MiB, exit status."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    status: int


def run_once(command: list[str]) -> Run:
    """Start ``command``, wait for it, and return what it cost."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    peak_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024  # bytes on macOS
    return Run(wall, usage.ru_utime + usage.ru_stime, peak_kib / 1024, process.returncode)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("a", help="command A, one string")
    options.add_argument("b", help="command B, one string")
    options.add_argument("--runs", type=int, default=3, help="runs of each command, counted (default 3)")
    options.add_argument("--warmup", type=int, default=0, help="pairs run first and not counted (default 0)")
    args = options.parse_args()
    if args.runs < 1 or args.warmup < 0:
        options.error("--runs must be at least 1 and --warmup at least 0")
    commands = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    for name, command in commands.items():
        if not command or shutil.which(command[0]) is None:
            print(f"command {name} cannot be started: {command[0] if command else 'empty'} is not a program")
            return 2
    runs: dict[str, list[Run]] = {"A": [], "B": []}
    for pair in range(args.warmup + args.runs):
        for name, command in commands.items():
            run = run_once(command)
            if run.status != 0:
                print(f"command {name} exited with status {run.status}: {args.a if name == 'A' else args.b}")
                return 1
            if pair >= args.warmup:
                runs[name].append(run)
    print(f"{args.runs} runs each, in turn; medians (min-max)")
    print("| command | wall s | cpu s | peak MiB |")
    print("|---|---|---|---|")
    for name in commands:
        walls = [run.wall_s for run in runs[name]]
        cpus = [run.cpu_s for run in runs[name]]
        peaks = [run.peak_mib for run in runs[name]]
        print(
            f"| {name} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) "
            f"| {statistics.median(cpus):.2f} | {max(peaks):.1f} |"
        )
    ratios = [a.wall_s / b.wall_s for a, b in zip(runs["A"], runs["B"])]
    ratio = statistics.median(ratios)
    print(
        f"wall A/B pair by pair: median {ratio:.3f} ({min(ratios):.3f}-{max(ratios):.3f}): "
        f"A runs at {1 / ratio:.2f}x B's speed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
