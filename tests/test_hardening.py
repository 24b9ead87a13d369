"""Issue 15's findings, one test each (finding 1 is in test_vectors.py, finding 7 is the whole of
test_cli_bad_inputs.py, finding 6 belongs to the resume work of issue 16), each reproducing what went wrong.

1. a pickle named like word2vec vectors ran code: ``test_vectors.test_a_pickle_is_loaded_only_with_trust_pickle``;
   issue 25: a ``.kv`` file was unpickled because of its name: :func:`test_25_a_kv_file_is_not_unpickled_for_its_name`
2. outputs overwrote inputs: :func:`test_2_an_output_never_overwrites_an_input`
3. a failed synth replaced good splits: :func:`test_3_a_failed_synth_leaves_the_folder_as_it_was`
4. no locks: :func:`test_4_a_folder_in_use_is_refused_naming_the_process`
5. hard crashes: :func:`test_5_absurd_settings_and_diverged_models_end_in_one_line`
8. silent acceptance: :func:`test_8_damaged_files_we_wrote_are_refused_or_rebuilt`
9. leftovers: :func:`test_9_stale_temporaries_of_killed_runs_are_removed`
10. private files, read-only runs: :func:`test_10_files_follow_the_umask` and
    :func:`test_10_lm_eval_reads_a_run_folder_it_cannot_write`
11. unverified downloads: :func:`test_11_downloads_are_verified_https_and_bounded`

Issue 25's findings outside the training loops are cases of test_cli_bad_inputs.py (foreign output folders,
ranges, damaged and diverged checkpoints, control characters, the memory budget, output-file locks) and the
``test_25_*`` functions here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import LMConfig, train_lm
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import build_model
from nce_lm.locks import folder_lock
from nce_lm.pipeline.synth import TeacherConfig, write_corpus
from nce_lm.pipeline.token_cache import IDS_FILE, MANIFEST_FILE, load_or_build
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.training.checkpoint import CHECKSUM_KEY


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("hardening") / "c.txt"
    path.write_text("\n".join(" ".join(rng.choice([f"w{i}" for i in range(12)], size=8)) for _ in range(80)) + "\n")
    return path


def _lm_config(corpus: Path, **changes) -> LMConfig:
    base = dict(
        train=str(corpus),
        valid=str(corpus),
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
    return LMConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run") / "run"
    train_lm(_lm_config(corpus), folder)
    return folder


def _dead_pid() -> int:
    """A process id that no process has now: a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_2_an_output_never_overwrites_an_input(corpus: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    text = folder / "c.txt"
    shutil.copy(corpus, text)
    original = text.read_bytes()
    vocab = tmp_path / "v.json"
    assert main(["vocab", str(text), "-o", str(vocab)]) == 0
    for argv in (
        ["vocab", str(text), "-o", str(text)],
        ["skipgram", str(text), "-o", str(text), "--min-count", "1", "--quiet"],
        ["skipgram", str(text), "-o", str(tmp_path / "o.bin"), "--checkpoint", str(text), "--quiet"],
        ["prepare", str(text), "--vocab", str(vocab), "-o", str(folder)],
    ):
        assert main(argv) == 2
    assert text.read_bytes() == original and sorted(p.name for p in folder.iterdir()) == ["c.txt"]
    with pytest.raises(NceLmError, match="holds the input"):
        load_or_build([text], build_vocab([text]), folder)


def test_3_a_failed_synth_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "s"
    write_corpus(out, 500, TeacherConfig(vocab=50, classes=8))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(NceLmError, match="too few"):
        write_corpus(out, 100, TeacherConfig(vocab=50, classes=8, mean_line=200.0))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no staging folder left
    report = write_corpus(out, 5000, TeacherConfig(vocab=50, classes=8, seed=2))  # a success replaces all four
    assert json.loads((out / "teacher.json").read_text())["tokens"] == report["tokens"]
    assert sum(len((out / f"{s}.txt").read_text().split("\n")) - 1 for s in ("train", "valid", "test")) == sum(
        report["lines"].values()
    )


def test_4_a_folder_in_use_is_refused_naming_the_process(corpus: Path, run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "new"
    with (
        folder_lock(out, "run folder"),
        pytest.raises(NceLmError, match=f"in use by another process \\(pid {os.getpid()}\\)"),
    ):
        train_lm(_lm_config(corpus), out)
    vocab = tmp_path / "v.json"
    build_vocab([corpus]).save(vocab)
    with folder_lock(tmp_path / "ids", "token cache"):
        assert main(["prepare", str(corpus), "--vocab", str(vocab), "-o", str(tmp_path / "ids")]) == 2
    assert f"(pid {os.getpid()})" in capsys.readouterr().err
    with folder_lock(tmp_path / "ids", "token cache", shared=True):  # readers share a cache
        assert main(["prepare", str(corpus), "--vocab", str(vocab), "-o", str(tmp_path / "ids2")]) == 0


def test_5_absurd_settings_and_diverged_models_end_in_one_line(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    from nce_lm.skipgram.trainer import SkipGramConfig

    with pytest.raises(NceLmError, match="threads must be between 1 and"):
        SkipGramConfig(threads=100_000).validate()  # segfaulted the kernel
    with pytest.raises(NceLmError, match="at most the vocabulary size"):
        train_lm(_lm_config(corpus, noise_samples=1_000_000_000), tmp_path / "k")  # was killed by the OOM killer
    assert not (tmp_path / "k").exists()
    # A diverged model (--lr 1e6): its perplexity is inf, not math.exp's OverflowError.
    config = _lm_config(corpus, tie_weights=False)
    model = build_model(config.resolved(20), 20, torch.zeros(20))
    with torch.no_grad():
        model.output_bias[0] = 1e4  # every target but id 0 has log p ≈ −10⁴
    ids = np.random.default_rng(0).integers(1, 20, size=50).astype(np.int32)
    figures = evaluate_model(model, ids, 2, 8)
    assert figures["ppl"] == math.inf and 9_000 < figures["nll"] < 11_000
    # A validation loss that is not a number stops the run, with the advice, before a checkpoint records it.
    monkeypatch.setattr("nce_lm.lm.train.evaluate_model", lambda *a, **k: {"nll": math.nan, "ppl": math.nan})
    with pytest.raises(NceLmError, match="validation loss became nan after epoch 1.*lower --lr"):
        train_lm(_lm_config(corpus), tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_8_damaged_files_we_wrote_are_refused_or_rebuilt(corpus: Path, tmp_path: Path) -> None:
    vocab = build_vocab([corpus])
    cache = tmp_path / "ids"
    first = load_or_build([corpus], vocab, cache)
    good = np.array(first.ids)
    # Another vocabulary's ids under this manifest (what two concurrent prepares could leave): out of range.
    bad = np.full_like(good, len(vocab) + 5)
    np.save(cache / IDS_FILE, bad)
    manifest = json.loads((cache / MANIFEST_FILE).read_text())
    stat = (cache / IDS_FILE).stat()
    manifest["ids_file"] = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}  # only the range check is left
    (cache / MANIFEST_FILE).write_text(json.dumps(manifest))
    again = load_or_build([corpus], vocab, cache)
    assert not again.reused and np.array_equal(again.ids, good)
    manifest = json.loads((cache / MANIFEST_FILE).read_text())
    (cache / MANIFEST_FILE).write_text(json.dumps({**manifest, "lines": "many"}))  # would break prepare's summary
    assert not load_or_build([corpus], vocab, cache).reused
    from nce_lm.skipgram.trainer import SkipGramConfig, load_checkpoint, train_skipgram

    checkpoint = tmp_path / "c.pt"
    train_skipgram(
        [corpus], SkipGramConfig(dim=4, epochs=1, min_count=1, threads=1), progress=False, checkpoint=checkpoint
    )
    payload = torch.load(checkpoint, weights_only=True)
    del payload[CHECKSUM_KEY]  # crafted files without a checksum, as written before it existed
    torch.save({**payload, "input_vectors": [[0.0] * 4]}, checkpoint)
    with pytest.raises(NceLmError, match="not tensors"):
        load_checkpoint(checkpoint)
    torch.save(
        {**payload, "vocab": {**payload["vocab"], "counts": [c + 1 for c in payload["vocab"]["counts"]]}}, checkpoint
    )
    with pytest.raises(NceLmError, match="does not match the fingerprint"):
        load_checkpoint(checkpoint)
    with pytest.raises(NceLmError, match="zipf must be finite"):
        TeacherConfig(zipf=math.inf).validate()  # gave a NaN floor
    with pytest.raises(NceLmError, match="is empty"):
        (tmp_path / "empty.txt").write_bytes(b"")
        load_or_build([tmp_path / "empty.txt"], vocab, tmp_path / "empty-ids")
    assert not (tmp_path / "empty-ids").exists()


def test_9_stale_temporaries_of_killed_runs_are_removed(corpus: Path, tmp_path: Path) -> None:
    from nce_lm.skipgram.trainer import IDS_TEMP_PREFIX, SkipGramConfig, train_skipgram

    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".v.json.pid{dead}-abc123.tmp"
    live = tmp_path / f".v.json.pid{alive}-def456.tmp"
    stale.write_text("half")
    live.write_text("being written")
    build_vocab([corpus]).save(tmp_path / "v.json")
    assert not stale.exists() and live.exists()
    killed = Path(tempfile.gettempdir()) / f"{IDS_TEMP_PREFIX}pid{dead}-xyz789"
    killed.mkdir()
    (killed / IDS_FILE).write_bytes(b"ids")
    train_skipgram([corpus], SkipGramConfig(dim=4, epochs=1, min_count=1, threads=1), progress=False)
    assert not killed.exists()


def test_9_a_failed_demo_leaves_its_folder_as_it_was(corpus: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from nce_lm.cli import demo_verbs

    out = tmp_path / "demo"
    out.mkdir()
    (out / "vocab.json").write_text("an earlier run's")
    (out / "metrics.json").write_text('{"training": {}, "evaluation": {}}')  # what makes it the demo's own output

    def fail(*args, **kwargs):
        raise NceLmError("stopped on purpose after the vocabulary was written")

    monkeypatch.setattr(demo_verbs, "train_skipgram", fail)
    assert main(["demo", str(corpus), "-o", str(out), "--epochs", "1", "--min-count", "1", "--quiet"]) == 2
    assert "stopped on purpose" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "vocab.json"]
    assert (out / "vocab.json").read_text() == "an earlier run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left


def test_10_files_follow_the_umask(corpus: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        build_vocab([corpus]).save(tmp_path / "v.json")
        write_corpus(tmp_path / "s", 5000, TeacherConfig(vocab=20, classes=4))
        with folder_lock(tmp_path / "locked", "run folder"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "v.json").stat().st_mode & 0o777 == 0o644  # mkstemp alone gives 0o600
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o755
    assert {(p.stat().st_mode & 0o777) for p in (tmp_path / "s").iterdir()} == {0o644}
    assert (tmp_path / "locked" / ".lock").stat().st_mode & 0o777 == 0o644


def test_10_lm_eval_reads_a_run_folder_it_cannot_write(
    corpus: Path, run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Root writes anywhere, so the read-only folder is simulated by ``os.access``."""
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    real_access = os.access
    monkeypatch.setattr(
        "nce_lm.lm.evaluate.os.access",
        lambda path, mode: False if Path(path).resolve().is_relative_to(run.resolve()) else real_access(path, mode),
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["lm", "eval", str(run), "--data", str(corpus), "--quiet"]) == 0
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    assert list((tmp_path / "xdg" / "nce_lm" / "eval").rglob(IDS_FILE))


def test_11_downloads_are_verified_https_and_bounded(tmp_path: Path, tgz_dataset) -> None:
    from nce_lm.pipeline.datasets import REGISTRY, fetch

    assert all(d.url.startswith("https://") for d in REGISTRY.values())
    assert {name for name, d in REGISTRY.items() if not d.verified} == {"wikitext-103", "text8"}
    with pytest.raises(NceLmError, match="--allow-unverified"):
        fetch("text8", tmp_path / "data")
    assert not (tmp_path / "data").exists()
    tgz_dataset("bomb", b"w " * 1000, max_bytes=1000)
    with pytest.raises(NceLmError, match="expands past 1,000 bytes"):
        fetch("bomb", tmp_path / "data")
    assert not (tmp_path / "data" / "bomb").exists()


class _CreatesAFile:
    """A hostile pickle's payload: unpickling it calls ``open(path, "w")`` (pickle's __reduce__)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_25_a_kv_file_is_not_unpickled_for_its_name(tmp_path: Path) -> None:
    """``eval-vectors FILE.kv`` and ``neighbors FILE.kv the`` ran a crafted pickle's payload. Now a pickle is read
    only with --trust-pickle, whatever its name: one line, exit 2, and the payload's file is not created."""
    import pickle

    sprung = tmp_path / "SPRUNG"
    trap = tmp_path / "vectors.kv"
    trap.write_bytes(pickle.dumps(_CreatesAFile(str(sprung)), protocol=4))
    for argv in (
        ["eval-vectors", str(trap)],
        ["neighbors", str(trap), "the"],
        ["eval-vectors", str(trap), "--format", "gensim"],
    ):
        done = subprocess.run([sys.executable, "-m", "nce_lm", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert "a pickle (gensim's native format), which runs code when loaded" in done.stderr
        assert "add --trust-pickle" in done.stderr
        assert not sprung.exists()
    # the payload is real: consent given, it runs (and the file then fails to load as vectors)
    done = subprocess.run(
        [sys.executable, "-m", "nce_lm", "neighbors", str(trap), "the", "--trust-pickle"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and sprung.exists()


def test_25_checkpoints_carry_a_checksum_that_loading_verifies(corpus: Path, tmp_path: Path) -> None:
    from nce_lm.training.checkpoint import load_checkpoint, save_checkpoint

    vocab = build_vocab([corpus])
    path = tmp_path / "c.pt"
    save_checkpoint(path, "kind", vocab, {"weights": torch.arange(6.0).reshape(2, 3), "step": 3})
    payload = load_checkpoint(path, "kind", "test")
    assert payload["step"] == 3 and torch.equal(payload["weights"], torch.arange(6.0).reshape(2, 3))
    del payload[CHECKSUM_KEY]
    torch.save(payload, path)  # as written before checksums existed: still loads
    assert load_checkpoint(path, "kind", "test")["step"] == 3
    for change in ({"weights": payload["weights"] + 1e-7}, {"step": 4}):
        save_checkpoint(path, "kind", vocab, payload)
        saved = torch.load(path, weights_only=True)
        torch.save({**saved, **change}, path)  # the old checksum over new contents
        with pytest.raises(NceLmError, match="corrupted checkpoint"):
            load_checkpoint(path, "kind", "test")


def test_25_a_token_cache_whose_npy_header_was_damaged_is_rebuilt(corpus: Path, tmp_path: Path, capsys) -> None:
    """numpy's header parser raised tokenize.TokenError through the CLI; the cache is ours, so it is rebuilt."""
    build_vocab([corpus]).save(tmp_path / "v.json")
    argv = ["prepare", str(corpus), "--vocab", str(tmp_path / "v.json"), "-o", str(tmp_path / "ids"), "--quiet"]
    assert main(argv) == 0
    ids = tmp_path / "ids" / IDS_FILE
    good, stat = ids.read_bytes(), ids.stat()
    ids.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:60]) + good[60:])
    os.utime(ids, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and time as recorded: only the header tells
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("wrote ") and ids.read_bytes() == good


def test_25_synth_replaces_its_own_earlier_output_through_a_link_too(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    assert main(["synth", "-o", str(out), "--vocab", "50", "--tokens", "500", "--quiet"]) == 0
    (tmp_path / "link").symlink_to(out)
    assert main(["synth", "-o", str(tmp_path / "link"), "--vocab", "60", "--tokens", "500", "--quiet"]) == 0
    assert json.loads((out / "teacher.json").read_text())["teacher"]["vocab"] == 60
    assert sorted(p.name for p in out.iterdir()) == ["teacher.json", "test.txt", "train.txt", "valid.txt"]


def test_25_the_negatives_range_is_the_c_kernels() -> None:
    from nce_lm.cli.options import MAX_NEGATIVES

    source = (Path(__file__).parents[1] / "nce_lm" / "skipgram" / "_kernel.c").read_text()
    assert f"negatives > {MAX_NEGATIVES} ||" in source


def test_25_token_lists_and_vocabularies_refuse_control_characters() -> None:
    from nce_lm.pipeline.vocab import Vocab

    for character in ("\x00", "\x1b", "\x7f", "\x9b"):
        with pytest.raises(NceLmError, match=f"control character U\\+{ord(character):04X}"):
            Vocab(["<unk>", "<eos>", "a", f"b{character}c"], [0, 1, 1, 1])
    Vocab(["<unk>", "<eos>", "a", "café", "\u00a9"], [0, 1, 1, 1, 1])  # printable non-ASCII is fine
