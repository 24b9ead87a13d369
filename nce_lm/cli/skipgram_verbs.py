"""``nce-lm skipgram``: train word vectors, export them, optionally evaluate and checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import fields, replace

from nce_lm.cli.inputs import check_corpus
from nce_lm.cli.options import (
    FINAL_LEARNING_RATE,
    KERNEL_SIZE,
    LEARNING_RATE,
    NEGATIVES,
    SAMPLE,
    SEED,
    add_replace_errors,
    checkpoint_every,
    device_name,
    error_mode,
    integer,
    number,
    threads,
)
from nce_lm.cli.resume_command import resume_command
from nce_lm.clobber import check_outputs
from nce_lm.errors import NceLmError
from nce_lm.fileio import write_json_atomic
from nce_lm.locks import output_file_lock
from nce_lm.objectives.mi_bound import bound_line
from nce_lm.pipeline.token_cache import cache_vocab
from nce_lm.pipeline.vocab import Vocab
from nce_lm.skipgram.checkpoint import load_checkpoint
from nce_lm.skipgram.config import KERNELS, NOISE_PER, OUTPUT_BIAS, SKIPGRAM_OPTIMIZER_LR, SkipGramConfig
from nce_lm.skipgram.examples import MODELS
from nce_lm.skipgram.trainer import SkipGramResult, train_skipgram
from nce_lm.skipgram.windows import CHUNK_TOKENS
from nce_lm.training.preemption import Stopped
from nce_lm.vectors.formats import FORMATS

_DEFAULTS = SkipGramConfig()


def given_settings(args: argparse.Namespace) -> dict[str, object]:
    """The SkipGramConfig fields set on the command line (options left out are None)."""
    return {f.name: getattr(args, f.name) for f in fields(SkipGramConfig) if getattr(args, f.name, None) is not None}


def config_from_args(args: argparse.Namespace) -> SkipGramConfig:
    """The run's settings: SkipGramConfig's defaults, with what the command line sets."""
    return SkipGramConfig(**given_settings(args))


def resumed_config(args: argparse.Namespace) -> SkipGramConfig:
    """For --resume: the checkpoint's settings with those given on the command line; train_skipgram refuses the
    changes that a resumed run may not make (nce_lm.training.resume)."""
    saved, _, _ = load_checkpoint(args.resume)
    return replace(saved, **given_settings(args))


def check_given_vocabulary(args: argparse.Namespace, vocab: Vocab | None) -> None:
    """A vocabulary from --vocab or --cache is used as it is: options that would change it are refused."""
    if vocab is None:
        return
    for option, advice in (("--max-final-vocab", ""), ("--min-count", " (give --min-count to `nce-lm vocab`)")):
        if getattr(args, option[2:].replace("-", "_")) is not None:
            raise NceLmError(
                f"{option} applies when skipgram counts the vocabulary; with --vocab or --cache the "
                f"vocabulary is used as it is{advice}"
            )
    for name in ("lowercase", "split_punctuation"):
        asked, built = getattr(args, name), getattr(vocab.tokenizer, name)
        if asked is not None and asked != built:
            raise NceLmError(
                f"the vocabulary was built {'with' if built else 'without'} --{name.replace('_', '-')}, "
                "and its tokenizer settings apply to the corpus"
            )


def run_skipgram(args: argparse.Namespace) -> int:
    if not args.corpus and not args.cache_dir:
        raise NceLmError("give the corpus (files or folders), or a token cache with --cache DIR")
    check_corpus(args.corpus, "--cache")
    outputs = {"-o": args.output, "--metrics": args.metrics, "--save-context-vectors": args.save_context_vectors}
    check_outputs([*args.corpus, args.resume], folders={"--cache": args.cache_dir}, files=outputs)
    # --checkpoint may be the --resume file (a run continued in place), but neither a corpus file nor another output
    check_outputs([*args.corpus, args.vocab], files={**outputs, "--checkpoint": args.checkpoint})
    writes = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone writes the files
    with output_file_lock({**outputs, "--checkpoint": args.checkpoint}) if writes else contextlib.nullcontext():
        return train_and_save(args)


def train_and_save(args: argparse.Namespace) -> int:
    """:func:`run_skipgram` once its outputs are checked and locked: train, then write and report."""
    vocab = Vocab.load(args.vocab) if args.vocab else None
    if not args.resume:
        check_given_vocabulary(args, vocab or (cache_vocab(args.cache_dir) if args.cache_dir else None))
    config = resumed_config(args) if args.resume else config_from_args(args)
    args.checkpoint = args.checkpoint or args.resume  # a resumed run writes its state back, for the next --resume
    if args.checkpoint_every is not None and args.checkpoint is None:
        raise NceLmError("--checkpoint-every needs --checkpoint FILE (or --resume FILE) to write the checkpoints to")
    try:
        result = train_skipgram(
            args.corpus or None,
            config,
            vocab=vocab,
            progress=not args.quiet,
            checkpoint=args.checkpoint,
            resume=args.resume,
            cache_dir=args.cache_dir,
            errors=error_mode(args),
            checkpoint_every=args.checkpoint_every,
        )
    except Stopped as stop:  # SIGTERM or SIGINT, at a chunk boundary: the checkpoint continues it
        if stop.saved is not None:
            stop.resume_command = resume_command(args.argv, ("--resume",), stop.saved)
        raise
    metrics = dict(result.metrics)
    if metrics["rank"] != 0:  # under torchrun, rank 0 writes the files
        return 0
    save_outputs(result, args)
    print(
        f"trained {len(result.vectors):,} vectors of dimension {config.dim} on {metrics['corpus_words']:,} words "
        f"× {metrics['epochs_run']} epochs: {metrics['words_per_s']:,.0f} words/s ({metrics['kernel']} update on "
        f"{metrics['device']}), final loss {metrics['final_loss']:.4f}"
    )
    if metrics["mi_bound"] is not None:  # ranking and infonce: log(k + 1) − L, and whether it bounds I
        print(bound_line(metrics))
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    written = [f"{args.output} (vectors, {args.format})"]
    if args.save_context_vectors:
        written.append(f"{args.save_context_vectors} (output vectors, {FORMATS[args.format].output_vectors_format})")
    written += [f"{args.checkpoint} (checkpoint, for --resume)"] if args.checkpoint else []
    written += [f"{args.metrics} (metrics)"] if args.metrics else []
    print("wrote " + ", ".join(written))
    return 0


def save_outputs(result: SkipGramResult, args: argparse.Namespace) -> None:
    """The vectors in ``--format``, then the output vectors when asked for (nce_lm.vectors.formats)."""
    result.save(args.output, args.format)
    if args.save_context_vectors:
        result.context_vectors.save(args.save_context_vectors, FORMATS[args.format].output_vectors_format)


def add_training_arguments(parser: argparse.ArgumentParser, defaults: SkipGramConfig = _DEFAULTS) -> None:
    """The skip-gram settings as options (shared with ``nce-lm demo``), their help stating ``defaults``.

    Every option defaults to None, meaning "not given": a new run takes ``defaults`` (SkipGramConfig's, or
    the demo's through ``set_defaults``), a resumed one the checkpoint's.
    """
    d = defaults

    def flag(name: str, text: str) -> None:
        dest = name[2:].replace("-", "_")
        parser.add_argument(
            name,
            dest=dest,
            action="store_true",
            default=None,
            help=text + (" (on by default here)" if getattr(d, dest) else ""),
        )

    parser.add_argument(
        "--model",
        choices=MODELS,
        help="skipgram: each context word predicts the centre word (word2vec -cbow 0); cbow: the mean "
        f"of the window's vectors predicts it (word2vec -cbow 1, gensim cbow_mean=1) (default {d.model})",
    )
    parser.add_argument(
        "--objective", choices=("neg", "nce", "ranking", "infonce"), help=f"training objective (default {d.objective})"
    )
    parser.add_argument("--dim", type=KERNEL_SIZE, help=f"vector size (default {d.dim})")
    parser.add_argument("--window", type=KERNEL_SIZE, help=f"maximum window (default {d.window})")
    parser.add_argument(
        "--noise-samples",
        "--negatives",
        dest="noise_samples",
        type=NEGATIVES,
        help=f"k, noise words per example: word2vec's -negative (default {d.noise_samples})",
    )
    parser.add_argument("--epochs", type=integer(1), help=f"passes over the corpus (default {d.epochs})")
    parser.add_argument(
        "--min-count", dest="min_count", type=integer(1), help=f"drop words seen fewer times (default {d.min_count})"
    )
    parser.add_argument(
        "--max-final-vocab",
        dest="max_final_vocab",
        type=integer(1),
        help="raise --min-count until at most this many words remain, as gensim's max_final_vocab: "
        "words tied at the cut are all dropped, so the vocabulary may be smaller",
    )
    parser.add_argument("--sample", type=SAMPLE, help=f"subsampling threshold t (default {d.sample:g})")
    parser.add_argument(
        "--noise-power", dest="noise_power", type=number(0, 1), help=f"q ∝ count^power (default {d.noise_power})"
    )
    parser.add_argument(
        "--optimizer",
        choices=tuple(SKIPGRAM_OPTIMIZER_LR),
        help="sgd: word2vec's, the rate decaying linearly; rowwise-adagrad: one Adagrad accumulator "
        f"per row, for batches of tens of thousands of pairs (GPU) (default {d.optimizer})",
    )
    parser.add_argument(
        "--lr",
        type=LEARNING_RATE,
        help="learning rate: SGD's starting rate (default 0.025; CBOW 0.05, word2vec's) or Adagrad's constant "
        "rate (0.1); "
        "on --resume, the rate to continue from",
    )
    parser.add_argument(
        "--min-lr", dest="min_lr", type=FINAL_LEARNING_RATE, help=f"SGD's final learning rate (default {d.min_lr})"
    )
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=KERNEL_SIZE,
        help=f"examples (skip-gram pairs, CBOW windows) per update (default {d.batch_size})",
    )
    flag("--shared-noise", "one set of noise words per batch instead of per pair")
    parser.add_argument(
        "--noise-per",
        dest="noise_per",
        choices=NOISE_PER,
        help="skip-gram: draw the k noise words per (context, centre) pair, as word2vec does, or once per "
        "window, shared by its pairs (Ji et al. 2016: faster, the same expected loss, docs/skipgram.md); "
        f"no effect on CBOW, whose example is a window (default {d.noise_per})",
    )
    parser.add_argument(
        "--output-bias",
        dest="output_bias",
        choices=OUTPUT_BIAS,
        help="a per-word output bias b_w = log q(w) in the score, fixed or learned (default: fixed "
        "for nce and ranking, whose scores estimate log p; none for neg and infonce, as in word2vec)",
    )
    parser.add_argument(
        "--device", type=device_name, help=f"auto, cpu, cuda or cuda:N (default {d.device}: cuda when visible)"
    )
    parser.add_argument("--threads", type=threads, help="CPU threads (default: torch's)")
    parser.add_argument(
        "--kernel",
        choices=KERNELS,
        help="the update: the fused C kernel (CPU), the device update (pairs, noise and steps on "
        "the device, for a GPU) or the torch path; auto uses the fused kernel where it applies "
        f"(one process on the CPU), else the device update on CUDA (default {d.kernel})",
    )
    parser.add_argument("--seed", type=SEED, help=f"random seed (default {d.seed})")
    flag("--lowercase", "lower-case the text")
    flag("--split-punctuation", "split punctuation off words")
    add_replace_errors(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "skipgram",
        description="Train skip-gram vectors with negative sampling or another noise-contrastive objective, "
        "then write them in word2vec binary/text or gensim format. Defaults follow word2vec and gensim.",
    )
    parser.add_argument(
        "corpus", nargs="*", help="corpus files or folders (.gz, .bz2, .xz read directly); none with --cache"
    )
    parser.add_argument("-o", "--output", required=True, help="vector file to write")
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="word2vec-bin",
        help="vector format; gensim-model: a gensim Word2Vec that gensim.models.Word2Vec.load opens "
        "and can train further (default word2vec-bin)",
    )
    parser.add_argument(
        "--save-context-vectors",
        dest="save_context_vectors",
        metavar="PATH",
        help="also write the output (context) vectors u, in --format (gensim KeyedVectors with gensim-model)",
    )
    add_training_arguments(parser)
    parser.add_argument("--metrics", help="write words_per_s, wall_s, epochs, vocab_size, final_loss... as JSON")
    parser.add_argument(
        "--checkpoint",
        help="rewrite this checkpoint after every epoch, every --checkpoint-every, and when SIGTERM or SIGINT "
        "stops the run (for --resume; docs/reliability.md); each epoch's loss is appended to "
        "CHECKPOINT.log.jsonl (a resumed run continues it)",
    )
    parser.add_argument(
        "--checkpoint-every",
        dest="checkpoint_every",
        type=checkpoint_every,
        metavar="DURATION|STEPS",
        help="also rewrite --checkpoint inside epochs: every DURATION of training (30m, 600s, 2h) or every STEPS "
        f"chunks of {CHUNK_TOKENS:,} corpus words; a run resumed from it ends bit for bit as an uninterrupted one",
    )
    parser.add_argument(
        "--resume",
        help="continue from this checkpoint up to --epochs epochs in all, with its "
        "settings; only --epochs, --lr, --min-lr, --device, --threads and --kernel may change "
        "(docs/skipgram.md, Resuming). The continued state is written back to this file after every epoch, "
        "so the next --resume goes on from there, unless --checkpoint names another file",
    )
    parser.add_argument(
        "--vocab", help="a vocabulary from `nce-lm vocab`, used as it is (its min count, its tokenizer)"
    )
    parser.add_argument(
        "--cache",
        "--cache-dir",
        dest="cache_dir",
        help="a token cache from `nce-lm prepare` (its vocabulary and corpus are used unless given), "
        "or a new folder to keep this corpus's token ids in for later runs",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_skipgram)
