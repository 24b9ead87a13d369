"""The ``nce-lm`` command line: one verb per job, each in its own module, each thin.

:data:`VERBS` names each verb's module and its line in ``nce-lm --help``. A command imports the module of its own
verb only (the others appear as their help line), so ``nce-lm --help``, ``vocab``, ``prepare``, ``data``,
``eval-vectors`` and ``neighbors`` do not import torch, which the trainers' modules do. A ``*_verbs`` module
missing from :data:`VERBS` is still found at start-up and registered in full. Each module defines
``register(subparsers)``, setting ``func`` to a callable that returns an exit status. ``NceLmError``, ``OSError``
and ``MemoryError`` are printed as one line with exit status 2 (docs/architecture.md, "Command line"). SIGTERM and
SIGINT stop a command cleanly (:mod:`nce_lm.training.preemption`): one line saying what was saved and how to
resume, exit status 143 or 130 (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys

from nce_lm import __version__
from nce_lm.cli.leftovers import missing_folders, remove_created, remove_if_empty
from nce_lm.cli.options import OneLineParser
from nce_lm.errors import NceLmError
from nce_lm.training import preemption

# verb: (module, its line in `nce-lm --help`), in help order
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("demo_verbs", "the main job on gensim's bundled Lee corpus: vocabulary, skip-gram, evaluation, export"),
    "vocab": ("corpus_verbs", "count a corpus and write its vocabulary (JSON)"),
    "prepare": ("corpus_verbs", "encode a corpus once into a memory-mapped token-id cache"),
    "data": ("corpus_verbs", "list, locate or download the registered corpora"),
    "skipgram": ("skipgram_verbs", "train skip-gram word vectors (word2vec semantics) and export them"),
    "eval-vectors": ("vector_verbs", "analogy accuracy and word-similarity correlation of word vectors"),
    "neighbors": ("vector_verbs", "nearest neighbours by cosine similarity, and analogies"),
    "lm": ("lm_verbs", "language models: train, evaluate exactly, score sentences, sample"),
    "plot": ("plot_verbs", "draw the training curves of language-model runs (needs matplotlib)"),
    "synth": ("synth_verbs", "write a corpus drawn from a known teacher LM, with its exact perplexity floor"),
}


def verb_of(argv: list[str]) -> str | None:
    """The verb of a command line: its first word that is not an option (the top level takes no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``nce-lm``, with ``verb``'s module registered in full and the other verbs as help lines."""
    parser = OneLineParser(
        prog="nce-lm", description="Word embeddings and language models trained with noise-contrastive objectives."
    )
    parser.add_argument("--version", action="version", version=f"nce-lm {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    wanted = VERBS[verb][0] if verb in VERBS else None
    modules = dict.fromkeys(module for module, _ in VERBS.values())  # each once, in help order
    for module in modules:
        if module == wanted:
            importlib.import_module(f"{__name__}.{module}").register(subparsers)
            continue
        for name, (owner, line) in VERBS.items():
            if owner == module:
                subparsers.add_parser(name, help=line, add_help=False)
    for found in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_verbs")):
        if found not in modules:
            importlib.import_module(f"{__name__}.{found}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with preemption.signals_handled():  # from the start: a signal while the verb's modules load stops cleanly too
        try:
            return run(argv)
        except KeyboardInterrupt as interrupt:  # before the command started: nothing was written
            stop = interrupt if isinstance(interrupt, preemption.Stopped) else preemption.Stopped(signal.SIGINT)
            print(f"nce-lm: {stop.report()}", file=sys.stderr, flush=True)
            return stop.exit_status


def run(argv: list[str]) -> int:
    """:func:`main` once SIGTERM and SIGINT are handled: parse ``argv``, run the verb, report its failure."""
    parser = build_parser(verb_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a bad option (one line already printed), --help, --version
        return int(exit_.code or 0)
    args.argv = list(argv)  # for the command that resumes a stopped run (nce_lm.cli.resume_command)
    created = missing_folders(args)  # what a failed command made of them is removed (nce_lm.cli.leftovers)
    try:
        status = int(args.func(args) or 0)
        if status != 0:
            remove_if_empty(created)
        return status
    except NceLmError as err:
        message = str(err)
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        message = f"{err.strerror or err}{where}"
    except MemoryError:
        message = "out of memory: lower the sizes (--dim, --batch-size, --noise-samples, --window...)"
    except KeyboardInterrupt as interrupt:  # SIGTERM, SIGINT (Ctrl-C): preemption.Stopped
        stop = interrupt if isinstance(interrupt, preemption.Stopped) else preemption.Stopped(signal.SIGINT)
        if stop.saved is None:  # what it had begun to write in folders of its own is incomplete: removed
            remove_created(created)
        remove_if_empty(created)
        print(f"{args.command}: {stop.report()}", file=sys.stderr, flush=True)
        return stop.exit_status
    remove_if_empty(created)
    print(f"{args.command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
