"""Time the corpus pipeline: vocabulary counting, token-id encoding, and noise sampling.

    python scripts/bench_corpus.py CORPUS... [--samples 10000000] [--device cpu|cuda] [--output FILE]

Prints one markdown table. Counting and encoding are reported in tokens per second of the whole
corpus (read, decode, tokenize, count / encode, write), and so is the single reading that does both when a
skip-gram run is given text files and no vocabulary; sampling in draws per second from
q ∝ count^0.75 over the corpus's vocabulary and over a synthetic Zipf vocabulary of one million words.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import emit, markdown, parser

from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.token_cache import build_vocab_and_ids, load_or_build
from nce_lm.pipeline.vocab import build_vocab


def time_sampler(noise: NoiseDistribution, draws: int, repeats: int = 3) -> float:
    """Best draws/s over ``repeats`` calls of ``noise.sample((draws,))``."""
    generator = torch.Generator(device=noise.device).manual_seed(0)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        if noise.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        noise.sample((draws,), generator)
        if noise.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return draws / best


def main() -> None:
    options = parser(__doc__)
    options.add_argument("corpus", nargs="+", help="corpus files or folders")
    options.add_argument("--samples", type=int, default=10_000_000, help="noise draws per timing (default 10M)")
    options.add_argument("--device", default="cpu", help="device for the sampler (default cpu)")
    args = options.parse_args()

    rows = []
    start = time.perf_counter()
    vocab = build_vocab(args.corpus)
    count_s = time.perf_counter() - start
    tokens = int(vocab.counts.sum())
    rows.append(("count vocabulary", f"{tokens / count_s:,.0f} tokens/s", f"{count_s:.2f} s, {len(vocab):,} types"))
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        load_or_build(args.corpus, vocab, Path(cache_dir))
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        reused = load_or_build(args.corpus, vocab, Path(cache_dir)).reused
        reuse_s = time.perf_counter() - start
        start = time.perf_counter()
        build_vocab_and_ids(args.corpus, Path(cache_dir) / "one_pass")
        both_s = time.perf_counter() - start
    rows.append(("encode to token ids", f"{tokens / encode_s:,.0f} tokens/s", f"{encode_s:.2f} s"))
    rows.append(("reuse the cache", f"{reuse_s * 1000:.1f} ms", f"reused={reused}"))
    rows.append(("count and encode, one pass", f"{tokens / both_s:,.0f} tokens/s", f"{both_s:.2f} s"))
    noise = NoiseDistribution(vocab.counts, exclude=[vocab.unk_id, vocab.eos_id], device=args.device)
    rows.append((f"sample q, V={len(vocab):,}", f"{time_sampler(noise, args.samples):,.0f} draws/s", args.device))
    zipf = np.random.default_rng(0).zipf(1.2, size=1_000_000).clip(max=10**9)
    start = time.perf_counter()
    big = NoiseDistribution(zipf, device=args.device)
    build_s = time.perf_counter() - start
    rows.append(
        ("sample q, V=1,000,000", f"{time_sampler(big, args.samples):,.0f} draws/s", f"table built in {build_s:.2f} s")
    )

    heading = f"corpus: {' '.join(args.corpus)} ({tokens:,} tokens incl. <eos>)"
    emit([heading, *markdown("step | throughput | notes", map(" | ".join, rows))], args.output, args.device)


if __name__ == "__main__":
    main()
