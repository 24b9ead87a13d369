"""``nce-lm demo``: the main job on a corpus that needs no download.

The default corpus is the Lee news corpus that ships inside gensim (``lee_background.cor``, about 60,000
words): the demo builds its vocabulary (lower-cased, punctuation split off) and the noise distribution
q(w) ∝ count^0.75, and prints what a user checks first on a new corpus.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nce_lm.corpus import TokenizerConfig
from nce_lm.noise import DEFAULT_POWER, NoiseDistribution
from nce_lm.vocab import Vocab, build_vocab, coverage

DEMO_TOKENIZER = TokenizerConfig(lowercase=True, split_punctuation=True)


def default_corpus() -> Path:
    """gensim's bundled Lee background corpus."""
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))


def print_vocab_summary(vocab: Vocab, noise: NoiseDistribution, top: int = 10) -> None:
    """Size, tokens, coverage, and the most frequent words with their share of the corpus and of the noise."""
    words = int(vocab.counts.sum() - vocab.counts[vocab.eos_id])
    print(f"vocabulary: {len(vocab):,} entries; corpus: {words:,} tokens in {int(vocab.counts[vocab.eos_id]):,} lines")
    print(f"coverage: {coverage(vocab):.2%} of tokens are in the vocabulary")
    print(f"{'word':<12} {'count':>8} {'unigram':>8} {'noise q':>8}")
    for i in range(2, min(len(vocab), 2 + top)):
        share = vocab.counts[i] / words
        print(f"{vocab.tokens[i]:<12} {int(vocab.counts[i]):>8,} {share:>8.4f} {float(noise.probs[i]):>8.4f}")


def run_demo(args: argparse.Namespace) -> int:
    corpus = [Path(p) for p in args.corpus] if args.corpus else [default_corpus()]
    output = Path(args.output)
    print(f"corpus: {', '.join(str(p) for p in corpus)}")
    vocab = build_vocab(corpus, min_count=args.min_count, tokenizer=DEMO_TOKENIZER)
    output.mkdir(parents=True, exist_ok=True)
    vocab.save(output / "vocab.json")
    noise = NoiseDistribution(vocab.counts, power=DEFAULT_POWER, exclude=[vocab.unk_id, vocab.eos_id])
    print_vocab_summary(vocab, noise)
    print(f"wrote {output / 'vocab.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the main job on gensim's bundled Lee corpus (no download)",
        description="Build the vocabulary and noise distribution of a corpus (default: gensim's bundled "
        "lee_background.cor, lower-cased, punctuation split) and print its statistics.",
    )
    demo.add_argument("corpus", nargs="*", help="corpus files or folders (default: gensim's lee_background.cor)")
    demo.add_argument("-o", "--output", default="runs/demo", help="folder for the outputs (default runs/demo)")
    demo.add_argument("--min-count", type=int, default=5, help="keep words seen at least this often (default 5)")
    demo.set_defaults(func=run_demo)
