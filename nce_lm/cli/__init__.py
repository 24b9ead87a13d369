"""The ``nce-lm`` command line: one verb per job, each in its own module, each thin.

A verb module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit status. Errors the user can fix arrive as
:class:`~nce_lm.errors.NceLmError` and are printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nce_lm import __version__
from nce_lm.errors import NceLmError

# Verb modules, in the order their verbs appear in ``nce-lm --help``.
VERB_MODULES = (
    # verb modules are added here as they land
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nce-lm",
        description="Word embeddings and language models trained with noise-contrastive objectives.",
    )
    parser.add_argument("--version", action="version", version=f"nce-lm {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NceLmError as err:
        print(f"nce-lm {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nce-lm {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
