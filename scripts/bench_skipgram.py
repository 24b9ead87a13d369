"""gensim's skip-gram (or CBOW) and ours, same corpus, same settings, same threads, one table.

    python scripts/bench_skipgram.py CORPUS [--model skipgram|cbow] [--threads 2] [--epochs 5] [--sample 1e-4]
        [--objectives neg,nce] [--kernels auto] [--noise-per pair,window] [--repeats 1] [--gensim-threads N,...]
        [--device cpu|cuda]
        [--batch-size 1024] [--optimizer sgd|rowwise-adagrad] [--lr RATE] [--min-lr 0.0001] [--restrict-vocab 30000]
        [--output FILE]

gensim runs ``Word2Vec(corpus_file=..., sg=1, hs=0, negative=5, vector_size=100, window=5, min_count=5,
sample=..., workers=threads)`` (the settings of ../shared/docs/ANCHORS.md), ours ``train_skipgram`` with the
same values. ``--model cbow`` trains CBOW in both: gensim ``sg=0, cbow_mean=1`` (the mean of the window), ours
``model="cbow"``, everything else as above. The starting learning rate is ours in both (gensim's ``alpha``): 0.025 for
skip-gram, 0.05 for CBOW (word2vec's default, twice gensim's), or ``--lr``. Throughput
is corpus words × epochs / wall seconds of training, vocabulary building excluded for both. Both sets of vectors
are scored by nce_lm's evaluators (which agree with gensim's own, see
tests/test_evaluation.py): Google analogies (3CosAdd, the 30,000 most frequent words as in ANCHORS.md), and
Spearman ρ on WS-353 and SimLex-999 (gensim's bundled copies) and MEN (``$NCE_LM_DATA/eval/MEN``, when present).
With ``--device cuda`` ours runs on the GPU and gensim on all CPU cores of the machine; a GPU wants batches of
tens of thousands of pairs, which need ``--optimizer rowwise-adagrad`` (SGD diverges there, docs/skipgram.md).

``--repeats N`` trains every row N times, the rows taking turns (gensim, ours, ..., gensim, ours, ...), round
r with seed ``--seed`` + r for every tool. It reports the median words/s with the range, the median over the
rounds of each row's speed divided by gensim's in the same round (on a shared machine whose speed changes
from minute to minute, that ratio of neighbouring runs is steadier than either speed), and every quality
figure as its mean over the rounds ± the standard deviation of one round: on PTB one seed moves WS-353 by ±0.02.

``--gensim-threads 2,1`` adds gensim rows with other worker counts (the first is the reference of "vs
gensim"). With ``corpus_file``, gensim's learning rate decays more slowly with more workers: each worker
measures its progress through an epoch as its own sentences over all of the corpus's
(``get_next_alpha`` in gensim 4.4's ``word2vec_corpusfile.pyx``), so with two workers the rate falls within
each epoch only half as far as the nominal schedule says; one worker follows the nominal schedule, as
nce_lm does, and so do any number of workers reading ``--gensim-input iterable`` (gensim's job producer
computes the rate from the progress of all workers; slower to read than corpus_file). ``--kernels
fused,device,torch`` adds a row per update
path of ours (``auto``: the fused kernel where it applies on the CPU, the device update on CUDA). ``--noise-per
pair,window`` adds a row per way of drawing skip-gram's noise words: k per (context, centre) pair, as word2vec
and gensim do, or k per window, shared by its pairs (docs/skipgram.md); CBOW draws per window anyway.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from bench_common import emit, markdown, parser

from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram
from nce_lm.vectors.evaluation import default_evaluation_files, evaluate_all
from nce_lm.vectors.word_vectors import WordVectors

MEN_FILE = Path("eval") / "MEN" / "MEN_dataset_natural_form_full"


def plain_copy(corpus: Path, folder: str) -> Path:
    """gensim's corpus_file needs an uncompressed file: decompress a .gz into ``folder``."""
    if corpus.suffix != ".gz":
        return corpus
    target = Path(folder) / corpus.stem
    with gzip.open(corpus, "rb") as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return target


def run_gensim(corpus: Path, args: argparse.Namespace, workers: int, seed: int) -> tuple[WordVectors, float, int]:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    model = Word2Vec(
        sg=int(args.model == "skipgram"),
        cbow_mean=1,
        hs=0,
        negative=args.negatives,
        vector_size=args.dim,
        window=args.window,
        min_count=args.min_count,
        sample=args.sample,
        workers=workers,
        seed=seed,
        # the same starting rate as ours (CBOW: word2vec's 0.05, not gensim's 0.025), and the same final one
        alpha=SkipGramConfig(
            model=args.model, optimizer="sgd", lr=args.lr if args.optimizer == "sgd" else None
        ).start_lr(),
        min_alpha=args.min_lr,
    )
    # corpus_file (gensim's fastest input) or an iterable of sentences, whose rate follows the nominal schedule
    source = {"corpus_file": str(corpus)} if args.gensim_input == "file" else {"corpus_iterable": LineSentence(corpus)}
    model.build_vocab(**source)
    started = time.perf_counter()
    model.train(**source, total_words=model.corpus_total_words, total_examples=model.corpus_count, epochs=args.epochs)
    wall = time.perf_counter() - started
    keyed = model.wv
    vectors = WordVectors(list(keyed.index_to_key), keyed.vectors)
    return vectors, model.corpus_total_words * args.epochs / wall, len(keyed)


def scores(vectors: WordVectors, similarity_files: list[Path], restrict_vocab: int) -> dict[str, float]:
    analogy_files, _ = default_evaluation_files()
    metrics = evaluate_all(vectors, analogy_files, similarity_files, restrict_vocab)
    return {"analogy": metrics["analogy"], **{p.name: metrics[p.name] for p in similarity_files}}


def speed_cell(speeds: list[float]) -> str:
    """The median words/s, with the range when there are several runs."""
    median = statistics.median(speeds)
    return f"{median:,.0f}" if len(speeds) == 1 else f"{median:,.0f} ({min(speeds):,.0f}–{max(speeds):,.0f})"


def quality_cell(values: list[float]) -> str:
    """The mean of a figure over the rounds, with the standard deviation of one round when there are several."""
    mean = statistics.mean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    options = parser(__doc__)
    options.add_argument("corpus", type=Path)
    options.add_argument("--model", choices=("skipgram", "cbow"), default="skipgram")
    options.add_argument("--threads", type=int, default=2)
    options.add_argument("--epochs", type=int, default=5)
    options.add_argument("--sample", type=float, default=1e-4)
    options.add_argument("--dim", type=int, default=100)
    options.add_argument("--window", type=int, default=5)
    options.add_argument("--negatives", type=int, default=5)
    options.add_argument("--min-count", type=int, default=5)
    options.add_argument("--batch-size", type=int, default=SkipGramConfig.batch_size)
    options.add_argument("--optimizer", default=SkipGramConfig.optimizer)
    options.add_argument("--lr", type=float, default=None, help="default: the optimizer's")
    options.add_argument(
        "--min-lr", type=float, default=SkipGramConfig.min_lr, help="SGD's final rate, ours and gensim's min_alpha"
    )
    options.add_argument("--seed", type=int, default=1)
    options.add_argument("--objectives", default="neg,nce")
    options.add_argument("--kernels", default="auto", help="comma-separated: auto, fused, device, torch")
    options.add_argument(
        "--noise-per",
        default=SkipGramConfig.noise_per,
        help="skip-gram, comma-separated: pair (k noise words per pair), window (k per window, shared by its pairs)",
    )
    options.add_argument("--repeats", type=int, default=1, help="rounds, each with its own seed")
    options.add_argument(
        "--gensim-input",
        choices=("file", "iterable"),
        default="file",
        help="gensim reads corpus_file (default) or an iterable of sentences (LineSentence)",
    )
    options.add_argument("--gensim-threads", help="gensim worker counts, comma-separated (default: --threads)")
    options.add_argument("--device", default="cpu")
    options.add_argument("--restrict-vocab", type=int, default=30_000)
    options.add_argument("--skip-gensim", action="store_true")
    args = options.parse_args()

    similarity_files = default_evaluation_files()[1]
    data = os.environ.get("NCE_LM_DATA")
    if data and (Path(data) / MEN_FILE).is_file():
        similarity_files.append(Path(data) / MEN_FILE)
    default_workers = os.cpu_count() or 1 if args.device.startswith("cuda") else args.threads
    gensim_workers = [int(n) for n in args.gensim_threads.split(",")] if args.gensim_threads else [default_workers]
    if args.device == "cpu":
        where = f"{args.threads} thread{'s' * (args.threads != 1)}"
    else:
        where = torch.cuda.get_device_name(args.device)
    # Each row: (tool, objective, run) where run(seed) returns (vectors, words/s, vocabulary size).
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_gensim:
            corpus = plain_copy(args.corpus, tmp)
            for workers in gensim_workers:
                tool = f"gensim {__import__('gensim').__version__} ({workers} thread{'s' * (workers != 1)}"
                tool += ", iterable)" if args.gensim_input == "iterable" else ")"
                rows.append((tool, "neg", lambda seed, w=workers: run_gensim(corpus, args, w, seed)))
        noise_modes = args.noise_per.split(",") if args.model == "skipgram" else [SkipGramConfig.noise_per]
        for kernel, objective, noise_per in itertools.product(
            args.kernels.split(","), args.objectives.split(","), noise_modes
        ):
            config = SkipGramConfig(
                model=args.model,
                dim=args.dim,
                window=args.window,
                noise_samples=args.negatives,
                noise_per=noise_per,
                epochs=args.epochs,
                min_count=args.min_count,
                sample=args.sample,
                batch_size=args.batch_size,
                objective=objective,
                device=args.device,
                threads=args.threads if args.device == "cpu" else None,
                kernel=kernel,
                optimizer=args.optimizer,
                lr=args.lr,
                min_lr=args.min_lr,
            )

            def run_ours(seed: int, config: SkipGramConfig = config) -> tuple[WordVectors, float, int]:
                result = train_skipgram([args.corpus], replace(config, seed=seed), progress=False)
                return result.vectors, result.metrics["words_per_s"], len(result.vectors)

            label = f"nce_lm ({where})" if args.kernels == "auto" else f"nce_lm {kernel} ({where})"
            if args.model == "skipgram":
                label += f", noise per {noise_per}"
            rows.append((label, objective, run_ours))

        names = [p.name for p in similarity_files]
        speeds: list[list[float]] = [[] for _ in rows]
        figures: list[list[dict[str, float]]] = [[] for _ in rows]
        vocab_sizes = [0] * len(rows)
        for repeat in range(args.repeats):
            for index, (_, _, run) in enumerate(rows):
                vectors, speed, vocab_sizes[index] = run(args.seed + repeat)
                speeds[index].append(speed)
                figures[index].append(scores(vectors, similarity_files, args.restrict_vocab))

    seeds = f"seed {args.seed}" if args.repeats == 1 else f"seeds {args.seed}–{args.seed + args.repeats - 1}"
    settings = (
        f"corpus: {args.corpus.name}; {args.model}; dim {args.dim}, window {args.window}, negatives {args.negatives}, "
        f"epochs {args.epochs}, min_count {args.min_count}, sample {args.sample:g}, final rate {args.min_lr:g}; "
        f"ours: batch {args.batch_size:,}, "
        f"{args.optimizer}; analogy restricted to "
        f"{args.restrict_vocab:,} words; {args.repeats} round(s) taking turns ({seeds}): words/s median (range), "
        "vs gensim the median of the per-round ratios, quality the mean over the rounds (± their standard "
        "deviation)"
    )
    cells = []
    for (tool, objective, _), runs, row_figures, vocab_size in zip(rows, speeds, figures, vocab_sizes):
        ratios = [] if args.skip_gensim else [ours / theirs for ours, theirs in zip(runs, speeds[0])]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "–"
        figures_text = " | ".join(quality_cell([f[key] for f in row_figures]) for key in ["analogy", *names])
        cells.append(f"{tool} | {objective} | {vocab_size:,} | {speed_cell(runs)} | {ratio} | {figures_text}")
    header = " | ".join(["tool", "objective", "vocab", "words/s", "vs gensim", "analogy", *names])
    emit([settings, "", *markdown(header, cells)], args.output, args.device)


if __name__ == "__main__":
    main()
