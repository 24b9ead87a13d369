"""``nce-lm vocab``, ``nce-lm prepare`` and ``nce-lm data``: thin wrappers over :mod:`nce_lm.pipeline`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nce_lm.cli.inputs import check_corpus
from nce_lm.cli.options import add_replace_errors, error_mode, integer
from nce_lm.clobber import check_outputs
from nce_lm.errors import NceLmError
from nce_lm.pipeline.corpus import TokenizerConfig
from nce_lm.pipeline.datasets import REGISTRY, dataset_path, fetch, find_local
from nce_lm.pipeline.token_cache import VOCAB_FILE, load_or_build
from nce_lm.pipeline.vocab import DEFAULT_MAX_DISTINCT, Vocab, build_vocab, coverage


def _add_reading_options(parser: argparse.ArgumentParser) -> None:
    """``--replace-errors`` and ``--quiet``, which both corpus-reading verbs take."""
    add_replace_errors(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar (shown when reading takes over 2 s)")


def run_vocab(args: argparse.Namespace) -> int:
    check_corpus(args.corpus)
    check_outputs(args.corpus, files={"-o": args.output})
    tokenizer = TokenizerConfig(lowercase=args.lowercase, split_punctuation=args.split_punctuation)
    vocab = build_vocab(
        args.corpus,
        min_count=args.min_count,
        max_size=args.max_size,
        tokenizer=tokenizer,
        errors=error_mode(args),
        max_distinct=args.max_distinct,
        progress=not args.quiet,
    )
    vocab.save(args.output)
    words = int(vocab.counts.sum() - vocab.counts[vocab.eos_id])
    print(f"vocabulary: {len(vocab):,} entries (including <unk> and <eos>) written to {args.output}")
    print(f"corpus: {words:,} tokens in {int(vocab.counts[vocab.eos_id]):,} lines")
    print(f"coverage: {coverage(vocab):.4%} of corpus tokens are in the vocabulary")
    if vocab.settings["prune_threshold"]:
        print(
            f"note: more than {args.max_distinct:,} distinct tokens; tokens seen at most "
            f"{vocab.settings['prune_threshold']} times were pruned while counting, rare-word counts are undercounts"
        )
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    check_corpus(args.corpus)
    check_outputs([*args.corpus, args.vocab], folders={"-o": args.output})
    vocab = Vocab.load(args.vocab)
    cache = load_or_build(args.corpus, vocab, args.output, errors=error_mode(args), progress=not args.quiet)
    vocab.save(Path(args.output) / VOCAB_FILE)  # the folder alone then serves `--cache DIR`
    action = "reused" if cache.reused else "wrote"
    print(
        f"{action} {len(cache.ids):,} token ids ({cache.manifest['lines']:,} lines) in {args.output}, "
        f"with a copy of the vocabulary ({VOCAB_FILE})"
    )
    return 0


def run_data(args: argparse.Namespace) -> int:
    if args.action == "list":
        for dataset in REGISTRY.values():
            local = find_local(dataset.name, next(iter(dataset.splits)))
            archive_check = "sha256 checked" if dataset.archive_sha256 else "archive checksum not checked"
            file_check = (
                "split files sha256 checked"
                if all(f.sha256 for f in dataset.splits.values())
                else "split files not checked: fetch needs --allow-unverified"
            )
            print(
                f"{dataset.name}: splits {', '.join(dataset.splits)}; {dataset.url} ({dataset.archive}; "
                f"{archive_check}; {file_check})"
            )
            print(f"    licence: {dataset.license}")
            print(f"    local copy: {local.parent if local else 'none'}")
        return 0
    if args.name is None:
        raise NceLmError(f"`nce-lm data {args.action}` needs a dataset name: one of {', '.join(REGISTRY)}")
    if args.action == "path":
        print(dataset_path(args.name, args.split))
        return 0
    for split, path in fetch(args.name, args.data_dir, args.allow_unverified).items():
        print(f"{split}: {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    vocab = subparsers.add_parser(
        "vocab",
        description="Count every token of the corpus and write the vocabulary: <unk> (id 0), <eos> (id 1), "
        "then tokens by count descending. Prints the size, token count and coverage.",
    )
    vocab.add_argument("corpus", nargs="+", help="corpus files or folders (.gz, .bz2, .xz read directly)")
    vocab.add_argument("-o", "--output", required=True, help="vocabulary JSON to write")
    vocab.add_argument(
        "--min-count", type=integer(1), default=1, help="keep tokens seen at least this often (default 1)"
    )
    vocab.add_argument(
        "--max-size",
        type=integer(3, reason="two special tokens and one word"),
        default=None,
        help="at most this many entries, specials included",
    )
    vocab.add_argument(
        "--max-distinct",
        type=integer(1),
        default=DEFAULT_MAX_DISTINCT,
        help="prune the rarest tokens while counting past this many distinct tokens (word2vec's ReduceVocab)",
    )
    vocab.add_argument("--lowercase", action="store_true", help="lower-case the text before splitting")
    vocab.add_argument("--split-punctuation", action="store_true", help="split punctuation off words")
    _add_reading_options(vocab)
    vocab.set_defaults(func=run_vocab)

    prepare = subparsers.add_parser(
        "prepare",
        description="Encode the corpus with the vocabulary (and its tokenizer settings) into CACHE_DIR/tokens.npy "
        "with a manifest; a later run reuses it unless the sources or the vocabulary changed.",
    )
    prepare.add_argument("corpus", nargs="+", help="corpus files or folders")
    prepare.add_argument("--vocab", required=True, help="vocabulary JSON written by `nce-lm vocab`")
    prepare.add_argument("-o", "--output", required=True, help="cache folder")
    _add_reading_options(prepare)
    prepare.set_defaults(func=run_prepare)

    data = subparsers.add_parser(
        "data",
        description="list: the registered corpora; path NAME: a local copy (in $NCE_LM_DATA, then the project's "
        "data/ folder); fetch NAME: download, verify and extract into the data folder.",
    )
    data.add_argument("action", choices=("list", "path", "fetch"))
    data.add_argument("name", nargs="?", choices=tuple(REGISTRY), help="dataset name")
    data.add_argument("--split", default="train", help="split for `path` (default train)")
    data.add_argument("--data-dir", default=None, help="folder for `fetch` (default: the project's data/)")
    data.add_argument(
        "--allow-unverified",
        action="store_true",
        help="fetch a dataset that has no recorded checksum (wikitext-103, text8) without checking it",
    )
    data.set_defaults(func=run_data)
