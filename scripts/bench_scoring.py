"""Scoring sentences with a trained language model: exact softmax against self-normalized scores.

    python scripts/bench_scoring.py [--vocab-sizes 10000,100000,1000000] [--sentences 200] [--datasets ptb,synth]
        [--max-tokens 1000000] [--device cpu|cuda] [--quick] [--output FILE]

Speed: tokens/s of :meth:`nce_lm.lm.language_model.LanguageModel.log_probs` with ``normalize="exact"`` (log Z over
all V words: O(V d) per token) and ``normalize="self"`` (the score h · u + b alone: O(d) per token) for one body,
the trainer's default 2 × 200 LSTM, with random weights at each V (speed does not depend on the values), on
``--sentences`` random sentences of 21 words (PTB's mean line); best of ``--repeats`` timings after a warm-up.

Gap: an nce model trained for ``--max-tokens`` tokens (the 2 × 200 LSTM, dropout 0, every other setting the
trainer's default, as in bench_lm.py's cpu config) on PTB and on a synthetic corpus (``nce-lm synth``, V =
10,000, 1.2 M tokens); each line of the test split scored as a sentence, exactly and self-normalized: the two
perplexities, their relative difference, and the mean ± std of log Z(c) from ``lm eval`` on the same text.
``--quick``: V ∈ {1,000, 10,000}, 20 sentences, the synthetic corpus only, small (a check that it runs).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import emit, markdown, parser

from nce_lm.lm import LMConfig, evaluate_lm, train_lm
from nce_lm.lm.data import split_paths
from nce_lm.lm.language_model import LanguageModel
from nce_lm.lm.model import build_model
from nce_lm.pipeline.synth import TeacherConfig, write_corpus
from nce_lm.pipeline.vocab import Vocab

BODY = dict(model="lstm", dim=200, layers=2, dropout=0.0)  # the trainer's default LSTM, dropout off
WORDS_PER_SENTENCE = 21


def random_model(vocab_size: int, device: str) -> LanguageModel:
    """A LanguageModel of the default body with random weights over a vocabulary of ``vocab_size`` words."""
    tokens = ["<unk>", "<eos>", *(f"w{i}" for i in range(vocab_size - 2))]
    vocab = Vocab(tokens, np.ones(vocab_size, dtype=np.int64))
    config = LMConfig(train="-", device=device, **BODY).resolved(vocab_size)
    torch.manual_seed(0)
    network = build_model(config, vocab_size, torch.full((vocab_size,), -float(np.log(vocab_size))))
    return LanguageModel(network.to(device), vocab, config)


def tokens_per_second(model: LanguageModel, sentences: list[list[str]], normalize: str, repeats: int) -> float:
    """Best rate of ``repeats`` timings of scoring ``sentences`` (``<eos>`` counted), after one warm-up."""
    model.log_probs(sentences[:4], normalize)
    tokens = sum(len(s) + 1 for s in sentences)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.log_probs(sentences, normalize)  # returns CPU tensors: the device has finished
        best = min(best, time.perf_counter() - started)
    return tokens / best


def speed_rows(sizes: list[int], count: int, repeats: int, device: str) -> list[str]:
    rows = []
    for size in sizes:
        model = random_model(size, device)
        rng = np.random.default_rng(1)
        sentences = [[f"w{i}" for i in rng.integers(0, size - 2, WORDS_PER_SENTENCE)] for _ in range(count)]
        exact = tokens_per_second(model, sentences, "exact", repeats)
        own = tokens_per_second(model, sentences, "self", repeats)
        rows.append(f"{size:,} | {exact:,.0f} | {own:,.0f} | {own / exact:.1f}×")
        print(f"| {rows[-1]} |", flush=True)
        del model
    return rows


def gap_row(name: str, data: str, folder: Path, max_tokens: int, device: str) -> str:
    """Train an nce model on ``data`` and compare exact and self-normalized perplexity on its test split."""
    config = LMConfig(train=data, device=device, max_tokens=max_tokens, progress=False, **BODY)
    run = folder / f"run-{name}"
    train_lm(config, run)
    test = split_paths(config)["test"]
    sentences = [line for line in test.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = LanguageModel.load(run, device=device)
    exact, own = model.perplexity(sentences, "exact"), model.perplexity(sentences, "self")
    evaluation = evaluate_lm(run, test, device=device)
    tokens = sum(len(model.tokenize(s)) + 1 for s in sentences)
    return (
        f"{name} | {len(model.vocab):,} | {max_tokens:,} | {tokens:,} | {exact:.2f} | {own:.2f} | "
        f"{100 * (own - exact) / exact:+.2f} % | {evaluation['mean_log_z']:+.3f} ± {evaluation['std_log_z']:.3f}"
    )


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--vocab-sizes", default="10000,100000,1000000")
    options.add_argument("--sentences", type=int, default=200)
    options.add_argument("--repeats", type=int, default=3)
    options.add_argument("--datasets", default="ptb,synth", help="ptb, synth, or both")
    options.add_argument("--max-tokens", type=int, default=1_000_000, help="training tokens of each nce model")
    options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options.add_argument("--quick", action="store_true", help="a small run that checks the script works")
    args = options.parse_args()
    sizes = [int(v) for v in args.vocab_sizes.split(",")]
    datasets, synth_tokens, synth_vocab = args.datasets.split(","), 1_200_000, 10_000
    if args.quick:
        sizes, args.sentences, args.repeats, args.max_tokens = [1_000, 10_000], 20, 1, 2_000
        datasets, synth_tokens, synth_vocab = ["synth"], 20_000, 500

    speed_header = "V | exact tokens/s | self-normalized tokens/s | speed-up"
    print(f"| {speed_header} |", flush=True)
    speed = speed_rows(sizes, args.sentences, args.repeats, args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scoring-") as tmp:
        folder = Path(tmp)
        for name in datasets:
            data = name
            if name == "synth":
                write_corpus(folder / "synth", synth_tokens, TeacherConfig(vocab=synth_vocab))
                data = str(folder / "synth")
            rows.append(gap_row(name, data, folder, args.max_tokens, args.device))
            print(f"| {rows[-1]} |", flush=True)
    header = "data | V | training tokens | test tokens | exact ppl | self-normalized ppl | difference | log Z"
    out = [f"body {BODY}; {args.sentences} sentences of {WORDS_PER_SENTENCE} words; device {args.device}", ""]
    out += [*markdown(speed_header, speed), "", *markdown(header, rows)]
    emit(out, args.output, args.device)


if __name__ == "__main__":
    main()
