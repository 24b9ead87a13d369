"""``nce-lm demo``: the main job, end to end, on a corpus that needs no download.

The default corpus is the Lee news corpus that ships inside gensim (``lee_background.cor``, about 60,000
words). The demo builds its vocabulary (lower-cased, punctuation split off) and noise distribution, trains
skip-gram vectors with negative sampling, evaluates them on gensim's bundled analogy and word-similarity
sets, exports them in word2vec binary format, reloads them in gensim to prove it, and prints nearest
neighbours. It takes 3.8 s (6.8 s on a cold start; 2 AMD EPYC cores, 2026-11-28).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from nce_lm.cli.options import error_mode
from nce_lm.cli.skipgram_verbs import add_training_arguments, config_from_args
from nce_lm.cli.vector_verbs import print_metrics
from nce_lm.clobber import check_output_folder, check_outputs
from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, staged_folder, write_json_atomic
from nce_lm.pipeline.corpus import TokenizerConfig
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.vocab import Vocab, build_vocab, coverage
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram
from nce_lm.vectors.evaluation import evaluate_all

DEMO_WORDS = ("government", "police", "fire", "australia", "said")
# The demo's corpus is small (60,000 words): more epochs and a lower min count than word2vec's defaults.
DEMO_CHANGES = {"epochs": 10, "min_count": 3, "lowercase": True, "split_punctuation": True}
DEMO_SETTINGS = replace(SkipGramConfig(), **DEMO_CHANGES)
DEMO_FILES = ("vocab.json", "vectors.bin", "metrics.json")


def _is_demo_output(folder: Path) -> bool:
    """Whether ``folder``'s metrics.json is one that the demo wrote."""
    try:
        metrics = read_json(folder / "metrics.json", "demo metrics")
    except NceLmError:
        return False
    return isinstance(metrics, dict) and {"training", "evaluation"} <= metrics.keys()


def default_corpus() -> Path:
    """gensim's bundled Lee background corpus."""
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))


def print_vocab_summary(vocab: Vocab, noise: NoiseDistribution, top: int = 8) -> None:
    """Size, tokens, coverage, and the most frequent words with their share of the corpus and of the noise."""
    words = int(vocab.counts.sum() - vocab.counts[vocab.eos_id])
    print(
        f"vocabulary: {len(vocab) - 2:,} words (+ <unk>, <eos>); corpus: {words:,} tokens in "
        f"{int(vocab.counts[vocab.eos_id]):,} lines; coverage {coverage(vocab):.2%}"
    )
    print(f"  {'word':<12} {'count':>8} {'unigram':>8} {'noise q':>8}")
    for i in range(2, min(len(vocab), 2 + top)):
        share = vocab.counts[i] / words
        print(f"  {vocab.tokens[i]:<12} {int(vocab.counts[i]):>8,} {share:>8.4f} {float(noise.probs[i]):>8.4f}")


def run_demo(args: argparse.Namespace) -> int:
    from gensim.models import KeyedVectors

    corpus = [Path(p) for p in args.corpus] if args.corpus else [default_corpus()]
    output = Path(args.output)
    config = config_from_args(args)
    check_outputs(corpus, files={name: output / name for name in DEMO_FILES})
    check_output_folder("-o", output, "demo", DEMO_FILES, _is_demo_output)
    with staged_folder(output) as staging:
        print(f"corpus: {', '.join(str(p) for p in corpus)}")
        errors = error_mode(args)
        vocab = build_vocab(
            corpus,
            min_count=config.min_count,
            errors=errors,
            progress=not args.quiet,
            tokenizer=TokenizerConfig(config.lowercase, config.split_punctuation),
        )
        vocab.save(staging / "vocab.json")
        noise = NoiseDistribution(vocab.counts, config.noise_power, exclude=[vocab.unk_id, vocab.eos_id])
        print_vocab_summary(vocab, noise)

        result = train_skipgram(corpus, config, vocab=vocab, progress=not args.quiet, errors=errors)
        metrics = result.metrics
        print(
            f"trained {len(result.vectors):,} vectors × {config.dim} with {config.objective}: "
            f"{metrics['words_per_s']:,.0f} words/s, {metrics['wall_s']:.1f} s, final loss {metrics['final_loss']:.4f}"
        )

        scores = evaluate_all(result.vectors)
        print_metrics(scores)
        words = int(vocab.counts.sum() - vocab.counts[vocab.eos_id])
        if words < 1_000_000:
            print(
                f"  (a {words:,}-word corpus is far too small for these figures to mean much: most test words are "
                "unknown; BENCHMARKS.md has them on WikiText-2 next to gensim's)"
            )
        result.vectors.save(staging / "vectors.bin", "word2vec-bin")
        reloaded = KeyedVectors.load_word2vec_format(str(staging / "vectors.bin"), binary=True)
        same = reloaded.index_to_key == result.vectors.words and (reloaded.vectors == result.vectors.vectors).all()
        print(f"{output / 'vectors.bin'}: gensim reloads it {'bit for bit' if same else 'WITH DIFFERENCES'}")
        for word in (w for w in DEMO_WORDS if w in result.vectors):
            print(f"  {word}: " + ", ".join(f"{w} {s:.2f}" for w, s in result.vectors.most_similar(word, topn=5)))
        write_json_atomic(staging / "metrics.json", {"training": metrics, "evaluation": scores})
    # every file moves in at the end, so a run that fails leaves the folder as it was
    print(f"wrote {output}: vocab.json, vectors.bin, metrics.json")
    return 0 if same else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        description="Build the vocabulary of a corpus (default: gensim's bundled lee_background.cor, lower-cased, "
        "punctuation split), train skip-gram vectors, evaluate them on gensim's bundled analogy and similarity sets, "
        "export them in word2vec binary format and reload them in gensim.",
    )
    demo.add_argument("corpus", nargs="*", help="corpus files or folders (default: gensim's lee_background.cor)")
    demo.add_argument("-o", "--output", default="runs/demo", help="folder for the outputs (default runs/demo)")
    add_training_arguments(demo, DEMO_SETTINGS)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=run_demo, **DEMO_CHANGES)
