"""Two torch threads on the CPU repeat bit for bit once :func:`nce_lm.training.devices.settle_cpu_math` has run.

The first multi-threaded ``torch.exp`` of a process sometimes computes one thread's share with a less precise
exp (docs/reliability.md, "Repeating a run bit for bit"); it shows only in fresh processes, and only in some, so
these tests start several at once (the busy cores make it likelier) and ask every one to agree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}

FIRST_EXP = """
import torch
from nce_lm.training.devices import torch_device
torch.set_num_threads(2)
torch_device("cpu")
torch.manual_seed(0)
scores = torch.randn(700, 64) @ torch.randn(64, 300)
shifted = scores - scores.amax(1, keepdim=True)
first, second = shifted.exp(), shifted.exp()
print(int((first != second).sum()))
"""


def test_first_exp_of_a_process_is_its_precise_one() -> None:
    runs = [
        subprocess.Popen([sys.executable, "-c", FIRST_EXP], env=ENV, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    differing = [int(run.communicate(timeout=120)[0]) for run in runs]
    assert differing == [0] * 6


def zipf_corpus(folder: Path, vocabulary: int = 300) -> Path:
    """train (30,000 tokens), valid and test (3,000) from a Zipf law over ``vocabulary`` words, 20 a line: with
    the default 20 × 35 batches the full softmax's (700, V) exp is large enough to be split between threads."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, vocabulary + 1)
    for split, tokens in (("train", 30_000), ("valid", 3_000), ("test", 3_000)):
        words = rng.choice(vocabulary, size=tokens, p=p / p.sum())
        lines = [" ".join(f"w{w}" for w in words[i : i + 20]) for i in range(0, tokens, 20)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_two_thread_full_softmax_run_repeats_bit_for_bit(tmp_path: Path) -> None:
    corpus = zipf_corpus(tmp_path)
    runs = []
    for name in ("a", "b", "c"):
        command = [sys.executable, "-m", "nce_lm", "lm", "train", "--data", str(corpus), "-o", str(tmp_path / name)]
        command += ["--objective", "full", "--dim", "64", "--epochs", "1", "--quiet", "--no-test"]
        runs.append(subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for run in runs:
        assert run.wait(timeout=240) == 0, run.stderr.read()[-2000:]
    states = [torch.load(tmp_path / name / "best.pt", weights_only=False)["model"] for name in ("a", "b", "c")]
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        for key in state:
            assert torch.equal(state[key], states[0][key]), key
