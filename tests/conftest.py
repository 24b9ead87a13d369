"""Shared fixtures: where the reference corpora live, a tiny language-model corpus and run, a record of
skip-gram's learning rates, the fused kernel's noise words fed to the torch path, and a dataset served from a
local archive.

Tests read the shared copies of PTB, WikiText-2 and the evaluation sets through ``NCE_LM_DATA`` (``.ci/run``
points it at ``../shared/data``); a test that needs them is skipped when the variable is unset, and never
touches the network. Tests marked ``cuda`` need a GPU: without one they are skipped, and say so
(``pytest -m cuda`` runs them alone, as ``scripts/gpu_check.sh`` does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``cuda`` tests, with the reason, where torch sees no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch sees none")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def torchrun() -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    """Runs ``torchrun --standalone --nproc_per_node=2 ARGS`` with this checkout on the path and one thread per
    rank, asserts that it succeeded (showing the end of its stderr otherwise) and returns it. ``--standalone``
    lets the rendezvous bind a free port itself: no other process can take it between choosing and binding."""

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder named by ``NCE_LM_DATA``, laid out as ``<folder>/<dataset>/<file>``; skip when unset."""
    folder = os.environ.get("NCE_LM_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("NCE_LM_DATA does not name a folder holding the shared corpora")
    return Path(folder)


@pytest.fixture(scope="session")
def topic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two topics of ten words each, whose words only co-occur within their own topic (600 lines of 12)."""
    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    lines = [" ".join(rng.choice(topics[t % 2], size=12)) for t in range(600)]
    path = tmp_path_factory.mktemp("corpus") / "topics.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def lm_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ``train.txt`` (300 lines), ``valid.txt`` and ``test.txt`` (40 each) drawn from a sparse random
    bigram model over 30 words (3 successors each, 4 to 11 words a line): learnable, so perplexity can fall."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    successors = [rng.choice(30, size=3, replace=False) for _ in range(30)]
    folder = tmp_path_factory.mktemp("lm")
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        text = []
        for _ in range(lines):
            w = rng.integers(30)
            line = []
            for _ in range(rng.integers(4, 12)):
                line.append(words[w])
                w = rng.choice(successors[w])
            text.append(" ".join(line))
        (folder / f"{split}.txt").write_text("\n".join(text) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_lm(lm_corpus: Path):
    """``tiny_lm(folder=lm_corpus, **changes) -> LMConfig``: a 1 × 16 LSTM without dropout on the folder's three
    splits, windows of 8 streams × 10 tokens, 2 epochs, k = 8, small evaluation, on the CPU, quiet."""
    from nce_lm.lm import LMConfig

    def make(folder: Path = lm_corpus, **changes) -> LMConfig:
        settings = dict(
            train=str(folder / "train.txt"),
            valid=str(folder / "valid.txt"),
            test=str(folder / "test.txt"),
            dim=16,
            layers=1,
            dropout=0.0,
            seq_len=10,
            batch_size=8,
            epochs=2,
            noise_samples=8,
            progress=False,
            is_samples=16,
            eval_batch_size=4,
            device="cpu",
        )
        return LMConfig(**{**settings, **changes})

    return make


@pytest.fixture
def skipgram_rates(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The learning rate of every torch-path skip-gram update, in order, as the test's runs make them."""
    from nce_lm.skipgram.torch_update import TorchUpdatePath

    seen: list[float] = []
    original = TorchUpdatePath.update

    def spy(self, examples, lr):
        seen.append(lr)
        return original(self, examples, lr)

    monkeypatch.setattr(TorchUpdatePath, "update", spy)
    return seen


@pytest.fixture
def feed_kernel_noise(monkeypatch: pytest.MonkeyPatch):
    """``feed(trainer, config) -> drawn``: make a torch-path skip-gram trainer draw the noise words that the fused
    kernel draws in epoch 0 for the same examples, in order; ``drawn()`` is how many examples drew so far.

    Per pair, example i gets the kernel's draw of counter i. With noise keys (``noise_per="window"``) the torch
    path asks for (B, k) draws and gives row r to the batch's r-th window
    (:func:`nce_lm.skipgram.examples.window_noise`): row r is then the kernel's draw for that window's key, and
    the rows past the batch's windows hold −1, which no update may read.
    """
    import nce_lm.skipgram.kernel as skipgram_kernel

    def feed(trainer, config):
        drawn = 0
        batch_keys: list[np.ndarray | None] = [None]  # the noise keys of the batch being trained
        update = trainer.path.update

        def spy(examples, lr):
            batch_keys[0] = None if examples.noise_key is None else examples.noise_key.cpu().numpy()
            return update(examples, lr)

        def kernel_noise(centre: torch.Tensor) -> torch.Tensor:
            nonlocal drawn
            seed = skipgram_kernel.noise_seed(config.seed, 0)
            keys = batch_keys[0]
            if keys is None:
                ids = skipgram_kernel.draw_noise(trainer.noise, seed, drawn, len(centre), config.noise_samples)
            else:
                windows = keys[np.r_[True, keys[1:] != keys[:-1]]]  # the batch's windows, in order
                ids = np.full((len(centre), config.noise_samples), -1, dtype=np.int64)
                ids[: len(windows)] = skipgram_kernel.draw_keyed_noise(
                    trainer.noise, seed, windows, config.noise_samples
                )
            drawn += len(centre)
            return torch.from_numpy(ids)

        monkeypatch.setattr(trainer.path, "update", spy)
        monkeypatch.setattr(trainer.objective, "sample_noise", kernel_noise)
        return lambda: drawn

    return feed


@pytest.fixture
def tgz_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``make(name, content, recorded=content, max_bytes=2**31)``: register, for this test, a dataset whose one split
    ``train.txt`` holds ``content`` in a tgz archive served from a file:// address (member ``./<name>/train.txt``);
    ``recorded`` is the text whose sha256 the registry records."""
    import hashlib
    import io
    import tarfile

    from nce_lm.pipeline import datasets

    def make(name: str, content: bytes, recorded: bytes | None = None, max_bytes: int = 1 << 31):
        archive = tmp_path / f"{name}-{hashlib.sha256(content).hexdigest()[:8]}.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(f"./{name}/train.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        sha256 = hashlib.sha256(content if recorded is None else recorded).hexdigest()
        split = datasets.SplitFile(f"{name}/train.txt", "train.txt", sha256)
        dataset = datasets.Dataset(name, archive.as_uri(), "tgz", None, "test only", {"train": split}, max_bytes)
        monkeypatch.setitem(datasets.REGISTRY, name, dataset)
        return dataset

    return make
