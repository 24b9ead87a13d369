"""``nce-lm skipgram``: train word vectors, export them, optionally evaluate and checkpoint."""

from __future__ import annotations

import argparse
from dataclasses import fields

from nce_lm.fileio import write_json_atomic
from nce_lm.examples import MODELS
from nce_lm.skipgram import KERNELS, OPTIMIZERS, OUTPUT_BIAS, SkipGramConfig, SkipGramResult, train_skipgram
from nce_lm.vectors import FORMATS, save_vectors

_DEFAULTS = SkipGramConfig()
GENSIM_MODEL = "gensim-model"  # a gensim Word2Vec model, trainable further (nce_lm.gensim_model)


def config_from_args(args: argparse.Namespace) -> SkipGramConfig:
    """The run's settings: every SkipGramConfig field the command line defines."""
    return SkipGramConfig(**{f.name: getattr(args, f.name) for f in fields(SkipGramConfig) if hasattr(args, f.name)})


def run_skipgram(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = train_skipgram(
        args.corpus,
        config,
        progress=not args.quiet,
        checkpoint=args.checkpoint,
        resume=args.resume,
        cache_dir=args.cache_dir,
    )
    metrics = dict(result.metrics)
    if metrics["rank"] != 0:  # under torchrun, rank 0 writes the files
        return 0
    save_outputs(result, args)
    print(
        f"trained {len(result.vectors):,} vectors of dimension {config.dim} on {metrics['corpus_words']:,} words "
        f"× {metrics['epochs_run']} epochs: {metrics['words_per_s']:,.0f} words/s ({metrics['kernel']} update on "
        f"{metrics['device']}), final loss {metrics['final_loss']:.4f}"
    )
    print(f"wrote {args.output} ({args.format})")
    if args.save_context_vectors:
        print(f"wrote {args.save_context_vectors} (the output vectors, {context_format(args.format)})")
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    return 0


def context_format(format: str) -> str:
    """The format of the exported output vectors: ``--format``'s, or gensim's KeyedVectors beside a gensim
    model (which holds them too, as ``syn1neg``)."""
    return "gensim" if format == GENSIM_MODEL else format


def save_outputs(result: SkipGramResult, args: argparse.Namespace) -> None:
    """The vectors in ``--format`` (or the gensim model), then the output vectors when asked for."""
    if args.format == GENSIM_MODEL:
        from nce_lm.gensim_model import save_gensim_model

        save_gensim_model(result, args.output)
    else:
        save_vectors(result.vectors, args.output, args.format)
    if args.save_context_vectors:
        save_vectors(result.context_vectors, args.save_context_vectors, context_format(args.format))


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The skip-gram settings as options, with SkipGramConfig's defaults (shared with ``nce-lm demo``)."""
    d = _DEFAULTS
    parser.add_argument("--model", choices=MODELS, default=d.model,
                        help="skipgram: each context word predicts the centre word (word2vec -cbow 0); cbow: the mean "
                        "of the window's vectors predicts it (word2vec -cbow 1, gensim cbow_mean=1) (default skipgram)")
    parser.add_argument("--objective", choices=("neg", "nce", "ranking", "infonce"), default=d.objective,
                        help=f"training objective (default {d.objective})")
    parser.add_argument("--dim", type=int, default=d.dim, help=f"vector size (default {d.dim})")
    parser.add_argument("--window", type=int, default=d.window, help=f"maximum window (default {d.window})")
    parser.add_argument("--negatives", type=int, default=d.negatives, help=f"noise words per pair (default {d.negatives})")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the corpus (default {d.epochs})")
    parser.add_argument("--min-count", dest="min_count", type=int, default=d.min_count,
                        help=f"drop words seen fewer times (default {d.min_count})")
    parser.add_argument("--max-final-vocab", dest="max_final_vocab", type=int, default=None,
                        help="raise --min-count until at most this many words remain, as gensim's max_final_vocab: "
                        "words tied at the cut are all dropped, so the vocabulary may be smaller")
    parser.add_argument("--sample", type=float, default=d.sample, help=f"subsampling threshold t (default {d.sample:g})")
    parser.add_argument("--noise-power", dest="noise_power", type=float, default=d.noise_power,
                        help=f"q ∝ count^power (default {d.noise_power})")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default=d.optimizer,
                        help="sgd: word2vec's, the rate decaying linearly; rowwise-adagrad: one Adagrad accumulator "
                        "per row, for batches of tens of thousands of pairs (GPU) (default sgd)")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help="learning rate: SGD's starting rate (default 0.025) or Adagrad's constant rate (0.1)")
    parser.add_argument("--min-lr", dest="min_lr", type=float, default=d.min_lr,
                        help=f"SGD's final learning rate (default {d.min_lr})")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=d.batch_size,
                        help=f"examples (skip-gram pairs, CBOW windows) per update (default {d.batch_size})")
    parser.add_argument("--shared-noise", dest="shared_noise", action="store_true",
                        help="one set of noise words per batch instead of per pair")
    parser.add_argument("--output-bias", dest="output_bias", choices=OUTPUT_BIAS, default=None,
                        help="a per-word output bias b_w = log q(w) in the score, fixed or learned (default: fixed "
                        "for nce and ranking, whose scores estimate log p; none for neg and infonce, as in word2vec)")
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default auto: cuda when visible)")
    parser.add_argument("--threads", type=int, default=d.threads, help="CPU threads (default: torch's)")
    parser.add_argument("--kernel", choices=KERNELS, default=d.kernel,
                        help="the update: the fused C kernel (CPU), the device update (pairs, noise and steps on "
                        "the device, for a GPU) or the torch path; auto uses the fused kernel where it applies "
                        "(one process on the CPU, per-pair noise), else the device update on CUDA (default auto)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--lowercase", action="store_true", help="lower-case the text")
    parser.add_argument("--split-punctuation", dest="split_punctuation", action="store_true",
                        help="split punctuation off words")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "skipgram",
        help="train skip-gram word vectors (word2vec semantics) and export them",
        description="Train skip-gram vectors with negative sampling or another noise-contrastive objective, "
        "then write them in word2vec binary/text or gensim format. Defaults follow word2vec and gensim.",
    )
    parser.add_argument("corpus", nargs="+", help="corpus files or folders (.gz, .bz2, .xz read directly)")
    parser.add_argument("-o", "--output", required=True, help="vector file to write")
    parser.add_argument("--format", choices=(*FORMATS, GENSIM_MODEL), default="word2vec-bin",
                        help="vector format, or gensim-model: a gensim Word2Vec that gensim.models.Word2Vec.load opens "
                        "and can train further (default word2vec-bin)")
    parser.add_argument("--save-context-vectors", dest="save_context_vectors", metavar="PATH",
                        help="also write the output (context) vectors u, in --format (gensim KeyedVectors with "
                        "gensim-model)")
    add_training_arguments(parser)
    parser.add_argument("--metrics", help="write words_per_s, wall_s, epochs, vocab_size, final_loss... as JSON")
    parser.add_argument("--checkpoint", help="rewrite this checkpoint after every epoch (for --resume)")
    parser.add_argument("--resume", help="continue from this checkpoint up to --epochs epochs in all")
    parser.add_argument("--cache-dir", help="keep the corpus's token ids here for later runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_skipgram)
