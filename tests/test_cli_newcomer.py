"""The command line as a newcomer meets it (issue 29): a resumed skip-gram run writes its state back, and the
verbs that need no training do not import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nce_lm.cli import main
from nce_lm.skipgram.checkpoint import load_checkpoint
from nce_lm.vectors.word_vectors import WordVectors

FAST = ["--dim", "6", "--window", "3", "--min-count", "1", "--quiet", "--threads", "1"]


def test_a_resume_without_checkpoint_writes_back_so_the_next_resume_goes_on(
    topic_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, vectors = str(tmp_path / "c.pt"), str(tmp_path / "v.bin")
    corpus = str(topic_corpus)
    assert main(["skipgram", corpus, "-o", vectors, "--epochs", "1", "--checkpoint", checkpoint, *FAST]) == 0
    for epochs in (2, 3):  # no --checkpoint: the --resume file is rewritten
        capsys.readouterr()
        assert main(["skipgram", corpus, "-o", vectors, "--resume", checkpoint, "--epochs", str(epochs)]) == 0
        assert f"{checkpoint} (checkpoint, for --resume)" in capsys.readouterr().out
        assert load_checkpoint(checkpoint)[2].epochs_done == epochs
    assert "--checkpoint names another" in " ".join(_help(["skipgram", "--help"]).split())


def _help(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "nce_lm", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_verbs_that_train_nothing_do_not_import_torch(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c a b\nb c a\n")
    WordVectors(["a", "b", "c"], np.eye(3)).save(tmp_path / "v.bin", format="word2vec-bin")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a b 1\nb c 2\na c 3\n")
    commands = [
        ["--help"],
        ["vocab", str(corpus), "-o", str(tmp_path / "v.json"), "--quiet"],
        ["prepare", str(corpus), "--vocab", str(tmp_path / "v.json"), "-o", str(tmp_path / "ids"), "--quiet"],
        ["data", "list"],
        ["eval-vectors", str(tmp_path / "v.bin"), "--similarity", str(pairs), "--quiet"],
        ["neighbors", str(tmp_path / "v.bin"), "a"],
    ]
    script = (
        "import sys\nfrom nce_lm.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    for argv in commands:
        done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
        imported = done.stderr.splitlines()[-1]
        assert imported == "False", (argv, done.stderr)
