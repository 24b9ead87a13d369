"""How the objectives scale with the vocabulary: synthetic corpora with a known floor, V = 10⁴ … 10⁶.

    python scripts/bench_scaling.py [--vocab-sizes 10000,100000,1000000] [--tokens 20000000]
        [--objectives full,nce,ranking] [--noise 1024] [--device cuda] [--data-dir data/synth]
        [--plot scaling.png] [--output FILE] [--quick]

For each V, ``nce_lm.pipeline.synth.write_corpus`` makes (or reuses, from ``--data-dir``) a corpus drawn from the
class-bigram teacher, and the same LSTM is trained on it with each objective for the same token budget.
The table gives training tokens/s, peak memory, exact test perplexity (full softmax), the teacher's floor,
and the mean and standard deviation of log Z(c) on the test text. ``--plot`` draws tokens/s and perplexity
against V (needs matplotlib, the ``plot`` extra). ``--quick`` is a CPU-sized run: V ∈ {1,000, 10,000},
300,000 tokens, a 1 × 64 LSTM; `--small-model` takes that LSTM at the V and tokens given. Every run trains at
the defaults (``adam-rowwise``: Adam for the LSTM, row-wise Adagrad for the tables).

``--step-timing`` times the training step alone, as the trainer runs it (``nce_lm.lm.train.build_trainer`` and
``train_step``, the run's default optimizer unless ``--optimizer`` says otherwise), on windows drawn from a
Zipf unigram whose vocabulary is exactly V: a 1 × 128 LSTM, batch 32 × 35, for each V and objective in a fresh
process (so that its peak memory is its own: resident memory on the CPU, allocated memory on CUDA), up to
``--steps`` steps or ``--max-seconds`` after two warm-up steps. It needs no corpus and no evaluation, so V =
10⁶ fits a 2-core machine: ``python scripts/bench_scaling.py --step-timing --vocab-sizes
10000,100000,1000000``. The objective ``adaptive`` is the same LSTM body with
``torch.nn.AdaptiveLogSoftmaxWithLoss`` and Adam (``bench_common.adaptive_softmax``): cutoffs where the
frequency-sorted vocabulary reaches 80 % and 95 % of the tokens (Grave et al. 2017), div_value 4, the head's bias
started at log unigram; trained on a corpus, it is bench_lm.py's ``train_adaptive``, one row per cutoff setting of
its ``ADAPTIVE_GRID``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from bench_common import adaptive_softmax, emit, markdown, parser
from bench_lm import ADAPTIVE_GRID, train_adaptive

from nce_lm.errors import NceLmError
from nce_lm.lm import LMConfig, train_lm
from nce_lm.pipeline.synth import TeacherConfig, write_corpus

MODEL = dict(model="lstm", dim=256, layers=1, dropout=0.0, batch_size=64, seq_len=35, epochs=1, is_samples=1024)
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


STEP_MODEL = dict(model="lstm", dim=128, layers=1, dropout=0.0, batch_size=32, seq_len=35)


def time_steps(
    vocab: int, objective: str, noise_samples: int, optimizer: str | None, device: str, steps: int, max_seconds: float
) -> dict:
    """Tokens/s of training steps at vocabulary size ``vocab`` and the memory they need (one process)."""
    import time

    import numpy as np

    from nce_lm.lm.train import build_trainer, peak_memory_gib, train_step
    from nce_lm.pipeline.noise import NoiseDistribution
    from nce_lm.training.distributed import DistributedContext

    torch.manual_seed(0)
    counts = 1e9 / np.arange(1, vocab + 1)  # Zipf: every id occurs
    settings = dict(STEP_MODEL, **({"optimizer": optimizer} if optimizer else {}))
    config = LMConfig(train="-", objective=objective, noise_samples=noise_samples, device=device, **settings).resolved(
        vocab
    )
    noise = NoiseDistribution(counts, config.noise_power, device=device)
    data = NoiseDistribution(counts, 1.0, device=device)
    ctx = DistributedContext()
    trainer = build_trainer(config, noise, ctx)
    state = trainer.model.initial_state(config.batch_size, noise.device)
    shape = (config.batch_size, config.seq_len + 1)
    done, started = -2, 0.0
    while done < steps and (done < 2 or time.perf_counter() - started < max_seconds):
        window = data.sample(shape)
        loss, _, state = train_step(
            trainer.trained,
            trainer.module,
            trainer.optimizer,
            window[:, :-1],
            window[:, 1:],
            state,
            config.clip,
            "fp32",
            ctx,
        )
        loss.item()  # the step is done
        done += 1
        if done == 0:
            started = time.perf_counter()
    seconds = time.perf_counter() - started
    table_bytes = sum(p.numel() * p.element_size() for p in trainer.model.tables().values())
    return dict(
        vocab=vocab,
        objective=objective,
        optimizer=config.optimizer,
        sparse=config.sparse_tables,
        steps=done,
        tokens_per_s=done * config.batch_size * config.seq_len / seconds,
        peak_gib=peak_memory_gib(noise.device),
        table_gib=table_bytes / 2**30,
    )


def time_adaptive_steps(vocab: int, device: str, steps: int, max_seconds: float) -> dict:
    """Tokens/s of training steps of the same LSTM body with torch's adaptive softmax (Adam, lr 3e-3, clip
    0.25 as the trainer's defaults), on the Zipf windows of :func:`time_steps`; the head's bias starts at
    log unigram (shortlist words) and log cluster mass (one logit per tail), as our output bias starts at log q."""
    import time

    import numpy as np
    from torch import nn

    from nce_lm.lm.train import peak_memory_gib
    from nce_lm.pipeline.noise import NoiseDistribution

    torch.manual_seed(0)
    counts = 1e9 / np.arange(1, vocab + 1)
    dim = STEP_MODEL["dim"]
    embedding = nn.Embedding(vocab, dim).to(device)
    lstm = nn.LSTM(dim, dim, STEP_MODEL["layers"], batch_first=True).to(device)
    head = adaptive_softmax(dim, counts).to(device)
    parameters = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    data = NoiseDistribution(counts, 1.0, device=device)
    shape = (STEP_MODEL["batch_size"], STEP_MODEL["seq_len"] + 1)
    state, done, started = None, -2, 0.0
    while done < steps and (done < 2 or time.perf_counter() - started < max_seconds):
        window = data.sample(shape)
        state = None if state is None else tuple(s.detach() for s in state)
        hidden, state = lstm(embedding(window[:, :-1]), state)
        loss = head(hidden.reshape(-1, dim), window[:, 1:].reshape(-1)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 0.25)
        optimizer.step()
        loss.item()
        done += 1
        if done == 0:
            started = time.perf_counter()
    seconds = time.perf_counter() - started
    table_bytes = sum(p.numel() * p.element_size() for p in [embedding.weight, *head.parameters()])
    return dict(
        vocab=vocab,
        objective="adaptive",
        optimizer=f"adam, cutoffs {head.cutoffs[:-1]}",
        sparse=False,
        steps=done,
        tokens_per_s=done * shape[0] * STEP_MODEL["seq_len"] / seconds,
        peak_gib=peak_memory_gib(torch.device(device)),
        table_gib=table_bytes / 2**30,
    )


def _time_in_child(queue, vocab, objective, noise, optimizer, device, steps, max_seconds) -> None:
    if objective == "adaptive":
        queue.put(time_adaptive_steps(vocab, device, steps, max_seconds))
    else:
        queue.put(time_steps(vocab, objective, noise, optimizer, device, steps, max_seconds))


def step_timing(args: argparse.Namespace) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    rows = []
    for vocab in (int(v) for v in args.vocab_sizes.split(",")):
        for objective in args.objectives.split(","):
            queue = context.Queue()
            child = context.Process(
                target=_time_in_child,
                args=(queue, vocab, objective, args.noise, args.optimizer, args.device, args.steps, args.max_seconds),
            )
            child.start()
            row = queue.get()
            child.join()
            rows.append(row)
            print(row, flush=True)
    base = {r["objective"]: r["tokens_per_s"] for r in rows if r["vocab"] == rows[0]["vocab"]}
    full = {r["vocab"]: r["tokens_per_s"] for r in rows if r["objective"] == "full"}
    cells = []
    for r in rows:
        own = r["tokens_per_s"] / base[r["objective"]]
        versus_full = f"{r['tokens_per_s'] / full[r['vocab']]:.1f}" if r["vocab"] in full else "–"
        cells.append(
            f"{r['vocab']:,} | {r['objective']} | {r['optimizer']} | {'yes' if r['sparse'] else 'no'} | "
            f"{r['steps']} | {r['tokens_per_s']:,.0f} | {own:.2f} | {versus_full} | {r['peak_gib']:.2f} | "
            f"{r['table_gib']:.2f}"
        )
    header = (
        f"V | objective | optimizer | sparse tables | steps | tokens/s | × own at V = {rows[0]['vocab']:,} | "
        "× full at this V | peak GiB | tables GiB"
    )
    settings = f"model {STEP_MODEL}; k = {args.noise}; optimizer {args.optimizer or 'default'}"
    emit([settings, "", *markdown(header, cells)], args.output, args.device)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--vocab-sizes", default="10000,100000,1000000")
    options.add_argument("--tokens", type=int, default=20_000_000, help="corpus size per V (train is 90 %%)")
    options.add_argument("--objectives", default="full,nce,ranking")
    options.add_argument("--noise", type=int, default=1024, help="k for nce and ranking")
    options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options.add_argument("--data-dir", help="keep the corpora here for later runs (default: a temporary folder)")
    options.add_argument("--plot", help="write a PNG of tokens/s and perplexity against V")
    options.add_argument("--quick", action="store_true", help="a CPU-sized run")
    options.add_argument("--small-model", action="store_true", help="--quick's 1 x 64 LSTM, at the V and tokens given")
    options.add_argument(
        "--step-timing", action="store_true", help="time training steps alone (no corpus, no evaluation)"
    )
    options.add_argument("--optimizer", help="the optimizer of every run (default: the trainer's)")
    options.add_argument("--table-lr", type=float, help="adam-rowwise: the tables' starting rate (LMConfig.table_lr)")
    options.add_argument("--seed", type=int, help="the seed of every corpus run (default: LMConfig's)")
    options.add_argument("--noise-power", type=float, help="α of the noise q ∝ count^α (default: the trainer's)")
    options.add_argument("--steps", type=int, default=200, help="--step-timing: timed steps at most")
    options.add_argument("--max-seconds", type=float, default=60.0, help="--step-timing: time per run at most")
    args = options.parse_args()
    if args.step_timing:
        step_timing(args)
        return
    if args.quick:
        args.vocab_sizes, args.tokens = "1000,10000", 300_000
    settings = QUICK if (args.quick or args.small_model) else MODEL

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scaling-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        for vocab in (int(v) for v in args.vocab_sizes.split(",")):
            folder, teacher = corpus_for(vocab, args.tokens, data_dir, args.device)
            runs = [(o, m) for o in args.objectives.split(",") for m in (ADAPTIVE_GRID if o == "adaptive" else [None])]
            for objective, mass in runs:
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                config = LMConfig(
                    train=str(folder / "train.txt"),
                    valid=str(folder / "valid.txt"),
                    test=str(folder / "test.txt"),
                    objective="full" if objective == "adaptive" else objective,
                    noise_samples=min(args.noise, vocab // 2),  # k <= V: --quick's V = 1,000 < default k
                    device=args.device,
                    progress=False,
                    **settings,
                    **({"optimizer": args.optimizer} if args.optimizer else {}),
                    **({"table_lr": args.table_lr} if args.table_lr is not None else {}),
                    **({"seed": args.seed} if args.seed is not None else {}),
                    **({"noise_power": args.noise_power} if args.noise_power is not None else {}),
                )
                try:
                    if objective == "adaptive":
                        metrics = train_adaptive(config, mass, Path(tmp) / f"run-{vocab}-adaptive-{mass}")
                    else:
                        metrics = train_lm(config, Path(tmp) / f"run-{vocab}-{objective}")
                except torch.cuda.OutOfMemoryError:
                    print(f"V={vocab:,} {objective}: skipped, out of GPU memory", flush=True)
                    continue
                test = metrics["test"]
                row = dict(
                    vocab=metrics["vocab_size"],
                    objective=f"adaptive {metrics['cutoffs']}" if objective == "adaptive" else objective,
                    optimizer=metrics["config"]["optimizer"],
                    tokens_per_s=metrics["tokens_per_s"],
                    peak_gib=metrics["peak_memory_gib"],
                    ppl=test["ppl"],
                    floor=teacher["test_floor_ppl"],
                    mean_log_z=test["mean_log_z"],
                    std_log_z=test["std_log_z"],
                )
                rows.append(row)
                print(row, flush=True)
    header = (
        "V (seen in training) | objective | optimizer | tokens/s | peak GiB | test ppl | teacher floor | "
        "ppl / floor | mean log Z | std log Z"
    )
    cells = [
        f"{r['vocab']:,} | {r['objective']} | {r['optimizer']} | {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} | "
        f"{r['ppl']:.1f} | {r['floor']:.1f} | {r['ppl'] / r['floor']:.3f} | {r['mean_log_z']:+.3f} | "
        f"{r['std_log_z']:.3f}"
        for r in rows
    ]
    run = f"model {settings}; k = {args.noise} (at most V/2); optimizer {args.optimizer or 'default'}"
    run += f", tables {args.table_lr:g}" if args.table_lr is not None else ""
    run += f"; seed {args.seed}" if args.seed is not None else ""
    run += f"; noise power {args.noise_power:g}" if args.noise_power is not None else ""
    run += f"; corpus {args.tokens:,} tokens per V"
    emit([run, "", *markdown(header, cells)], args.output, args.device)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
