"""A large plain-text corpus for speed alone: tokens drawn from a Zipf law over V words, 20 to a line.

    python scripts/zipf_corpus.py OUTPUT [--vocab 1000000] [--tokens 50000000] [--zipf 1.1] [--seed 0]

Word r (r = 1 .. V) is written ``w<r>`` and drawn with probability ∝ r^-s, independently: no structure for a
model to learn, only the frequency profile of text, so it measures how fast a trainer goes when its tables do
not fit in any cache (``nce-lm synth`` gives learnable text, but its exact floor over V = 10^6 words takes
minutes per million tokens). Written in blocks of a million tokens, atomically; BENCHMARKS.md uses it for the
skip-gram speed run against gensim.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nce_lm.fileio import atomic_path

BLOCK = 1_000_000  # tokens drawn and written at a time
LINE = 20  # tokens per line


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("output", type=Path)
    options.add_argument("--vocab", type=int, default=1_000_000)
    options.add_argument("--tokens", type=int, default=50_000_000)
    options.add_argument("--zipf", type=float, default=1.1, help="the exponent s (default 1.1)")
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()
    if args.vocab < 1 or args.tokens < 1 or args.zipf <= 0:
        options.error("--vocab and --tokens must be positive, --zipf above 0")
    cdf = np.cumsum(np.arange(1, args.vocab + 1, dtype=np.float64) ** -args.zipf)
    cdf /= cdf[-1]
    words = np.array([f"w{r}".encode() for r in range(1, args.vocab + 1)], dtype=object)
    rng = np.random.default_rng(args.seed)
    with atomic_path(args.output) as tmp, open(tmp, "wb") as out:
        for start in range(0, args.tokens, BLOCK):
            size = min(BLOCK, args.tokens - start)
            ids = np.minimum(np.searchsorted(cdf, rng.random(size)), args.vocab - 1)
            drawn = words[ids]
            out.writelines(b" ".join(drawn[i : i + LINE]) + b"\n" for i in range(0, size, LINE))


if __name__ == "__main__":
    main()
