"""Every verb, fed bad or hostile input: exit status 2, one line on stderr, no traceback, nothing written.

Each case runs ``nce-lm`` in a fresh copy of one workspace (a corpus, a vocabulary, vectors, a trained
language-model run, a synthetic corpus, damaged variants of each) and compares every file and folder of the
workspace, hidden ones included, before and after: names, sizes, modification times and contents. The
expected fragment of the message pins the refusal to the check that should make it (issue 15).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nce_lm.cli import main
from nce_lm.lm import LMConfig, train_lm
from nce_lm.pipeline.synth import TeacherConfig, write_corpus
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.vectors.word_vectors import WordVectors, save_vectors

C = "corpus/c.txt"
LM = ["--train", C, "--valid", C, "--dim", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "8", "--quiet"]
SG = ["skipgram", C, "-o", "out.bin", "--min-count", "1", "--dim", "4", "--epochs", "1", "--quiet"]
SYNTH = ["synth", "-o", "s", "--vocab", "50", "--tokens", "500", "--quiet"]

CASES: list[tuple[list[str], str]] = [
    # vocab
    (["vocab", C, "-o", C], "is the input"),
    (["vocab", "corpus", "-o", C], "is the input"),
    (["vocab", C, "-o", "hard.txt"], "is the input"),  # a hard link to the corpus
    (["vocab", C, "-o", "corpus"], "is a folder"),
    (["vocab", C, "-o", f"{C}/v.json"], "is a file, not a folder"),
    (["vocab", C, "-o", "v2.json", "--min-count", "0"], "--min-count: must be at least 1"),
    (["vocab", C, "-o", "v2.json", "--min-count", "x"], "expected an integer"),
    (["vocab", C, "-o", "v2.json", "--max-size", "2"], "--max-size: must be at least 3"),
    (["vocab", C, "-o", "v2.json", "--max-distinct", "0"], "--max-distinct"),
    (["vocab", C, "-o", "v2.json", "--min-count", "100000"], "vocabulary is empty"),
    (["vocab", "absent.txt", "-o", "v2.json"], "not found"),
    (["vocab", "empty.txt", "-o", "v2.json"], "vocabulary is empty"),
    # prepare
    (["prepare", C, "--vocab", "v.json", "-o", "corpus"], "holds the input"),
    (["prepare", C, "--vocab", "v.json", "-o", "."], "holds the input"),
    (["prepare", C, "--vocab", C, "-o", "ids"], "vocabulary"),
    (["prepare", C, "--vocab", "v_zero.json", "-o", "ids"], "every word was seen at least once"),
    (["prepare", C, "--vocab", "v_blank.json", "-o", "ids"], "empty or holds whitespace"),
    (["prepare", C, "--vocab", "v_types.json", "-o", "ids"], "must be a list of integers"),
    (["prepare", C, "--vocab", "absent.json", "-o", "ids"], "not found"),
    (["prepare", "empty.txt", "--vocab", "v.json", "-o", "ids"], "is empty"),
    (["prepare", C, "--vocab", "v.json", "-o", "v.json"], "holds the input"),
    (["prepare", "--vocab", "v.json", "-o", "ids"], "arguments are required"),
    # data
    (["data", "path"], "needs a dataset name"),
    (["data", "path", "nosuch"], "invalid choice"),
    (["data", "fetch", "wikitext-103", "--data-dir", "dd"], "--allow-unverified"),
    (["data", "fetch", "text8", "--data-dir", "dd"], "--allow-unverified"),
    # skipgram
    ([*SG[:2], "-o", C, *SG[4:]], "is the input"),
    ([*SG, "--checkpoint", C], "is the input"),
    ([*SG, "--metrics", C], "is the input"),
    ([*SG, "--metrics", "out.bin"], "name the same file"),
    ([*SG[:2], "-o", "corpus", *SG[4:]], "is a folder"),
    ([*SG, "--cache-dir", "corpus"], "holds the input"),
    ([*SG[:2], "-o", f"{C}/sub/v.bin", *SG[4:]], "is a file, not a folder"),  # before training, not after
    (["lm", "train", *LM, "-o", f"{C}/run"], "is a file, not a folder"),
    ([*SG, "--threads", "100000"], "--threads: must be between 1 and"),
    ([*SG, "--threads", "0"], "--threads"),
    ([*SG, "--dim", "0"], "--dim"),
    ([*SG, "--dim", "3000000000"], "32-bit"),
    ([*SG, "--window", "0"], "--window"),
    ([*SG, "--window", "2000000000"], "GiB"),  # the memory budget, before the pairs are allocated
    ([*SG, "--negatives", "-1"], "--negatives"),
    ([*SG, "--lr", "1e309"], "--lr: must be a finite number"),
    ([*SG, "--lr", "nan"], "--lr: must be a finite number"),
    ([*SG, "--lr", "0"], "--lr"),
    ([*SG, "--sample", "-1"], "--sample"),
    ([*SG, "--noise-power", "2"], "--noise-power"),
    ([*SG, "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    ([*SG, "--device", "cuda:x"], "device must be"),
    ([*SG, "--batch-size", "0"], "--batch-size"),
    ([*SG, "--epochs", "0"], "--epochs"),
    ([*SG, "--seed", "-1"], "--seed"),
    ([*SG, "--resume", C], "corrupted or not a checkpoint"),
    (["skipgram", "absent.txt", "-o", "out.bin", "--quiet"], "not found"),
    (["skipgram", "empty.txt", "-o", "out.bin", "--quiet"], "vocabulary is empty"),
    # eval-vectors
    (["eval-vectors", "vec.bin", "--metrics", "vec.bin"], "is the input"),
    (["eval-vectors", "vec.bin", "--metrics", "corpus"], "is a folder"),
    (["eval-vectors", "pickle.bin"], "looks like a pickle"),
    (["eval-vectors", "huge.bin"], "take at least"),
    (["eval-vectors", "nan.txt"], "holds NaN"),
    (["eval-vectors", "latin1.txt"], "line 3 is not valid UTF-8 (byte 0xe9); use errors='replace'"),
    (["eval-vectors", "vec.bin", "--similarity", "latin1_pairs.txt"], "invalid UTF-8 at byte offset 6 (byte 0xe9)"),
    (["neighbors", "latin1.txt", "a"], "line 3 is not valid UTF-8"),
    (["eval-vectors", "vec.bin", "--restrict-vocab", "0"], "--restrict-vocab"),
    (["eval-vectors", "vec.bin", "--analogies", "absent.txt"], "not found"),
    (["eval-vectors", "vec.bin", "--format", "glove"], "invalid choice"),
    (["eval-vectors", "vec.bin", "--format", "gensim"], "cannot load gensim vectors"),
    (["eval-vectors", "absent.bin"], "not found"),
    # neighbors
    (["neighbors", "vec.bin", "a0", "-k", "0"], "-k: must be at least 1"),
    (["neighbors", "vec.bin", "a0", "-k", "10"], "more neighbours than"),
    (["neighbors", "vec.bin", "nosuchword"], "not in the vectors"),
    (["neighbors", "pickle.bin", "a0"], "looks like a pickle"),
    (["neighbors", "vec.bin"], "arguments are required"),
    (["neighbors", "huge.bin", "a0", "--format", "word2vec-txt"], "take at least"),
    # lm train
    (["lm", "train", *LM, "-o", "corpus"], "holds the input"),
    (["lm", "train", *LM, "-o", "new", "--metrics", C], "is the input"),
    (["lm", "train", *LM, "-o", "new", "--noise-samples", "1000000000"], "at most the vocabulary size"),
    (["lm", "train", *LM, "-o", "new", "--noise-samples", "20", "--batch-size", "100000000"], "GiB"),
    (["lm", "train", *LM, "-o", "new", "--dropout", "1.5"], "--dropout"),
    (["lm", "train", *LM, "-o", "new", "--lr", "1e309"], "--lr"),
    # a diverging run stops with its error, and presents no best.pt (issue 25)
    (["lm", "train", *LM, "-o", "new", "--epochs", "1", "--lr", "1e6", "--optimizer", "sgd"], "nothing was kept"),
    (["lm", "train", *LM, "-o", "new", "--epochs", "1", "--lr", "1e6", "--optimizer", "adam"], "nothing was kept"),
    (["lm", "train", *LM, "-o", "new", "--epochs", "1", "--lr", "1e6", "--objective", "full"], "nothing was kept"),
    (["lm", "train", *LM, "-o", "new", "--valid-tokens", "0"], "--valid-tokens: must be at least 1"),
    (["lm", "train", *LM, "-o", "new", "--log-every", "x"], "--log-every: expected an integer"),
    (["lm", "train", *LM, "-o", "new", "--device", "bogus"], "device must be"),
    (["lm", "train", *LM, "-o", "new", "--seq-len", "0"], "--seq-len"),
    (["lm", "train", *LM, "-o", "new", "--clip", "0"], "--clip"),
    (["lm", "train", *LM, "-o", "new", "--lr-decay", "0.5"], "--lr-decay"),
    (["lm", "train", *LM, "-o", "new", "--heads", "3", "--model", "transformer"], "not divisible"),
    (["lm", "train", *LM, "-o", "run"], "already holds a run"),
    (["lm", "train", "--train", "absent.txt", "--valid", C, "-o", "new"], "not found"),
    (["lm", "train", "--train", C, "-o", "new"], "no validation data"),
    (["lm", "train", "--resume", "run", "--dim", "32"], "may change"),
    (["lm", "train", "--resume", "run", "--epochs", "2", "--metrics", "run/last.pt"], "is the input"),
    (["lm", "train", "--resume", "run_badcfg", "--epochs", "3"], "dim must be int"),
    # lm eval
    (["lm", "eval", "run", "--data", C, "--metrics", "run/config.json"], "is the input"),
    (["lm", "eval", "absent", "--data", C], "run folder not found"),
    (["lm", "eval", "run_badcfg", "--data", C], "dim must be int"),
    (["lm", "eval", "run_othervocab", "--data", C], "another vocabulary"),
    (["lm", "eval", "run", "--data", "absent.txt"], "not found"),
    (["lm", "eval", "run", "--data", C, "--device", "tpu"], "device must be"),
    # synth
    ([*SYNTH[:3], "--vocab", "1", "--tokens", "500"], "--vocab: must be between 2 and"),
    ([*SYNTH, "--zipf", "inf"], "--zipf: must be a finite number"),
    ([*SYNTH, "--mean-line", "nan"], "--mean-line"),
    ([*SYNTH, "--mix", "2"], "--mix"),
    ([*SYNTH, "--classes", "99"], "classes must be between"),
    ([*SYNTH, "--device", "cuda:x"], "device must be"),
    (["synth", "-o", C, "--vocab", "50", "--tokens", "500", "--quiet"], "not a folder"),
    (["synth", "-o", "s", "--vocab", "50", "--tokens", "100", "--mean-line", "200", "--quiet"], "too few"),
    # demo
    (["demo", C, "-o", "d", "--dim", "0"], "--dim"),
    (["demo", C, "-o", "d", "--threads", "100000"], "--threads"),
    (["demo", "vocab.json", "-o", "."], "is the input"),
]


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too): kind, size, modification time and sha256 of files."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(root))] = (
            path.is_dir(),
            stat.st_size if path.is_file() else 0,
            stat.st_mtime_ns,
            stat.st_mode,
            digest,
        )
    return state


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    rng = np.random.default_rng(0)
    words = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    (root / "corpus").mkdir()
    (root / C).write_text("\n".join(" ".join(rng.choice(words, size=8)) for _ in range(60)) + "\n")
    (root / "empty.txt").write_bytes(b"")
    vocab = build_vocab([root / C])
    vocab.save(root / "v.json")
    (root / "vocab.json").write_text("the demo's own output name, given as its input\n")
    data = vocab.to_dict()
    (root / "v_zero.json").write_text(json.dumps({**data, "counts": [*data["counts"][:-1], 0]}))
    (root / "v_blank.json").write_text(json.dumps({**data, "tokens": [*data["tokens"][:-1], "a b"]}))
    (root / "v_types.json").write_text(json.dumps({**data, "counts": [str(c) for c in data["counts"]]}))
    vectors = WordVectors([f"a{i}" for i in range(10)], rng.normal(size=(10, 4)))
    save_vectors(vectors, root / "vec.bin", "word2vec-bin")
    (root / "pickle.bin").write_bytes(pickle.dumps({"not": "vectors"}, protocol=4))
    (root / "huge.bin").write_bytes(b"1000000000 1000000000\na " + b"\0" * 16 + b"\n")
    (root / "nan.txt").write_text("2 2\na 1 2\nb nan 1\n")
    (root / "latin1.txt").write_bytes("2 2\na 1 2\ncaf\u00e9 2 1\n".encode("latin-1"))
    (root / "latin1_pairs.txt").write_bytes("a0 caf\u00e9 1.0\na1 a2 2.0\n".encode("latin-1"))
    config = LMConfig(
        train=str(root / C),
        valid=str(root / C),
        dim=8,
        layers=1,
        seq_len=8,
        batch_size=4,
        epochs=1,
        noise_samples=4,
        progress=False,
        is_samples=4,
        eval_batch_size=2,
        device="cpu",
    )
    train_lm(config, root / "run")
    shutil.rmtree(root / "run" / "cache")
    shutil.copytree(root / "run", root / "run_badcfg")
    bad = json.loads((root / "run_badcfg" / "config.json").read_text())
    (root / "run_badcfg" / "config.json").write_text(json.dumps({**bad, "dim": "x"}))
    shutil.copytree(root / "run", root / "run_othervocab")
    other = json.loads((root / "run" / "vocab.json").read_text())
    other["counts"][2] += 1
    (root / "run_othervocab" / "vocab.json").write_text(json.dumps(other))
    write_corpus(root / "s", 500, TeacherConfig(vocab=50, classes=8))
    return root


@pytest.fixture
def workspace(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "w"
    shutil.copytree(template, root, symlinks=True)
    os.link(root / C, root / "hard.txt")
    monkeypatch.chdir(root)
    return root


def test_there_are_at_least_sixty_cases_across_every_verb() -> None:
    assert len(CASES) >= 60
    verbs = {argv[0] for argv, _ in CASES}
    assert verbs == {"vocab", "prepare", "data", "skipgram", "eval-vectors", "neighbors", "lm", "synth", "demo"}


@pytest.mark.parametrize("argv, fragment", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(
    workspace: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    before = _snapshot(workspace)
    status = main(argv)
    err = capsys.readouterr().err
    verb = " ".join(argv[:2]) if argv[0] == "lm" else argv[0]
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"nce-lm {verb}: error: "), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert _snapshot(workspace) == before


def test_a_real_process_prints_one_line_too(workspace: Path) -> None:
    """The console entry point, not just ``main``: argparse's and the library's errors alike."""
    for argv in (["skipgram", C, "-o", "out.bin", "--threads", "100000"], ["eval-vectors", "pickle.bin"]):
        done = subprocess.run([sys.executable, "-m", "nce_lm", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"nce-lm {argv[0]}: error: ")
