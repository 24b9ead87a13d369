"""gensim's whole command, the yardstick of ``nce-lm skipgram`` timed as a user runs it (BENCHMARKS.md).

    python scripts/gensim_skipgram.py CORPUS OUTPUT [--model skipgram|cbow] [--threads 2] [--sample 1e-4]
        [--epochs 5] [--seed 1]

Reads CORPUS (plain or .gz: one sentence per line, as ``nce-lm skipgram`` reads it) with gensim's
``corpus_file`` input, trains ``Word2Vec`` with the settings ``scripts/bench_skipgram.py`` gives both tools
(negative sampling, k = 5, d = 100, window 5, min_count 5), and writes the vectors in word2vec binary format:
start-up, vocabulary, training and export, the same steps as our command. ``corpus_file`` needs an
uncompressed file, so a .gz corpus is first decompressed to a temporary file (counted in the time, as our
command's reading of the .gz is).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("corpus", type=Path)
    options.add_argument("output", type=Path)
    options.add_argument("--model", choices=("skipgram", "cbow"), default="skipgram")
    options.add_argument("--threads", type=int, default=2)
    options.add_argument("--sample", type=float, default=1e-4)
    options.add_argument("--epochs", type=int, default=5)
    options.add_argument("--seed", type=int, default=1)
    args = options.parse_args()
    from gensim.models import Word2Vec

    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus
        if corpus.suffix == ".gz":
            corpus = Path(scratch) / corpus.stem
            with gzip.open(args.corpus, "rb") as source, open(corpus, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        cbow = args.model == "cbow"
        model = Word2Vec(
            corpus_file=str(corpus),
            sg=0 if cbow else 1,
            cbow_mean=1,
            hs=0,
            negative=5,
            vector_size=100,
            window=5,
            min_count=5,
            sample=args.sample,
            alpha=0.05 if cbow else 0.025,
            epochs=args.epochs,
            workers=args.threads,
            seed=args.seed,
        )
    model.wv.save_word2vec_format(str(args.output), binary=True)


if __name__ == "__main__":
    main()
