"""``nce-lm synth``: a corpus from a known teacher, with its perplexity floor."""

from __future__ import annotations

import argparse

from nce_lm.cli.options import SEED, device_name, integer, number
from nce_lm.pipeline.synth import TeacherConfig, write_corpus

_D = TeacherConfig()


def run_synth(args: argparse.Namespace) -> int:
    classes = args.classes if args.classes is not None else min(_D.classes, args.vocab)
    config = TeacherConfig(
        vocab=args.vocab, classes=classes, mix=args.mix, zipf=args.zipf, mean_line=args.mean_line, seed=args.seed
    )
    report = write_corpus(args.output, args.tokens, config, device=args.device, progress=not args.quiet)
    tokens = report["tokens"]
    print(
        f"wrote {args.output}/train.txt, valid.txt, test.txt ({tokens['train']:,} / {tokens['valid']:,} / "
        f"{tokens['test']:,} tokens, <eos> included) and teacher.json"
    )
    print(
        f"floor: the teacher's test perplexity is {report['test_floor_ppl']:.3f} "
        f"({report['test_cross_entropy']:.4f} nats/token); a unigram model's is {report['unigram_ppl']:.1f}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        description="Sample train/valid/test text from a class-bigram teacher over V Zipf-distributed words "
        "(see docs/synth.md) and record the teacher's exact test perplexity, the lowest any model can expect.",
    )
    parser.add_argument("-o", "--output", required=True, help="folder to write")
    parser.add_argument(
        "--vocab", type=integer(2, 50_000_000), required=True, help="V, the number of words (1k to 1M and more)"
    )
    parser.add_argument("--tokens", type=integer(100), required=True, help="tokens in all splits, end-of-line included")
    parser.add_argument("--classes", type=integer(1), help=f"word classes C (default {_D.classes}, at most V)")
    parser.add_argument(
        "--mix", type=number(0, 1), default=_D.mix, help=f"weight λ of the class part (default {_D.mix})"
    )
    parser.add_argument("--zipf", type=number(0), default=_D.zipf, help=f"unigram exponent s (default {_D.zipf})")
    parser.add_argument(
        "--mean-line", type=number(1, above=True), default=_D.mean_line, help="mean tokens per line (default 20)"
    )
    parser.add_argument("--seed", type=SEED, default=_D.seed, help=f"default {_D.seed}")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_synth)
