"""``nce-lm eval-vectors`` and ``nce-lm neighbors``: look at trained word vectors."""

from __future__ import annotations

import argparse
import math

from nce_lm.cli.options import integer
from nce_lm.clobber import check_outputs
from nce_lm.evaluation import DEFAULT_RESTRICT_VOCAB, evaluate_all, nearest_neighbors
from nce_lm.errors import NceLmError
from nce_lm.fileio import write_json_atomic
from nce_lm.vectors import LOAD_FORMATS, load_vectors


DEFAULT_NEIGHBORS = 10


def print_metrics(metrics: dict[str, object]) -> None:
    """One line per figure: analogy accuracies, then each similarity file's Spearman correlation."""
    if "analogy" in metrics:
        print(
            f"analogy: 3CosAdd {metrics['analogy']:.4f}, 3CosMul {metrics['analogy_3cosmul']:.4f} "
            f"({metrics['analogy_skipped']:.1%} of questions skipped for unknown words)"
        )
    for key, value in metrics.items():
        if key.startswith("analogy") or key.endswith("_skipped"):
            continue
        rho = "n/a (fewer than 2 known pairs)" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"
        print(f"{key}: Spearman {rho} ({metrics[key + '_skipped']:.1%} of pairs skipped)")


def run_eval_vectors(args: argparse.Namespace) -> int:
    check_outputs([args.vectors, *(args.analogies or ()), *(args.similarity or ())], files={"--metrics": args.metrics})
    vectors = load_vectors(args.vectors, args.format)
    metrics = evaluate_all(vectors, args.analogies, args.similarity, args.restrict_vocab)
    print_metrics(metrics)
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    return 0


def run_neighbors(args: argparse.Namespace) -> int:
    vectors = load_vectors(args.vectors, args.format)
    if args.k is not None and args.k >= len(vectors):
        raise NceLmError(f"-k {args.k} asks for more neighbours than the {len(vectors) - 1:,} other words of {args.vectors}")
    k = args.k if args.k is not None else min(DEFAULT_NEIGHBORS, len(vectors) - 1)
    for word in args.words:
        print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in nearest_neighbors(vectors, word, k)))
    return 0


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=LOAD_FORMATS,
        default="auto",
        help="auto (default): gensim's native format for a .kv or .model name, else word2vec binary or text. "
        "gensim's format is a Python pickle, which can run code when loaded: name it (--format gensim) only "
        "for files from a source you trust",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval-vectors",
        help="analogy accuracy and word-similarity correlation of word vectors",
        description="Analogies (questions-words.txt format; 3CosAdd and 3CosMul) and Spearman correlations "
        "(word1 word2 score files). With no files named: gensim's bundled questions-words.txt, wordsim353.tsv "
        "and simlex999.txt. Figures follow gensim's evaluate_word_analogies / evaluate_word_pairs conventions.",
    )
    evaluate.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    _add_format(evaluate)
    evaluate.add_argument("--analogies", action="append", help="analogy file (repeatable)")
    evaluate.add_argument("--similarity", action="append", help="word-pair similarity file (repeatable)")
    evaluate.add_argument(
        "--restrict-vocab",
        type=integer(1),
        default=DEFAULT_RESTRICT_VOCAB,
        help=f"only the N most frequent words are known (default {DEFAULT_RESTRICT_VOCAB}, gensim's)",
    )
    evaluate.add_argument("--metrics", help="write the figures as JSON here")
    evaluate.set_defaults(func=run_eval_vectors)

    neighbors = subparsers.add_parser("neighbors", help="nearest neighbours by cosine similarity")
    neighbors.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    _add_format(neighbors)
    neighbors.add_argument("words", nargs="+", help="words to look up")
    neighbors.add_argument("-k", type=integer(1), help=f"neighbours per word (default {DEFAULT_NEIGHBORS}, at most "
                           "the other words)")
    neighbors.set_defaults(func=run_neighbors)
