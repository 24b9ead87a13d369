"""``nce-lm eval-vectors`` and ``nce-lm neighbors``: look at trained word vectors."""

from __future__ import annotations

import argparse
import math

from nce_lm.evaluation import DEFAULT_RESTRICT_VOCAB, evaluate_all, nearest_neighbors
from nce_lm.fileio import write_json_atomic
from nce_lm.vectors import load_vectors


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    vectors = load_vectors(args.vectors)
    metrics = evaluate_all(vectors, args.analogies, args.similarity, args.restrict_vocab)
    print_metrics(metrics)
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    return 0


def run_neighbors(args: argparse.Namespace) -> int:
    vectors = load_vectors(args.vectors)
    for word in args.words:
        print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in nearest_neighbors(vectors, word, args.k)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval-vectors",
        help="analogy accuracy and word-similarity correlation of word vectors",
        description="Analogies (questions-words.txt format; 3CosAdd and 3CosMul) and Spearman correlations "
        "(word1 word2 score files). With no files named: gensim's bundled questions-words.txt, wordsim353.tsv "
        "and simlex999.txt. Figures follow gensim's evaluate_word_analogies / evaluate_word_pairs conventions.",
    )
    evaluate.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    evaluate.add_argument("--analogies", action="append", help="analogy file (repeatable)")
    evaluate.add_argument("--similarity", action="append", help="word-pair similarity file (repeatable)")
    evaluate.add_argument(
        "--restrict-vocab",
        type=_positive,
        default=DEFAULT_RESTRICT_VOCAB,
        help=f"only the N most frequent words are known (default {DEFAULT_RESTRICT_VOCAB}, gensim's)",
    )
    evaluate.add_argument("--metrics", help="write the figures as JSON here")
    evaluate.set_defaults(func=run_eval_vectors)

    neighbors = subparsers.add_parser("neighbors", help="nearest neighbours by cosine similarity")
    neighbors.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    neighbors.add_argument("words", nargs="+", help="words to look up")
    neighbors.add_argument("-k", type=_positive, default=10, help="neighbours per word (default 10)")
    neighbors.set_defaults(func=run_neighbors)
