"""How the objectives scale with the vocabulary: synthetic corpora with a known floor, V = 10⁴ … 10⁶.

    python scripts/bench_scaling.py [--vocab-sizes 10000,100000,1000000] [--tokens 20000000]
        [--objectives full,nce,ranking] [--noise 1024] [--device cuda] [--data-dir data/synth]
        [--plot scaling.png] [--output FILE] [--quick]

For each V, ``nce_lm.synth.write_corpus`` makes (or reuses, from ``--data-dir``) a corpus drawn from the
class-bigram teacher, and the same LSTM is trained on it with each objective for the same token budget.
The table gives training tokens/s, peak memory, exact test perplexity (full softmax), the teacher's floor,
and the mean and standard deviation of log Z(c) on the test text. ``--plot`` draws tokens/s and perplexity
against V (needs matplotlib, the ``plot`` extra). ``--quick`` is a CPU-sized run: V ∈ {1,000, 10,000},
300,000 tokens, a 1 × 64 LSTM.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from nce_lm.errors import NceLmError
from nce_lm.lm import LMConfig, train_lm
from nce_lm.synth import TeacherConfig, write_corpus

MODEL = dict(model="lstm", dim=256, layers=1, dropout=0.0, optimizer="adam", lr=2e-3, batch_size=64, seq_len=35,
             epochs=1, is_samples=1024)
QUICK = dict(MODEL, dim=64, batch_size=32, is_samples=256)


def corpus_for(vocab: int, tokens: int, folder: Path, device: str) -> tuple[Path, dict]:
    target = folder / f"synth-v{vocab}-n{tokens}"
    report_path = target / "teacher.json"
    if report_path.is_file():
        return target, json.loads(report_path.read_text())
    return target, write_corpus(target, tokens, TeacherConfig(vocab=vocab, classes=min(256, vocab)), device=device)


def plot(rows: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NceLmError("--plot needs matplotlib: pip install 'nce_lm[plot]'") from None
    figure, (speed, quality) = plt.subplots(1, 2, figsize=(10, 4))
    for objective in dict.fromkeys(r["objective"] for r in rows):
        mine = [r for r in rows if r["objective"] == objective]
        speed.plot([r["vocab"] for r in mine], [r["tokens_per_s"] for r in mine], marker="o", label=objective)
        quality.plot([r["vocab"] for r in mine], [r["ppl"] / r["floor"] for r in mine], marker="o", label=objective)
    speed.set(xscale="log", yscale="log", xlabel="vocabulary size V", ylabel="training tokens/s")
    quality.set(xscale="log", xlabel="vocabulary size V", ylabel="test perplexity / teacher floor")
    speed.legend()
    quality.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-sizes", default="10000,100000,1000000")
    parser.add_argument("--tokens", type=int, default=20_000_000, help="corpus size per V (train is 90 %%)")
    parser.add_argument("--objectives", default="full,nce,ranking")
    parser.add_argument("--noise", type=int, default=1024, help="k for nce and ranking")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", help="keep the corpora here for later runs (default: a temporary folder)")
    parser.add_argument("--plot", help="write a PNG of tokens/s and perplexity against V")
    parser.add_argument("--output", help="also write the table here")
    parser.add_argument("--quick", action="store_true", help="a CPU-sized run")
    args = parser.parse_args()
    if args.quick:
        args.vocab_sizes, args.tokens = "1000,10000", 300_000
    settings = QUICK if args.quick else MODEL

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scaling-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        for vocab in (int(v) for v in args.vocab_sizes.split(",")):
            folder, teacher = corpus_for(vocab, args.tokens, data_dir, args.device)
            for objective in args.objectives.split(","):
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                config = LMConfig(train=str(folder / "train.txt"), valid=str(folder / "valid.txt"),
                                  test=str(folder / "test.txt"), objective=objective, noise_samples=args.noise,
                                  device=args.device, progress=False, **settings)
                try:
                    metrics = train_lm(config, Path(tmp) / f"run-{vocab}-{objective}")
                except torch.cuda.OutOfMemoryError:
                    print(f"V={vocab:,} {objective}: skipped, out of GPU memory", flush=True)
                    continue
                test = metrics["test"]
                row = dict(vocab=vocab, objective=objective, tokens_per_s=metrics["tokens_per_s"],
                           peak_gib=metrics["peak_memory_gib"], ppl=test["ppl"], floor=teacher["test_floor_ppl"],
                           mean_log_z=test["mean_log_z"], std_log_z=test["std_log_z"])
                rows.append(row)
                print(row, flush=True)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    lines = [f"{where}; model {settings}; k = {args.noise}; corpus {args.tokens:,} tokens per V", "",
             "| V | objective | tokens/s | peak GiB | test ppl | teacher floor | ppl / floor | mean log Z | std log Z |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['vocab']:,} | {r['objective']} | {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} | "
                     f"{r['ppl']:.1f} | {r['floor']:.1f} | {r['ppl'] / r['floor']:.3f} | {r['mean_log_z']:+.3f} | "
                     f"{r['std_log_z']:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        from nce_lm.fileio import write_text_atomic

        write_text_atomic(args.output, table + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
