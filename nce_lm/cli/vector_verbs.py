"""``nce-lm eval-vectors`` and ``nce-lm neighbors``: look at trained word vectors."""

from __future__ import annotations

import argparse
import math
import sys

from nce_lm.cli.options import add_replace_errors, error_mode, integer
from nce_lm.clobber import check_outputs
from nce_lm.errors import NceLmError
from nce_lm.fileio import write_json_atomic
from nce_lm.vectors.evaluation import DEFAULT_RESTRICT_VOCAB, evaluate_all
from nce_lm.vectors.formats import AUTO, FORMATS
from nce_lm.vectors.word_vectors import WordVectors

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
    vectors = load_vectors(args)
    metrics = evaluate_all(
        vectors, args.analogies, args.similarity, args.restrict_vocab, progress=not args.quiet, errors=error_mode(args)
    )
    print_metrics(metrics)
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
        print(f"wrote {args.metrics}")
    return 0


def load_vectors(args: argparse.Namespace) -> WordVectors:
    """The vectors file of either verb, read as ``--format``, ``--replace-errors`` and ``--trust-pickle`` say."""
    return WordVectors.load(args.vectors, args.format, error_mode(args), trust_pickle=args.trust_pickle)


OPERATORS = ("+", "-")


def parse_queries(arguments: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """The queries of ``nce-lm neighbors``: a word, or an analogy ``a - b + c`` whose operators stand apart (so
    that hyphenated words stay words), in one argument or several. Returns ``(text, positive, negative)`` per
    query; a dangling operator is an :class:`NceLmError`."""
    tokens = [token for argument in arguments for token in argument.split()]
    queries: list[tuple[str, list[str], list[str]]] = []
    sign = None  # the operator waiting for its word
    for token in tokens:
        if token in OPERATORS:
            if sign is not None or not queries:
                raise NceLmError(f"'{token}' must stand between two words, as in 'king - man + woman'")
            sign = token
        elif sign is None:
            queries.append((token, [token], []))
        else:
            text, positive, negative = queries[-1]
            (positive if sign == "+" else negative).append(token)
            queries[-1] = (f"{text} {sign} {token}", positive, negative)
            sign = None
    if sign is not None:
        raise NceLmError(f"'{sign}' must stand between two words, as in 'king - man + woman'")
    return queries


def unknown_word_message(vectors: WordVectors, word: str) -> str:
    """Says that ``word`` is unknown, and suggests the words that differ from it only by case."""
    variants = [w for w in vectors.words if w.lower() == word.lower()][:3]
    hint = f" (did you mean {' or '.join(repr(v) for v in variants)}?)" if variants else ""
    return f"{word!r} is not in the vectors{hint}"


def run_neighbors(args: argparse.Namespace) -> int:
    queries = parse_queries(args.words)
    vectors = load_vectors(args)
    if args.k is not None and args.k >= len(vectors):
        raise NceLmError(
            f"-k {args.k} asks for more neighbours than the {len(vectors) - 1:,} other words of {args.vectors}"
        )
    k = args.k if args.k is not None else min(DEFAULT_NEIGHBORS, len(vectors) - 1)
    answered = 0
    for text, positive, negative in queries:
        unknown = [word for word in positive + negative if word not in vectors]
        if unknown:
            message = "; ".join(unknown_word_message(vectors, word) for word in unknown)
            if len(queries) == 1:
                raise NceLmError(message)
            print(f"nce-lm neighbors: skipped {text}: {message}", file=sys.stderr, flush=True)
            continue
        # gensim's most_similar: a word's neighbours, or an analogy's 3CosAdd, the query words left out
        found = vectors.most_similar(positive=positive, negative=negative, topn=k)
        print(f"{text}: " + ", ".join(f"{w} {s:.3f}" for w, s in found), flush=True)
        answered += 1
    if not answered:
        raise NceLmError("no query could be answered: every one holds a word that is not in the vectors")
    return 0


def _add_reading_options(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--trust-pickle`` and ``--replace-errors``, which both verbs take."""
    add_replace_errors(parser)
    parser.add_argument(
        "--format",
        choices=(AUTO, *FORMATS),
        default=AUTO,
        help="auto (default): word2vec binary or text, told apart by content; gensim and gensim-model "
        "(gensim's native formats) need --trust-pickle",
    )
    parser.add_argument(
        "--trust-pickle",
        dest="trust_pickle",
        action="store_true",
        help="allow reading gensim's native formats, which are Python pickles: loading one runs whatever code "
        "the file names, so give this only for files from a source you trust (a file's name is not enough)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval-vectors",
        description="Analogies (questions-words.txt format; 3CosAdd and 3CosMul) and Spearman correlations "
        "(word1 word2 score files). With no files named: gensim's bundled questions-words.txt, wordsim353.tsv "
        "and simlex999.txt. Figures follow gensim's evaluate_word_analogies / evaluate_word_pairs conventions.",
    )
    evaluate.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    _add_reading_options(evaluate)
    evaluate.add_argument("--analogies", action="append", help="analogy file (repeatable)")
    evaluate.add_argument("--similarity", action="append", help="word-pair similarity file (repeatable)")
    evaluate.add_argument(
        "--restrict-vocab",
        type=integer(1),
        default=DEFAULT_RESTRICT_VOCAB,
        help=f"only the N most frequent words are known (default {DEFAULT_RESTRICT_VOCAB}, gensim's)",
    )
    evaluate.add_argument("--metrics", help="write the figures as JSON here")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar (shown when it takes over 2 s)")
    evaluate.set_defaults(func=run_eval_vectors)

    neighbors = subparsers.add_parser(
        "neighbors",
        description="For each word, its nearest neighbours by cosine similarity; for an analogy 'a - b + c' (the "
        "operators apart from the words), the words nearest to a - b + c in unit vectors (3CosAdd, as gensim's "
        "most_similar). A query with an unknown word is reported (with its case variants, if any) and skipped; "
        "the command fails only when no query could be answered.",
    )
    neighbors.add_argument("vectors", help="vectors in word2vec binary or text format, or gensim's format")
    _add_reading_options(neighbors)
    neighbors.add_argument("words", nargs="+", help="words, or analogies such as: king - man + woman")
    neighbors.add_argument(
        "-k", type=integer(1), help=f"neighbours per word (default {DEFAULT_NEIGHBORS}, at most the other words)"
    )
    neighbors.set_defaults(func=run_neighbors)
