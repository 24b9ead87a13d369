"""Time forward + backward of every objective against the full softmax on the same inputs.

    python scripts/bench_objectives.py [--device cpu|cuda] [--batch 4096] [--dim 256]
        [--vocab-sizes 10000,100000,1000000] [--noise 64,1024] [--repeats 3] [--quick] [--output FILE]

For each vocabulary size V: hidden (B, d) and an output layer weight (V, d) + bias (V,) that require
gradients, targets drawn from the unigram-like noise, and each objective's loss summed and
back-propagated. Sampled objectives share their k noise samples across the batch (one matrix product).
The time is the median of ``--repeats`` runs after one warm-up; on CUDA the device is synchronised and
the peak memory is reported. The full softmax is skipped (and says so) when its (B, V) logits, their log
softmax and their gradient would not fit in ``--max-full-gib`` (default: 8 on CPU, half the GPU's memory on
CUDA). ``--quick`` is a smoke run: V = 10,000 only, k = 64, one repeat.
"""

from __future__ import annotations

import statistics
import time

import torch
from bench_common import emit, markdown, parser

from nce_lm.objectives.losses import build_objective
from nce_lm.pipeline.noise import NoiseDistribution

SAMPLED = ("nce", "neg", "ranking", "infonce")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_objective(objective, hidden, weight, bias, targets, repeats: int) -> tuple[float, float | None]:
    """Median seconds of forward + backward, and peak CUDA memory in GiB (None on CPU)."""
    device = hidden.device
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(repeats + 1):
        for tensor in (hidden, weight, bias):
            tensor.grad = None
        _sync(device)
        start = time.perf_counter()
        objective(hidden, weight, bias, targets).sum().backward()
        _sync(device)
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options.add_argument("--batch", type=int, default=4096)
    options.add_argument("--dim", type=int, default=256)
    options.add_argument("--vocab-sizes", default="10000,100000,1000000")
    options.add_argument("--noise", default="64,1024", help="values of k")
    options.add_argument("--repeats", type=int, default=3)
    options.add_argument("--max-full-gib", type=float, help="skip the full softmax above this (GiB)")
    options.add_argument("--quick", action="store_true", help="smoke run: V=10000, k=64, one repeat")
    args = options.parse_args()
    if args.quick:
        args.vocab_sizes, args.noise, args.repeats = "10000", "64", 1
    if args.repeats < 1:
        options.error("--repeats must be at least 1")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        options.error("--device cuda but no GPU is visible")
    if args.max_full_gib is None:
        total = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 16 * 2**30
        args.max_full_gib = total / 2 / 2**30
    ks = [int(k) for k in args.noise.split(",")]
    rows = []
    for vocab_size in (int(v) for v in args.vocab_sizes.split(",")):
        g = torch.Generator(device="cpu").manual_seed(0)
        counts = torch.randint(1, 1000, (vocab_size,), generator=g).float() ** 2
        noise = NoiseDistribution(counts, device=device)
        hidden = (torch.randn(args.batch, args.dim, generator=g) * 0.1).to(device).requires_grad_(True)
        weight = (torch.randn(vocab_size, args.dim, generator=g) * 0.1).to(device).requires_grad_(True)
        bias = noise.log_probs.clamp(min=-30).clone().requires_grad_(True)
        targets = noise.sample((args.batch,), torch.Generator(device=device).manual_seed(1))

        full_gib = 3 * args.batch * vocab_size * 4 / 2**30  # logits, log softmax, gradient: float32
        full_ms = None
        full_text = f"skipped: memory, needs {full_gib:.0f} GiB"
        if full_gib <= args.max_full_gib:
            try:
                seconds, peak = time_objective(
                    build_objective("full", None, 0), hidden, weight, bias, targets, args.repeats
                )
                full_ms = seconds * 1000
            except torch.OutOfMemoryError:
                full_text = "skipped: out of memory"
        if full_ms is None:
            rows.append(f"{vocab_size:,} | full | – | {full_text} | – | –")
        else:
            peak_text = f"{peak:.2f}" if peak is not None else "–"
            rows.append(f"{vocab_size:,} | full | – | {full_ms:.1f} | 1.0 | {peak_text}")
        for k in ks:
            for name in SAMPLED:
                objective = build_objective(name, noise, k, generator=torch.Generator(device=device).manual_seed(2))
                seconds, peak = time_objective(objective, hidden, weight, bias, targets, args.repeats)
                speedup = f"{full_ms / (seconds * 1000):.1f}" if full_ms else "–"
                peak_text = f"{peak:.2f}" if peak is not None else "–"
                rows.append(f"{vocab_size:,} | {name} | {k} | {seconds * 1000:.1f} | {speedup} | {peak_text}")
        del hidden, weight, bias
    table = markdown("V | objective | k | fwd+bwd ms | speed-up vs full | peak GiB", rows)
    emit([f"B={args.batch}, d={args.dim}; median of {args.repeats}", "", *table], args.output, args.device)


if __name__ == "__main__":
    main()
