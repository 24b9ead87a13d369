"""The ``nce-lm`` command line: one verb per job, each in its own module, each thin.

Verb modules (``*_verbs``) are found at start-up and registered in the order of :data:`VERB_ORDER`, then by
name; each defines ``register(subparsers)``, setting ``func`` to a callable that returns an exit status.
``NceLmError``, ``OSError`` and ``MemoryError`` are printed as one line with exit status 2 (docs/architecture.md,
"Command line").
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from nce_lm import __version__
from nce_lm.cli.options import OneLineParser
from nce_lm.errors import NceLmError

# Verb modules listed first in ``nce-lm --help``; any other ``*_verbs`` module follows by name.
VERB_ORDER = ("demo_verbs", "corpus_verbs", "skipgram_verbs", "vector_verbs", "lm_verbs", "synth_verbs")


def verb_modules() -> list[str]:
    """Fully qualified names of the verb modules of this package, in help order."""
    found = [m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_verbs")]
    rank = {name: i for i, name in enumerate(VERB_ORDER)}
    return [f"{__name__}.{name}" for name in sorted(found, key=lambda n: (rank.get(n, len(rank)), n))]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nce-lm", description="Word embeddings and language models trained with noise-contrastive objectives."
    )
    parser.add_argument("--version", action="version", version=f"nce-lm {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in verb_modules():
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a bad option (one line already printed), --help, --version
        return int(exit_.code or 0)
    try:
        return int(args.func(args) or 0)
    except NceLmError as err:
        message = str(err)
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        message = f"{err.strerror or err}{where}"
    except MemoryError:
        message = "out of memory: lower the sizes (--dim, --batch-size, --noise-samples, --window...)"
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"{args.command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
