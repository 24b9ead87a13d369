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
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main
from nce_lm.lm import LMConfig, train_lm
from nce_lm.pipeline.synth import TeacherConfig, write_corpus
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.vectors.word_vectors import WordVectors

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
    (["eval-vectors", "pickle.bin"], "pickle.bin is a pickle (gensim's native format), which runs code when loaded"),
    (
        ["eval-vectors", "trap.kv"],
        "trap.kv is a pickle (gensim's native format), which runs code when loaded; if you "
        "trust the file's source, add --trust-pickle (Python: trust_pickle=True)",
    ),
    (["eval-vectors", "trap.kv", "--format", "gensim"], "the gensim format is a pickle"),
    (["neighbors", "trap.kv", "the"], "trap.kv is a pickle (gensim's native format)"),
    (["neighbors", "trap.model", "the", "--format", "gensim-model"], "the gensim-model format is a pickle"),
    (["eval-vectors", "pickle.bin", "--format", "gensim", "--trust-pickle"], "cannot load gensim vectors from"),
    (["eval-vectors", "huge.bin"], "take at least"),
    (["eval-vectors", "nan.txt"], "holds NaN"),
    (["eval-vectors", "latin1.txt"], "line 3 is not valid UTF-8 (byte 0xe9); use errors='replace'"),
    (["eval-vectors", "vec.bin", "--similarity", "latin1_pairs.txt"], "invalid UTF-8 at byte offset 6 (byte 0xe9)"),
    (["neighbors", "latin1.txt", "a"], "line 3 is not valid UTF-8"),
    (["eval-vectors", "vec.bin", "--restrict-vocab", "0"], "--restrict-vocab"),
    (["eval-vectors", "vec.bin", "--analogies", "absent.txt"], "not found"),
    (["eval-vectors", "vec.bin", "--format", "glove"], "invalid choice"),
    (["eval-vectors", "vec.bin", "--format", "gensim"], "add --trust-pickle"),
    (["eval-vectors", "vec.bin", "--format", "gensim", "--trust-pickle"], "cannot load gensim vectors"),
    (["eval-vectors", "absent.bin"], "not found"),
    # neighbors
    (["neighbors", "vec.bin", "a0", "-k", "0"], "-k: must be at least 1"),
    (["neighbors", "vec.bin", "a0", "-k", "10"], "more neighbours than"),
    (["neighbors", "vec.bin", "nosuchword"], "not in the vectors"),
    (["neighbors", "pickle.bin", "a0"], "is a pickle"),
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
    (
        ["lm", "train", *LM, "-o", "new", "--epochs", "1", "--lr", "1e6", "--optimizer", "adam-rowwise"],
        "nothing was kept",
    ),
    (["lm", "train", *LM, "-o", "new", "--optimizer", "adam_rowwise"], "invalid choice"),
    (["lm", "train", *LM, "-o", "new", "--table-lr", "0"], "--table-lr"),
    (["lm", "train", *LM, "-o", "new", "--table-lr", "nan"], "--table-lr"),
    (["lm", "train", *LM, "-o", "new", "--table-lr", "0.1", "--optimizer", "adam"], "table_lr sets adam-rowwise's"),
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
    (["lm", "eval", "run", "--data", C, "--plot", C], "is the input"),
    # lm score
    (["lm", "score", "absent", C], "run folder not found"),
    (["lm", "score", "run", "empty.txt"], "no sentences in empty.txt"),
    (["lm", "score", "run", "blank.txt"], "every line is blank"),
    (["lm", "score", "run", "absent.txt"], "not found"),
    (["lm", "score", "run", C, "-o", C], "is the input"),
    (["lm", "score", "run", C, "-o", "run/best.pt"], "is the input"),
    (["lm", "score", "run", C, "--checkpoint", "middle"], "invalid choice"),
    (["lm", "score", "run_badcfg", C], "dim must be int"),
    (["lm", "score", "run"], "arguments are required"),
    # lm sample
    (["lm", "sample", "absent"], "run folder not found"),
    (["lm", "sample", "run", "-n", "0"], "-n/--tokens: must be at least 1"),
    (["lm", "sample", "run", "--temperature", "0"], "--temperature: must be a finite number greater than 0"),
    (["lm", "sample", "run", "--top-k", "0"], "--top-k: must be at least 1"),
    (["lm", "sample", "run", "--seed", "-1"], "--seed"),
    (["lm", "sample", "run_othervocab"], "another vocabulary"),
    # plot
    (["plot", "absent", "-o", "c.png"], "run folder not found"),
    (["plot", "corpus", "-o", "c.png"], "run config file not found"),
    (["plot", "run_nometrics", "-o", "c.png"], "neither log.jsonl nor metrics.json"),
    (["plot", "run", "-o", "run/metrics.json"], "is the input"),
    (["plot", "run"], "-o/--output"),
    # synth
    ([*SYNTH[:3], "--vocab", "1", "--tokens", "500"], "--vocab: must be between 2 and"),
    ([*SYNTH, "--zipf", "inf"], "--zipf: must be a finite number"),
    ([*SYNTH, "--mean-line", "nan"], "--mean-line"),
    ([*SYNTH, "--mix", "2"], "--mix"),
    ([*SYNTH, "--classes", "99"], "classes must be between"),
    ([*SYNTH, "--device", "cuda:x"], "device must be"),
    (["synth", "-o", C, "--vocab", "50", "--tokens", "500", "--quiet"], "not a folder"),
    (["synth", "-o", "s", "--vocab", "50", "--tokens", "100", "--mean-line", "200", "--quiet"], "too few"),
    # issue 29: a newcomer's slips, each pointing the right way
    (["lm", "train", "--data", "wikitext2", "-o", "runs/x"], "unknown dataset 'wikitext2' (did you mean wikitext-2?)"),
    (["lm", "train", "--data", "nosuch", "-o", "runs/x"], "unknown dataset 'nosuch'; known: ptb, wikitext-2"),
    (["lm", "train", "--train", C, "-o", "runs/deeper/x"], "no validation data"),  # runs/ is removed again
    (
        ["lm", "train", "--data", "ids", "-o", "runs/x"],
        "token cache from `nce-lm prepare`, not a corpus: give it with --cache ids",
    ),
    (["lm", "train", "--train", "ids", "--valid", C, "-o", "new"], "give it with --cache ids"),
    (["lm", "eval", "run", "--data", "wikitext2"], "unknown dataset 'wikitext2' (did you mean wikitext-2?)"),
    (["skipgram", "wikitext2", "-o", "runs/v.bin"], "corpus file not found: wikitext2 (the dataset wikitext-2?"),
    (
        ["skipgram", "ids", "-o", "out.bin"],
        "ids is a token cache from `nce-lm prepare`, not a corpus: give it with --cache ids",
    ),
    (["vocab", "ids", "-o", "v2.json"], "not a corpus: give the text it was prepared from"),
    (["prepare", "ids", "--vocab", "v.json", "-o", "ids2"], "not a corpus"),
    ([*SG, "--dimensions", "50"], "unrecognized arguments: --dimensions 50 (did you mean --dim?)"),
    ([*SG, "--negative", "10"], "unrecognized arguments: --negative 10 (did you mean --negatives?)"),
    ([*SG, "--epoch=2"], "unrecognized arguments: --epoch=2 (did you mean --epochs?)"),
    (["lm", "train", *LM, "-o", "new", "--noise-sample", "4"], "(did you mean --noise-samples?)"),
    (
        ["eval-vectors", "vec.bin", "--restrict", "5"],
        "unrecognized arguments: --restrict 5 (did you mean --restrict-vocab?)",
    ),
    (["vocab", C, "-o", "v2.json", "--min", "2"], "(did you mean --min-count?)"),
    (["prepare", C, "--vocab", "v.json", "-o", "ids2", "--quite"], "(did you mean --quiet?)"),
    (["neighbors", "vec.bin", "a0", "--forma", "auto"], "(did you mean --format?)"),
    (["data", "list", "--data", "dd"], "(did you mean --data-dir?)"),
    ([*SYNTH, "--token", "500"], "(did you mean --tokens?)"),
    (["demo", C, "-o", "d", "--epoch", "1"], "(did you mean --epochs?)"),
    # issue 25: folders that are not the verb's own output, ranges, damaged and diverged files, control characters
    (["synth", "-o", "mine", *SYNTH[3:]], "-o mine holds notes.md, which `nce-lm synth` did not"),
    (["synth", "-o", "mine_link", *SYNTH[3:]], "remove this one first (rm -r mine_link) to replace it"),
    (["synth", "-o", "only_splits", *SYNTH[3:]], "holds files that `nce-lm synth` did not write"),
    ([*SYNTH, "--zipf", "1e6"], "below what float64 holds: at most 178.935 with this vocab"),
    (["prepare", C, "--vocab", "v.json", "-o", "mine"], "cache folder mine holds notes.md, train.txt, which"),
    (["lm", "train", *LM, "-o", "mine"], "holds notes.md, train.txt, which `nce-lm lm train`"),
    (["demo", C, "-o", "mine_link"], "holds notes.md, train.txt, which `nce-lm demo`"),
    ([*SG, "--negatives", "5000"], "--negatives: must be between 1 and 4,096"),
    ([*SG, "--lr", "1e300"], "--lr: must be a finite number greater than 0 and at most 10"),
    ([*SG, "--min-lr", "1e300"], "--min-lr: must be a finite number between 0 and 10"),
    ([*SG, "--sample", "1e300"], "--sample: must be a finite number between 0 and 1"),
    (["lm", "train", *LM, "-o", "new", "--lr", "1e300"], "--lr: must be a finite number"),
    ([*SG, "--resume", "raw.pt"], "corrupted or not a checkpoint"),
    (["prepare", C, "--vocab", "v_huge.json", "-o", "ids"], "more than a 64-bit count holds"),
    (["prepare", C, "--vocab", "v_nul.json", "-o", "ids"], "holds the control character U+0000"),
    (["vocab", "nul.txt", "-o", "v2.json"], "nul.txt: line 2 holds the control character U+0000 inside the token"),
    (["skipgram", "nul.txt", *SG[2:]], "nul.txt: line 2 holds the control character U+0000"),
    (["lm", "eval", "run_flipped", "--data", C], "corrupted checkpoint run_flipped/best.pt"),
    (["lm", "eval", "run_nan", "--data", C], "run_nan/best.pt holds non-finite weights"),
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


class CreatesAFile:
    """A hostile pickle's payload: unpickling it calls ``open(path, "w")`` (pickle's __reduce__)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    rng = np.random.default_rng(0)
    words = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    (root / "corpus").mkdir()
    (root / C).write_text("\n".join(" ".join(rng.choice(words, size=8)) for _ in range(60)) + "\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.txt").write_text("\n  \n\n")
    vocab = build_vocab([root / C])
    vocab.save(root / "v.json")
    (root / "vocab.json").write_text("the demo's own output name, given as its input\n")
    data = vocab.to_dict()
    (root / "v_zero.json").write_text(json.dumps({**data, "counts": [*data["counts"][:-1], 0]}))
    (root / "v_blank.json").write_text(json.dumps({**data, "tokens": [*data["tokens"][:-1], "a b"]}))
    (root / "v_types.json").write_text(json.dumps({**data, "counts": [str(c) for c in data["counts"]]}))
    vectors = WordVectors([f"a{i}" for i in range(10)], rng.normal(size=(10, 4)))
    vectors.save(root / "vec.bin", "word2vec-bin")
    (root / "pickle.bin").write_bytes(pickle.dumps({"not": "vectors"}, protocol=4))
    for name in ("trap.kv", "trap.model"):  # unpickled, creates the file SPRUNG: the workspace check sees it
        (root / name).write_bytes(pickle.dumps(CreatesAFile("SPRUNG"), protocol=4))
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
    shutil.copytree(root / "run", root / "run_nometrics")
    (root / "run_nometrics" / "metrics.json").unlink()
    (root / "run_nometrics" / "log.jsonl").unlink()
    shutil.copytree(root / "run", root / "run_othervocab")
    other = json.loads((root / "run" / "vocab.json").read_text())
    other["counts"][2] += 1
    (root / "run_othervocab" / "vocab.json").write_text(json.dumps(other))
    write_corpus(root / "s", 500, TeacherConfig(vocab=50, classes=8))
    assert main(["prepare", str(root / C), "--vocab", str(root / "v.json"), "-o", str(root / "ids"), "--quiet"]) == 0
    _issue_25_files(root, vocab.to_dict())
    return root


def _flip_tensor_bytes(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the largest tensor of the torch (zip) file ``path``: damage that
    leaves the file readable."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length + (record.file_size - count) // 2
    assert record.file_size >= count
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def _issue_25_files(root: Path, vocab: dict) -> None:
    """A user's folder (and a link to it), damaged and diverged runs, a raw pickle, control characters."""
    from nce_lm.lm.checkpoint import save_payload
    from nce_lm.pipeline.vocab import Vocab

    (root / "mine").mkdir()
    (root / "mine" / "notes.md").write_text("the user's notes\n")
    (root / "mine" / "train.txt").write_text("the user's text\n")
    (root / "mine_link").symlink_to("mine")
    (root / "only_splits").mkdir()
    (root / "only_splits" / "train.txt").write_text("the user's text, named like synth's\n")
    (root / "nul.txt").write_bytes(b"a0 a1 a2\na3 a\x00b a4\n")
    (root / "v_huge.json").write_text(json.dumps({**vocab, "counts": [*vocab["counts"][:-1], 10**30]}))
    (root / "v_nul.json").write_text(json.dumps({**vocab, "tokens": [*vocab["tokens"][:-1], "a\x00"]}))
    (root / "raw.pt").write_bytes(pickle.dumps({"format": "nce_lm.skipgram"}, protocol=4))
    shutil.copytree(root / "run", root / "run_flipped")
    _flip_tensor_bytes(root / "run_flipped" / "best.pt")
    shutil.copytree(root / "run", root / "run_nan")
    payload = torch.load(root / "run" / "best.pt", weights_only=True)
    next(iter(payload["model"].values()))[0] = float("nan")
    save_payload(root / "run_nan" / "best.pt", payload, Vocab.load(root / "run" / "vocab.json"))


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
    assert verbs == {"vocab", "prepare", "data", "skipgram", "eval-vectors", "neighbors", "lm", "synth", "demo", "plot"}


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
    assert "usage:" not in err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert _snapshot(workspace) == before


def test_a_real_process_prints_one_line_too(workspace: Path) -> None:
    """The console entry point, not just ``main``: argparse's and the library's errors alike."""
    for argv in (
        ["skipgram", C, "-o", "out.bin", "--threads", "100000"],
        ["eval-vectors", "pickle.bin"],
        [*SYNTH, "--zipf", "1e6"],  # numpy's RuntimeWarnings came first
        [*SG, "--resume", "raw.pt"],  # torch's UserWarning about the pickle protocol came first
    ):
        done = subprocess.run([sys.executable, "-m", "nce_lm", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"nce-lm {argv[0]}: error: ")


@pytest.mark.parametrize("budget", ["abc", "-5", "nan", "0", ""])
def test_a_memory_budget_that_is_not_a_number_of_bytes_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, budget: str
) -> None:
    monkeypatch.setenv("NCE_LM_MEMORY_BUDGET", budget)
    before = _snapshot(workspace)
    assert main(SG) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "NCE_LM_MEMORY_BUDGET must be a positive whole number of bytes" in lines[0]
    assert f"got {budget!r}" in lines[0]
    assert _snapshot(workspace) == before


def test_a_budget_below_the_estimate_names_the_variable_and_a_readable_size(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCE_LM_MEMORY_BUDGET", "1")
    assert main(SG) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "more than the 1 bytes of NCE_LM_MEMORY_BUDGET=1" in line and "0.0 GiB" not in line


@pytest.mark.parametrize("option, busy", [("-o", "out.bin"), ("--checkpoint", "c.pt")])
def test_a_file_another_run_is_writing_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str], option: str, busy: str
) -> None:
    """Two skipgram runs writing one file both ended with exit 0, the last one's file winning (issue 25)."""
    from nce_lm.locks import output_file_lock

    with output_file_lock({option: busy}):  # held as the first run holds it
        before = _snapshot(workspace)
        status = main([*SG, "--checkpoint", "c.pt"])
        lines = capsys.readouterr().err.splitlines()
        assert _snapshot(workspace) == before
    assert status == 2 and len(lines) == 1, lines
    assert f"{option} {busy} is being written by another process (pid {os.getpid()})" in lines[0]
    assert not list(workspace.glob(".*.lock"))  # the holder removed its lock file
