"""The same language model and budget trained with full, nce, ranking and neg; one table per dataset.

    python scripts/bench_lm.py [--config cpu|small|full] [--datasets ptb,wikitext-2] [--noise 64,256,1024]
        [--objectives full,nce,ranking] [--device cpu|cuda] [--max-tokens N] [--output FILE]

Datasets are found through the registry ($NCE_LM_DATA, then data/). Every model is evaluated exactly (full
softmax) on the validation and test text; the table gives exact perplexities, the mean and standard
deviation of log Z(c) on the test text, the self-normalized perplexity (exp(score) taken as a probability),
training tokens/s and peak memory (CUDA: max allocated; CPU: the process's peak RSS, which only grows).

``--config cpu`` (the default; 2 CPU cores): the 2 × 200 LSTM, dropout 0, 1,000,000 training tokens, every
other setting at the trainer's defaults — what ``nce-lm lm train --data D --objective O --dropout 0
--max-tokens 1000000`` gives a user — on the full validation and test sets; the table adds the seconds the
exact test evaluation took. ``--noise`` and ``--optimizer`` override the defaults. ``--config small``: a 1 × 128
LSTM, Adam, 200,000 training tokens,
evaluation on the first ``--eval-lines`` lines of validation and test (all of them for PTB). ``--config full``
(a GPU): Zaremba et al.'s medium model, 2 × 650, dropout 0.5, 40 epochs, full splits, each objective at its defaults
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from bench_common import emit, markdown, parser

from nce_lm.lm import LMConfig, train_lm
from nce_lm.objectives.losses import objective_class
from nce_lm.pipeline.datasets import dataset_path

CONFIGS = {
    "cpu": dict(model="lstm", dim=200, layers=2, dropout=0.0, max_tokens=1_000_000),
    "small": dict(
        model="lstm",
        dim=128,
        layers=1,
        dropout=0.1,
        optimizer="adam",
        lr=2e-3,
        batch_size=32,
        seq_len=35,
        epochs=1,
        max_tokens=200_000,
        is_samples=256,
    ),
    "full": dict(
        model="lstm",
        dim=650,
        layers=2,
        dropout=0.5,
        batch_size=20,
        seq_len=35,
        epochs=40,
        max_tokens=None,
        is_samples=1024,
    ),
}
HEADER = (
    "objective | k | optimizer | valid ppl | test ppl | × full | mean log Z | std log Z | self-norm. ppl | "
    "tokens/s | test eval s | peak GiB"
)


def head(path: Path, lines: int | None, folder: Path) -> Path:
    """The first ``lines`` lines of a split (the file itself when None)."""
    if lines is None:
        return path
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as source:
        text = [line for _, line in zip(range(lines), source)]
    target = folder / f"{path.name}.head{lines}"
    target.write_text("".join(text), encoding="utf-8")
    return target


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--config", choices=tuple(CONFIGS), default="cpu")
    options.add_argument("--datasets", default="ptb,wikitext-2")
    options.add_argument("--objectives", default="full,nce,ranking")
    options.add_argument("--noise", help="values of k for the sampled objectives (default: the trainer's)")
    options.add_argument("--optimizer", help="the optimizer of every run (default: the trainer's, by objective)")
    options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options.add_argument(
        "--eval-lines",
        type=int,
        default=800,
        help="small config, WikiText-2: evaluate on this many lines of valid and test",
    )
    options.add_argument("--max-tokens", type=int, help="override the configuration's training budget")
    args = options.parse_args()

    settings = dict(CONFIGS[args.config])
    if args.max_tokens:
        settings["max_tokens"] = args.max_tokens
    ks = [int(k) for k in args.noise.split(",")] if args.noise else [None]
    if args.optimizer:
        settings["optimizer"] = args.optimizer
    out = [f"config {args.config}: {settings}; device {args.device}"]
    with tempfile.TemporaryDirectory(prefix="bench_lm-") as tmp:
        folder = Path(tmp)
        for dataset in args.datasets.split(","):
            lines = args.eval_lines if (args.config == "small" and dataset != "ptb") else None
            valid = head(dataset_path(dataset, "valid"), lines, folder)
            test = head(dataset_path(dataset, "test"), lines, folder)
            rows = []
            runs = [
                (o, k) for o in args.objectives.split(",") for k in (ks if objective_class(o).needs_noise else [None])
            ]
            full_ppl = None
            for objective, k in runs:
                config = LMConfig(
                    train=str(dataset_path(dataset, "train")),
                    valid=str(valid),
                    test=str(test),
                    objective=objective,
                    noise_samples=k,
                    device=args.device,
                    progress=False,
                    **settings,
                )
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                metrics = train_lm(config, folder / f"{dataset}-{objective}-{k}")
                test_m, valid_m, used = metrics["test"], metrics["history"][-1]["valid"], metrics["config"]
                if not objective_class(objective).needs_noise:  # the full softmax: the reference
                    full_ppl = test_m["ppl"]
                ratio = f"{test_m['ppl'] / full_ppl:.3f}" if full_ppl else "–"
                k_used = used["noise_samples"] if objective_class(objective).needs_noise else "–"
                rows.append(
                    f"{objective} | {k_used} | {used['optimizer']} (lr {used['lr']:g}) | {valid_m['ppl']:.1f} | "
                    f"{test_m['ppl']:.1f} | {ratio} | {test_m['mean_log_z']:+.3f} | {test_m['std_log_z']:.3f} | "
                    f"{test_m['self_normalized_ppl']:.1f} | {metrics['tokens_per_s']:,.0f} | "
                    f"{test_m['seconds']:.1f} | {metrics['peak_memory_gib']:.2f}"
                )
                print(f"| {rows[-1]} |", flush=True)
            subset = f" (valid/test: first {lines} lines)" if lines else ""
            out += ["", f"### {dataset}{subset}", "", *markdown(HEADER, rows)]
    emit(out, args.output, args.device)


if __name__ == "__main__":
    main()
