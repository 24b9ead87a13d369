"""torchrun with 2 CPU processes (gloo): the language model matches one process; skip-gram trains data-parallel.

Each rank trains on half of the batch's streams. DistributedDataParallel averages the dense gradients, and
the row-sparse gradients of the tables of a sampled objective are averaged by exchanging their rows
(nce_lm.training.sparse_rows); together that is the gradient of the mean loss over the whole batch. The noise is
shared by the global batch (the same draws on every rank), so with no dropout nothing random differs between
the runs; what is left is the order of floating-point sums, hence the tolerance of 1e-5 on parameters after
a dozen steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main


@pytest.mark.parametrize(
    ("objective", "optimizer", "lr"),
    [("full", "sgd", "1"), ("nce", "sgd", "1"), ("ranking", "lazy-adam", "0.01"), ("nce", "adam-rowwise", "0.003")],
)
def test_two_gloo_ranks_match_one_process(
    lm_corpus: Path, tmp_path: Path, torchrun, objective: str, optimizer: str, lr: str
) -> None:
    two_ranks_match_one_process(lm_corpus, tmp_path, torchrun, objective, optimizer, lr, "cpu", 1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize(("objective", "optimizer"), [("full", "adam"), ("nce", "lazy-adam")])
def test_two_nccl_ranks_match_one_process(
    lm_corpus: Path, tmp_path: Path, torchrun, objective: str, optimizer: str
) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    two_ranks_match_one_process(lm_corpus, tmp_path, torchrun, objective, optimizer, "0.01", "cuda", 1e-4)


def two_ranks_match_one_process(
    corpus: Path, tmp_path: Path, torchrun, objective: str, optimizer: str, lr: str, device: str, tolerance: float
) -> None:
    train, valid = corpus / "train.txt", corpus / "valid.txt"
    settings = [
        "--train",
        str(train),
        "--valid",
        str(valid),
        "--objective",
        objective,
        "--optimizer",
        optimizer,
        "--noise-samples",
        "6",
        "--dropout",
        "0",
        "--dim",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--seq-len",
        "10",
        "--epochs",
        "1",
        "--lr",
        lr,
        "--device",
        device,
        "--precision",
        "fp32",
        "--quiet",
    ]
    assert main(["lm", "train", *settings, "-o", str(tmp_path / "one")]) == 0
    done = torchrun(["-m", "nce_lm", "lm", "train", *settings, "-o", str(tmp_path / "two")])
    assert done.stdout.count("\nwrote ") + done.stdout.startswith("wrote ") == 1, done.stdout  # rank 0 reports
    one = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert one["module"].keys() == two["module"].keys()
    for name, tensor in one["module"].items():
        torch.testing.assert_close(two["module"][name], tensor, rtol=tolerance, atol=tolerance, msg=name)
    assert two["history"][0]["valid"]["ppl"] == pytest.approx(one["history"][0]["valid"]["ppl"], rel=tolerance)
    # A run written by 2 ranks resumes in one process exactly: where an uninterrupted one-process run ends.
    assert main(["lm", "train", "--resume", str(tmp_path / "two"), "--epochs", "2", "--quiet"]) == 0
    assert main(["lm", "train", *settings, "--epochs", "2", "-o", str(tmp_path / "straight")]) == 0  # the last wins
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert len(two["history"]) == len(straight["history"]) == 2 and two["epoch"] == straight["epoch"] == 2
    for name, tensor in straight["module"].items():
        torch.testing.assert_close(two["module"][name], tensor, rtol=tolerance, atol=tolerance, msg=name)
    for theirs, ours in zip(two["history"], straight["history"], strict=True):
        assert theirs["valid"]["ppl"] == pytest.approx(ours["valid"]["ppl"], rel=tolerance)


def test_skipgram_trains_on_two_gloo_ranks(tmp_path: Path, torchrun) -> None:
    """Two ranks share the pairs and average their tables; the vectors still separate the two topics."""
    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    corpus = tmp_path / "topics.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(topics[t % 2], size=12)) for t in range(600)) + "\n")
    out = tmp_path / "v.txt"
    command = [
        "-m",
        "nce_lm",
        "skipgram",
        str(corpus),
        "-o",
        str(out),
        "--format",
        "word2vec-txt",
        "--dim",
        "16",
        "--epochs",
        "3",
        "--min-count",
        "1",
        "--sample",
        "0",
        "--batch-size",
        "256",
        "--lr",
        "0.05",
        "--quiet",
        "--checkpoint",
        str(tmp_path / "c.ckpt"),
    ]
    torchrun(command)
    from nce_lm.vectors.word_vectors import WordVectors

    vectors = WordVectors.load(out)
    unit = vectors.unit_vectors()
    index = {w: i for i, w in enumerate(vectors.words)}
    a, b = unit[[index[f"a{i}"] for i in range(10)]], unit[[index[f"b{i}"] for i in range(10)]]
    assert (a @ a.T)[~np.eye(10, dtype=bool)].mean() > (a @ b.T).mean() + 0.5
    # The checkpoint written by rank 0 continues in one process.
    assert (
        main(
            [
                "skipgram",
                str(corpus),
                "-o",
                str(tmp_path / "w.bin"),
                "--dim",
                "16",
                "--epochs",
                "4",
                "--min-count",
                "1",
                "--sample",
                "0",
                "--resume",
                str(tmp_path / "c.ckpt"),
                "--quiet",
            ]
        )
        == 0
    )
