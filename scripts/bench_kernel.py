"""Time the fused skip-gram/CBOW kernel alone: record one run's calls into it, then replay them through a build.

    python scripts/bench_kernel.py record calls.pkl -- corpus.txt --sample 1e-4 --epochs 1 [--model cbow]
    python scripts/bench_kernel.py replay calls.pkl nce_lm/skipgram/_kernel.cpython-311-x86_64-linux-gnu.so \
        [--threads 2] [--repeats 3]

``record`` runs ``nce-lm skipgram`` with the arguments after ``--`` (writing its vectors to a temporary folder)
and saves the tables as they were before the first call, and every call's examples and settings. ``replay``
loads a kernel build from its file (another build of ``_kernel.c``, say, to compare two versions on the same
examples), trains a copy of those tables through every recorded call, and prints the seconds of the fastest and
the median repeat, the summed loss and a hash of the tables: two builds that compute the same update print the
same hash. This times the kernel without start-up, reading or examples, so the figures are not whole-command
figures (``scripts/bench_commands.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def record(out: Path, skipgram_args: list[str]) -> None:
    """Run ``nce-lm skipgram`` on ``skipgram_args`` and pickle its initial tables and kernel calls to ``out``."""
    from nce_lm.cli import main
    from nce_lm.skipgram import kernel

    if kernel._kernel is None:
        sys.exit("the C extension was not built: nothing to record")
    train_pairs = kernel._kernel.train_pairs
    tables: dict[str, np.ndarray] = {}
    calls: list[dict[str, Any]] = []

    def recording(**arguments: Any) -> float:
        if not calls:
            tables.update(input=arguments["input"].copy(), output=arguments["output"].copy())
        kept = {name: value for name, value in arguments.items() if name not in ("input", "output")}
        calls.append({name: np.copy(value) if isinstance(value, np.ndarray) else value for name, value in kept.items()})
        return train_pairs(**arguments)

    kernel._kernel.train_pairs = recording
    with tempfile.TemporaryDirectory() as folder:
        status = main(["skipgram", *skipgram_args, "-o", str(Path(folder) / "vectors.bin"), "--quiet"])
    if status or not calls:
        sys.exit(f"nce-lm skipgram exited with status {status} after {len(calls)} kernel calls")
    with open(out, "wb") as file:
        pickle.dump((tables, calls), file, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"recorded {len(calls)} calls, {sum(len(c['centre']) for c in calls):,} examples, into {out}")


def load_build(path: Path) -> Any:
    """The kernel module compiled into the file ``path``."""
    loader = importlib.machinery.ExtensionFileLoader("nce_lm.skipgram._kernel", str(path))
    spec = importlib.util.spec_from_file_location("nce_lm.skipgram._kernel", path, loader=loader)
    if spec is None:
        sys.exit(f"{path} is not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def replay(recorded: Path, build: Path, threads: int, repeats: int) -> None:
    """Train the recorded tables through every recorded call of ``recorded`` with the kernel in ``build``."""
    with open(recorded, "rb") as file:  # a file this script wrote: a pickle of arrays, dicts and numbers
        tables, calls = pickle.load(file)
    kernel = load_build(build)
    seconds = []
    for _ in range(repeats):
        inputs, outputs = tables["input"].copy(), tables["output"].copy()
        started, loss = time.perf_counter(), 0.0
        for call in calls:
            loss += kernel.train_pairs(input=inputs, output=outputs, **{**call, "threads": threads})
        seconds.append(time.perf_counter() - started)
    digest = hashlib.sha256(inputs.tobytes() + outputs.tobytes()).hexdigest()[:16]
    print(
        f"{build}: {threads} threads, best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s "
        f"of {repeats}; summed loss {loss:.6f}; tables {digest}"
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = options.add_subparsers(dest="verb", required=True)
    recording = verbs.add_parser("record", help="run nce-lm skipgram and save its kernel calls")
    recording.add_argument("out", type=Path)
    recording.add_argument("skipgram_args", nargs=argparse.REMAINDER, help="after --: nce-lm skipgram's arguments")
    replaying = verbs.add_parser("replay", help="time the saved calls through a kernel build")
    replaying.add_argument("recorded", type=Path)
    replaying.add_argument("build", type=Path, help="a compiled _kernel extension file")
    replaying.add_argument("--threads", type=int, default=2)
    replaying.add_argument("--repeats", type=int, default=3)
    args = options.parse_args()
    if args.verb == "record":
        record(args.out, [a for a in args.skipgram_args if a != "--"])
    else:
        if args.threads < 1 or args.repeats < 1:
            options.error("--threads and --repeats must be at least 1")
        for path in (args.recorded, args.build):
            if not path.is_file():
                options.error(f"{path}: no such file")
        replay(args.recorded, args.build, args.threads, args.repeats)


if __name__ == "__main__":
    main()
