"""SIGTERM and SIGINT (nce_lm.training.preemption, docs/reliability.md): the trainers stop at a step boundary with
a checkpoint from which the resumed run ends where an uninterrupted one does (skip-gram bit for bit, the language
model to 1e-6), the other verbs leave nothing half-written, and no temporary is left behind.

The signal tests run each command in a child forked from one "zygote" process that has imported torch and the
command line once, so that twenty-odd runs fit in well under a minute; the children are the real ``nce-lm`` entry
point (:func:`nce_lm.cli.main`), with skip-gram's chunks cut to a few hundred words so that an epoch has many
step boundaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli.resume_command import resume_command
from nce_lm.skipgram import windows
from nce_lm.skipgram.checkpoint import load_checkpoint
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.trainer import train_skipgram
from nce_lm.training import preemption
from nce_lm.training.preemption import CheckpointEvery, Stopped

ROOT = Path(__file__).resolve().parents[1]

# Says it is ready, then forks a child per JSON request read on stdin: {"argv", "cwd", "env", "log", "chunk"};
# answers the child's pid, then its exit status (negative: killed by that signal).
ZYGOTE = r"""
import json, os, sys, tempfile, traceback
import gensim.models, torch, torch._dynamo, tqdm  # what each child would import: the vector writer, the optimizer
import nce_lm.cli, nce_lm.cli.skipgram_verbs, nce_lm.cli.lm_verbs, nce_lm.cli.corpus_verbs, nce_lm.cli.synth_verbs
from nce_lm.skipgram import windows
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.chdir(request["cwd"])
            os.environ.update(request["env"])
            tempfile.tempdir = None
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            windows.CHUNK_TOKENS = request["chunk"]
            torch.set_num_threads(1)
            code = nce_lm.cli.main(request["argv"])
        except SystemExit as exit_:
            code = exit_.code
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Zygote:
    """Runs ``nce-lm ARGV`` in children of one process that imported everything once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp = folder / "tmpdir"  # TMPDIR of every child: where nce_lm-ids-* folders go
        self.tmp.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout.readline() == "ready\n"
        self.runs = 0

    def run(self, argv: list[str], kill_after: float | None = None, chunk: int = 400) -> tuple[int, str]:
        """(exit status, stdout and stderr) of ``nce-lm ARGV`` run in ``folder``, sent SIGTERM after ``kill_after``
        seconds when given."""
        self.runs += 1
        log = self.folder / f"run{self.runs}.log"
        request = {"argv": argv, "cwd": str(self.folder), "env": {"TMPDIR": str(self.tmp)}, "log": str(log)}
        self.process.stdin.write(json.dumps({**request, "chunk": chunk}) + "\n")
        self.process.stdin.flush()
        pid = int(self.process.stdout.readline())
        if kill_after is not None:
            time.sleep(kill_after)
            with contextlib.suppress(ProcessLookupError):  # finished already
                os.kill(pid, signal.SIGTERM)
        status = int(self.process.stdout.readline())
        return status, log.read_text()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory):
    started = Zygote(tmp_path_factory.mktemp("preemption"))
    yield started
    started.close()


def leftovers(folder: Path) -> list[str]:
    """Temporaries under ``folder``: atomic writes' ``.NAME.pid*.tmp``, output-file locks ``.NAME.lock`` (a run
    folder's ``.lock`` is its lasting lock file, not one) and ``nce_lm-ids-*`` folders."""
    found = []
    for path in folder.rglob("*"):
        name = path.name
        if (".pid" in name and name.endswith(".tmp")) or (name.endswith(".lock") and name != ".lock"):
            found.append(str(path))
        if name.startswith("nce_lm-ids-"):
            found.append(str(path))
    return found


def resume_argv(log: str) -> list[str]:
    """The command the stop line says resumes the run, without its ``nce-lm``."""
    line = next(line for line in log.splitlines() if "resume with: " in line)
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words[0] == "nce-lm"
    return words[1:]


def timed(zygote: Zygote, argv: list[str]) -> float:
    """Seconds an uninterrupted run of ``argv`` takes (it must succeed)."""
    started = time.monotonic()
    status, log = zygote.run(argv)
    assert status == 0, log
    return time.monotonic() - started


def kill_delays(seed: int, count: int, longest: float, shortest: float = 0.05) -> list[float]:
    """``count`` seeded random delays in [shortest, longest] seconds."""
    rng = random.Random(seed)
    return [round(rng.uniform(shortest, longest), 3) for _ in range(count)]


def topic_lines(path: Path, lines: int = 600) -> Path:
    """Two topics of ten words, 12 words a line."""
    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    path.write_text("\n".join(" ".join(rng.choice(topics[t % 2], size=12)) for t in range(lines)) + "\n")
    return path


# The status of a run the signal reached after its command had returned, once the default handler was back: the
# process dies of SIGTERM while exiting with all its output written, which the checks after each run compare.
AFTER_FINISHING = -signal.SIGTERM


SKIPGRAM = ["--dim", "16", "--epochs", "30", "--min-count", "1", "--batch-size", "64", "--threads", "1", "--quiet"]


def finish(zygote: Zygote, argv: list[str], status: int, log: str, saved: Path) -> str:
    """After a run sent SIGTERM: check how it ended, then finish it (resumed from what it saved, or run again when
    the signal came before it saved anything); returns how it had ended: "finished", "saved" or "nothing"."""
    assert status in (0, 143, AFTER_FINISHING), log
    assert leftovers(zygote.folder) == [], log
    if status in (0, AFTER_FINISHING):
        return "finished"
    if "nothing was saved" in log:
        assert not saved.exists(), log
        status, log = zygote.run(argv)
        assert status == 0, log
        return "nothing"
    assert "stopped by SIGTERM in epoch" in log and saved.exists(), log
    status, log = zygote.run(resume_argv(log))
    assert status == 0, log
    return "saved"


def test_sigterm_stops_skipgram_with_a_checkpoint_that_resumes_bit_for_bit(zygote: Zygote) -> None:
    folder = zygote.folder
    corpus = topic_lines(folder / "topics.txt")
    status, log = zygote.run(["skipgram", str(corpus), "-o", "straight.bin", *SKIPGRAM])  # the children's imports
    assert status == 0, log
    straight = (folder / "straight.bin").read_bytes()
    length = timed(zygote, ["skipgram", str(corpus), "-o", "again.bin", *SKIPGRAM])
    assert (folder / "again.bin").read_bytes() == straight
    endings = []
    for run, delay in enumerate(kill_delays(1, 7, length)):
        argv = ["skipgram", str(corpus), "-o", f"sg{run}.bin", "--checkpoint", f"sg{run}.ckpt", *SKIPGRAM]
        status, log = zygote.run(argv, kill_after=delay)
        assert status in (0, AFTER_FINISHING) or not (folder / f"sg{run}.bin").exists(), log
        endings.append(finish(zygote, argv, status, log, folder / f"sg{run}.ckpt"))
        assert (folder / f"sg{run}.bin").read_bytes() == straight, f"run {run}, killed after {delay} s"
        assert leftovers(folder) == []
    assert endings.count("saved") >= 3, (endings, length)


def lm_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The module's tensors in a run's ``last.pt``."""
    return torch.load(path, map_location="cpu", weights_only=True)["module"]


def test_sigterm_stops_lm_train_with_a_checkpoint_that_resumes_where_the_run_ends(
    zygote: Zygote, lm_corpus: Path
) -> None:
    folder = zygote.folder
    splits = [f"--{split}={lm_corpus / f'{split}.txt'}" for split in ("train", "valid", "test")]
    sizes = ["--dim", "16", "--layers", "1", "--dropout", "0.2", "--seq-len", "5", "--batch-size", "4"]
    lm = ["lm", "train", *splits, *sizes, "--epochs", "2", "--noise-samples", "8", "--device", "cpu", "--quiet"]
    length = timed(zygote, [*lm, "-o", "lm-straight"])
    straight = lm_tensors(folder / "lm-straight" / "last.pt")
    endings = []
    # Its data, validations and final test take a third of the run: most signals should come while it trains.
    for run, delay in enumerate(kill_delays(2, 6, 0.7 * length, 0.15 * length)):
        status, log = zygote.run([*lm, "-o", f"lm{run}"], kill_after=delay)
        endings.append(finish(zygote, [*lm, "-o", f"lm{run}"], status, log, folder / f"lm{run}" / "last.pt"))
        resumed = lm_tensors(folder / f"lm{run}" / "last.pt")
        assert resumed.keys() == straight.keys()
        for name, tensor in straight.items():
            torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=f"{name}, killed after {delay}")
        assert json.loads((folder / f"lm{run}" / "metrics.json").read_text())["test"]["ppl"] > 1
    assert endings.count("saved") >= 3, (endings, length)


def test_sigterm_leaves_prepare_and_synth_without_temporaries_or_half_written_output(zygote: Zygote) -> None:
    folder = zygote.folder
    corpus = topic_lines(folder / "prepare.txt", lines=30_000)
    assert zygote.run(["vocab", str(corpus), "-o", "vocab.json"])[0] == 0
    prepare = ["prepare", str(corpus), "--vocab", "vocab.json", "--quiet"]
    length = timed(zygote, [*prepare, "-o", "cache-straight"])
    straight = (folder / "cache-straight" / "tokens.npy").read_bytes()
    synth = ["synth", "--vocab", "2000", "--tokens", "150000", "--quiet"]
    synth_length = timed(zygote, [*synth, "-o", "synth-straight"])
    endings = []
    for run, delay in enumerate(kill_delays(3, 5, length) + kill_delays(4, 4, synth_length)):
        argv = [*prepare, "-o", f"cache{run}"] if run < 5 else [*synth, "-o", f"synth{run}"]
        output = folder / argv[-1]
        status, log = zygote.run(argv, kill_after=delay)
        assert status in (0, 143, AFTER_FINISHING), log
        assert leftovers(folder) == [], log
        endings.append(status)
        if status == 143:
            assert "stopped by SIGTERM; nothing was saved" in log and not output.exists(), log
            assert zygote.run(argv)[0] == 0
        if run < 5:
            assert (output / "tokens.npy").read_bytes() == straight
        else:
            for name in ("train.txt", "valid.txt", "test.txt", "teacher.json"):
                assert (output / name).read_bytes() == (folder / "synth-straight" / name).read_bytes(), name
    assert endings.count(143) >= 4, endings


def test_checkpoint_every_reads_a_duration_or_a_number_of_steps() -> None:
    assert CheckpointEvery.parse("30m") == CheckpointEvery(seconds=1800.0)
    assert CheckpointEvery.parse("600s") == CheckpointEvery(seconds=600.0)
    assert CheckpointEvery.parse("1.5h") == CheckpointEvery(seconds=5400.0)
    assert CheckpointEvery.parse("5000") == CheckpointEvery(steps=5000)
    for bad in ("0", "0s", "abc", "5x", "-3", "2.5", ""):
        with pytest.raises(ValueError):
            CheckpointEvery.parse(bad)


def test_the_resume_command_replaces_the_options_that_named_the_run() -> None:
    argv = ["lm", "train", "--data", "ptb", "-o", "runs/a b", "--epochs", "3", "--resume=old", "-oX"]
    assert resume_command(argv, ("-o", "--output", "--resume"), "runs/a b") == (
        "nce-lm lm train --data ptb --epochs 3 --resume 'runs/a b'"
    )


SMALL = SkipGramConfig(dim=16, epochs=3, min_count=1, sample=1e-2, batch_size=256, lr=0.05, threads=1)
PATHS = {
    "fused": SMALL,
    "torch": replace(SMALL, kernel="torch"),
    "device": replace(SMALL, kernel="device", optimizer="rowwise-adagrad", objective="nce"),
}


def signal_at_boundary(monkeypatch: pytest.MonkeyPatch, boundary: int, signals: int = 1) -> None:
    """Send this process SIGTERM ``signals`` times just before the ``boundary``-th step boundary is looked at."""
    reached = preemption.StepBoundaries.reached
    calls = []

    def signalled(self: preemption.StepBoundaries) -> tuple[bool, int | None]:
        calls.append(1)
        if len(calls) == boundary:
            for _ in range(signals):
                signal.raise_signal(signal.SIGTERM)
        return reached(self)

    monkeypatch.setattr(preemption.StepBoundaries, "reached", signalled)


@pytest.mark.parametrize("path", list(PATHS))
def test_skipgram_resumes_a_mid_epoch_checkpoint_bit_for_bit(
    topic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setattr(windows, "CHUNK_TOKENS", 1000)  # 8 chunks an epoch
    config = PATHS[path]
    straight = train_skipgram([topic_corpus], config, progress=False)
    checkpoint = tmp_path / "sg.ckpt"
    every = train_skipgram(
        [topic_corpus], config, progress=False, checkpoint=checkpoint, checkpoint_every=CheckpointEvery(steps=3)
    )
    np.testing.assert_array_equal(every.vectors.vectors, straight.vectors.vectors)  # saving changes nothing
    assert every.metrics["loss_per_epoch"] == straight.metrics["loss_per_epoch"]
    checkpoint.unlink()
    signal_at_boundary(monkeypatch, 13, signals=2)  # epoch 2, after its 5th chunk; the second signal waits
    with pytest.raises(Stopped) as stopped:
        train_skipgram([topic_corpus], config, progress=False, checkpoint=checkpoint)
    assert stopped.value.exit_status == 143 and stopped.value.saved == str(checkpoint)
    assert stopped.value.where == "in epoch 2 after chunk 5 of 8"
    _, _, state = load_checkpoint(checkpoint)
    assert state.epochs_done == 1 and state.position.chunks_done == 5 and state.position.examples_done > 0
    monkeypatch.undo()
    monkeypatch.setattr(windows, "CHUNK_TOKENS", 1000)
    resumed = train_skipgram([topic_corpus], config, progress=False, resume=checkpoint)
    np.testing.assert_array_equal(resumed.vectors.vectors, straight.vectors.vectors)
    assert resumed.metrics["loss_per_epoch"] == straight.metrics["loss_per_epoch"]


def test_skipgram_without_a_checkpoint_says_nothing_was_saved(
    topic_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal_at_boundary(monkeypatch, 1)
    with pytest.raises(Stopped) as stopped:
        train_skipgram([topic_corpus], SMALL, progress=False)
    assert stopped.value.saved is None
    assert stopped.value.report() == (
        "stopped by SIGTERM in epoch 1 after chunk 1 of 1; nothing was saved: give --checkpoint FILE to make a "
        "run resumable (docs/reliability.md)"
    )
