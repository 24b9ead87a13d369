"""The same language model and budget trained with full, nce, ranking, neg and adaptive; one table per dataset.

    python scripts/bench_lm.py [--config cpu|small|full] [--datasets ptb,wikitext-2] [--noise 64,256,1024]
        [--objectives full,nce,ranking,adaptive] [--device cpu|cuda] [--max-tokens N] [--output FILE]
        [--optimizer NAME] [--table-lr RATE] [--seed N] [--noise-power ALPHA]

Datasets are found through the registry ($NCE_LM_DATA, then data/). Every model is evaluated exactly (full
softmax) on the validation and test text; the table gives exact perplexities, the mean and standard
deviation of log Z(c) on the test text, the self-normalized perplexity (exp(score) taken as a probability),
training tokens/s and peak memory (CUDA: max allocated; CPU: the process's peak RSS, which only grows).

``--config cpu`` (the default; 2 CPU cores): the 2 × 200 LSTM, dropout 0, 1,000,000 training tokens, every
other setting at the trainer's defaults — what ``nce-lm lm train --data D --objective O --dropout 0
--max-tokens 1000000`` gives a user — on the full validation and test sets; the table adds the seconds the
exact test evaluation took. ``--noise``, ``--optimizer``, ``--table-lr``, ``--seed`` and ``--noise-power`` override
the defaults.
``--config small``: a 1 × 128 LSTM, Adam, 200,000 training tokens, evaluation on the first ``--eval-lines`` lines
of validation and test (all of them for PTB). ``--config full`` (a GPU): Zaremba et al.'s medium model, 2 × 650,
dropout 0.5, 40 epochs, full splits, each objective at its defaults

``adaptive`` is the peer a PyTorch user reaches for: the same body (``build_model``, seeded alike) with
``torch.nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017) as its output layer, trained by the trainer's step
(``train_step``: same windows, clipping and learning rate) with our optimizer rule (``adam-rowwise``: Adam for the body
and the tails' projections, row-wise Adagrad for its per-word tables; ``--optimizer adam``: dense Adam for all),
validated after every pass and at the
budget's end (the learning rate divided by ``lr_decay`` after a pass that did not improve), the best model tested.
One row per cutoff setting of :data:`ADAPTIVE_GRID` (``bench_common.adaptive_softmax``: the head holds the most
frequent words up to the first share of the training tokens, each tail the words up to the next; the head's bias at
log unigram), so that validation can choose. It is evaluated by ``evaluate_model`` like every other row, its
``log_prob`` giving the normalized log-probabilities of every word (log Z is therefore 0); its tokens/s are the
training tokens over the training seconds.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_common import adaptive_softmax, emit, markdown, parser

from nce_lm.lm import LMConfig, train_lm
from nce_lm.lm.batches import batchify, windows
from nce_lm.lm.data import split_ids
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import build_model
from nce_lm.lm.optim import LMOptimizer, dense_parameters
from nce_lm.lm.train import TrainingModule, peak_memory_gib, train_step
from nce_lm.objectives.losses import objective_class
from nce_lm.pipeline.datasets import dataset_path
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.training.devices import resolve_precision
from nce_lm.training.distributed import DistributedContext

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
ADAPTIVE_GRID = ((0.8, 0.95), (0.9, 0.98), (0.95, 0.99))  # shares of the tokens where the head and tails end
HEADER = (
    "objective | k (α) | optimizer | valid ppl | test ppl | × full | mean log Z | std log Z | self-norm. ppl | "
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


class AdaptiveOutput(torch.nn.Module):
    """torch's adaptive softmax where :class:`TrainingModule` puts an objective: hidden (B·T, d), targets (B·T,) →
    −log p(target) (B·T,); the body's own output weight and bias are left unused (no gradient, no update)."""

    needs_noise = False

    def __init__(self, head: torch.nn.AdaptiveLogSoftmaxWithLoss) -> None:
        super().__init__()
        self.head = head

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        targets: torch.Tensor,
        noise_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return -self.head(hidden, targets).output


def adaptive_tables(model: torch.nn.Module, head: torch.nn.AdaptiveLogSoftmaxWithLoss) -> dict[str, torch.Tensor]:
    """The per-word tables of a body with an adaptive softmax, what ``adam-rowwise`` trains row-wise as it does our
    input embedding, output weight and bias: the input embedding (V, d), the head's rows and bias (one per
    shortlist word and per tail) and each tail's output rows (one per word of the tail)."""
    tables = {"embedding.weight": model.embedding.weight, "head.weight": head.head.weight, "head.bias": head.head.bias}
    return tables | {f"tail{i}.weight": tail[1].weight for i, tail in enumerate(head.tail)}


def train_adaptive(config: LMConfig, mass: tuple[float, ...], folder: Path) -> dict[str, Any]:
    """Train and evaluate the adaptive softmax of the module docstring, cutoffs at the shares ``mass``, on the
    splits of ``config`` (its ``objective`` "full", ``train`` a file) with our rule, ``adam-rowwise`` (the
    default: Adam for the body and the tails' projections, row-wise Adagrad for :func:`adaptive_tables`), or with
    dense Adam (``optimizer`` "adam"); metrics shaped like :func:`train_lm`'s, with the ``cutoffs``."""
    paths = {split: Path(getattr(config, split)) for split in ("train", "valid", "test")}
    vocab = build_vocab([paths["train"]])
    ids = split_ids(paths, vocab, folder, None, "strict", False)
    ctx = DistributedContext()
    device = ctx.device(config.device)
    rule = "adam" if config.optimizer == "adam" else "adam-rowwise"
    config = config.with_changes(optimizer=rule).resolved(len(vocab))
    torch.manual_seed(config.seed)
    model = build_model(config, len(vocab), NoiseDistribution(vocab.counts, 1.0).log_probs)  # bias unused
    head = adaptive_softmax(config.dim, vocab.counts, mass)
    module = TrainingModule(model, AdaptiveOutput(head)).to(device)
    tables = adaptive_tables(model, head) if rule == "adam-rowwise" else {}
    dense = dense_parameters(module, tables)
    optimizer = LMOptimizer(rule, dense, tables, config.learning_rate, False, config.table_lr)
    streams = batchify(ids["train"], config.batch_size).to(device)
    precision = resolve_precision(config.precision, device)

    def evaluate(split: str) -> dict[str, Any]:
        return evaluate_model(model, ids[split], config.eval_batch_size, config.seq_len, log_probs=head.log_prob)

    tokens, seconds, history, best, epoch_best = 0, 0.0, [], None, float("inf")
    for _ in range(config.epochs):
        state, started = model.initial_state(config.batch_size, device), time.perf_counter()
        for _, inputs, targets in windows(streams, config.seq_len):
            _, _, state = train_step(module, module, optimizer, inputs, targets, state, config.clip, precision, ctx)
            tokens += targets.numel()
            if config.max_tokens is not None and tokens >= config.max_tokens:
                break
        seconds += time.perf_counter() - started
        history.append({"valid": evaluate("valid")})
        valid = history[-1]["valid"]["ppl"]
        if best is None or valid < best[0]:
            best = (valid, copy.deepcopy(module.state_dict()))
        if config.max_tokens is not None and tokens >= config.max_tokens:
            break
        if valid >= epoch_best:
            optimizer.set_lr(optimizer.lr / config.lr_decay)
        epoch_best = min(epoch_best, valid)
    module.load_state_dict(best[1])
    started = time.perf_counter()
    test = {**evaluate("test"), "seconds": time.perf_counter() - started}
    return {
        "config": config.to_dict(),
        "history": history,
        "test": test,
        "tokens_per_s": tokens / seconds,
        "peak_memory_gib": peak_memory_gib(device),
        "cutoffs": head.cutoffs[:-1],
        "vocab_size": len(vocab),
    }


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--config", choices=tuple(CONFIGS), default="cpu")
    options.add_argument("--datasets", default="ptb,wikitext-2")
    options.add_argument("--objectives", default="full,nce,ranking")
    options.add_argument("--noise", help="values of k for the sampled objectives (default: the trainer's)")
    options.add_argument("--optimizer", help="the optimizer of every run (default: the trainer's)")
    options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options.add_argument(
        "--eval-lines",
        type=int,
        default=800,
        help="small config, WikiText-2: evaluate on this many lines of valid and test",
    )
    options.add_argument("--max-tokens", type=int, help="override the configuration's training budget")
    options.add_argument("--table-lr", type=float, help="adam-rowwise: the tables' starting rate (LMConfig.table_lr)")
    options.add_argument("--seed", type=int, help="the seed of every run (default: LMConfig's)")
    options.add_argument("--noise-power", type=float, help="α of the noise q ∝ count^α (default: the trainer's)")
    args = options.parse_args()

    settings = dict(CONFIGS[args.config])
    if args.max_tokens:
        settings["max_tokens"] = args.max_tokens
    ks = [int(k) for k in args.noise.split(",")] if args.noise else [None]
    if args.optimizer:
        settings["optimizer"] = args.optimizer
    if args.table_lr is not None:
        settings["table_lr"] = args.table_lr
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.noise_power is not None:
        settings["noise_power"] = args.noise_power
    out = [f"config {args.config}: {settings}; device {args.device}"]
    with tempfile.TemporaryDirectory(prefix="bench_lm-") as tmp:
        folder = Path(tmp)
        for dataset in args.datasets.split(","):
            lines = args.eval_lines if (args.config == "small" and dataset != "ptb") else None
            valid = head(dataset_path(dataset, "valid"), lines, folder)
            test = head(dataset_path(dataset, "test"), lines, folder)
            rows = []
            runs = [
                (o, k)
                for o in args.objectives.split(",")
                for k in (ADAPTIVE_GRID if o == "adaptive" else ks if objective_class(o).needs_noise else [None])
            ]
            full_ppl = None
            for objective, k in runs:
                config = LMConfig(
                    train=str(dataset_path(dataset, "train")),
                    valid=str(valid),
                    test=str(test),
                    objective="full" if objective == "adaptive" else objective,
                    noise_samples=None if objective == "adaptive" else k,
                    device=args.device,
                    progress=False,
                    **settings,
                )
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                if objective == "adaptive":
                    metrics = train_adaptive(config, k, folder / f"{dataset}-adaptive-{k}")
                else:
                    metrics = train_lm(config, folder / f"{dataset}-{objective}-{k}")
                test_m, valid_m, used = metrics["test"], metrics["history"][-1]["valid"], metrics["config"]
                if objective == "full":  # the reference
                    full_ppl = test_m["ppl"]
                ratio = f"{test_m['ppl'] / full_ppl:.3f}" if full_ppl else "–"
                draws = objective_class(config.objective).needs_noise
                k_used = f"{used['noise_samples']} ({used['noise_power']:g})" if draws else "–"
                name = f"adaptive {metrics['cutoffs']}" if objective == "adaptive" else objective
                tables = f", tables {used['table_lr']:g}" if used.get("table_lr") is not None else ""
                rows.append(
                    f"{name} | {k_used} | {used['optimizer']} (lr {used['lr']:g}{tables}) | {valid_m['ppl']:.1f} | "
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
