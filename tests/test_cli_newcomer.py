"""The command line as a newcomer meets it (issues 28, 29): a resumed skip-gram run writes its state back, the
verbs that need no training do not import torch, nor a CPU skip-gram run on the fused kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nce_lm.cli import main
from nce_lm.objectives.kinds import NoiseClassifier
from nce_lm.skipgram import kernel as skipgram_kernel
from nce_lm.skipgram.checkpoint import load_checkpoint
from nce_lm.skipgram.trainer import train_skipgram
from nce_lm.vectors.word_vectors import WordVectors

NO_TORCH_SCRIPT = (  # runs nce-lm with its arguments, then says on stderr whether torch was imported
    "import sys\nfrom nce_lm.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('torch' in sys.modules, file=sys.stderr)"
)
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
    for argv in commands:
        assert _imports_torch(argv) == "False", argv


def _imports_torch(argv: list[str]) -> str:
    """ "True" or "False": whether ``nce-lm argv``, run in a fresh interpreter that sees no GPU, imported torch."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # --device auto: the CPU, known without torch
    command = [sys.executable, "-c", NO_TORCH_SCRIPT, *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    return done.stderr.splitlines()[-1] if done.stderr else f"no output, exit {done.returncode}"


def test_a_cpu_skipgram_run_on_the_fused_kernel_does_not_import_torch_unless_it_checkpoints(tmp_path: Path) -> None:
    """``skipgram --help`` and a CPU run on the fused kernel (the default there) import no torch, and write the vectors
    an in-process run (with torch) trains; asked for --checkpoint, a run imports torch to write it, and works."""
    if skipgram_kernel.unavailable_reason("cpu", 1, NoiseClassifier("binary", None)) is not None:
        pytest.skip("the fused kernel was not built")
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 200)
    run = ["skipgram", str(corpus), "--epochs", "2", "--dim", "8", "--min-count", "1", "--quiet"]
    assert _imports_torch(["skipgram", "--help"]) == "False"
    for model in ("skipgram", "cbow"):
        vectors = tmp_path / f"{model}.bin"
        assert _imports_torch([*run, "--model", model, "-o", str(vectors)]) == "False", model
        expected = train_skipgram(corpus, progress=False, epochs=2, dim=8, min_count=1, model=model).vectors
        written = WordVectors.load(vectors)
        assert written.words == expected.words
        np.testing.assert_array_equal(written.vectors, expected.vectors)  # bit for bit, torch or not
    checkpoint = tmp_path / "c.pt"
    with_checkpoint = [*run, "-o", str(tmp_path / "v.bin"), "--checkpoint", str(checkpoint)]
    assert _imports_torch(with_checkpoint) == "True"
    _, vocab, state = load_checkpoint(checkpoint)
    assert state.epochs_done == 2
    words = WordVectors.load(tmp_path / "v.bin")
    np.testing.assert_array_equal(state.input_vectors.numpy()[2:], words.vectors)
    assert vocab.tokens[2:] == words.words
