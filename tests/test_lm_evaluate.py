"""Exact evaluation against brute force: every token with a predecessor, F.log_softmax one token at a time.

Two references. A bigram model (the hidden state is the embedding of the previous token) has known logits
whatever the cutting into rows and windows, so it must reproduce the one-stream likelihood of the text
exactly: this catches tokens dropped at the cuts or in the remainder, or counted twice. An LSTM checks the
state: its reference runs each row token by token from a zero state, the last row through the end of the
text (the documented convention), and B = 1 is the whole text as one stream.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nce_lm.lm.config import LMConfig
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import LanguageNetwork, State, build_model
from nce_lm.pipeline.noise import NoiseDistribution

VOCAB = 23


class BigramModel(LanguageNetwork):
    """hidden(t) = embedding(input(t)): log p(w_t | history) depends on w_{t−1} only."""

    def forward(self, inputs: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        return self.embedding(inputs), None


def config(**changes) -> LMConfig:
    """Settings of a small model over ``VOCAB`` words, resolved as a run's are."""
    return LMConfig(**{"dim": 6, "layers": 1, "dropout": 0.0, **changes}).resolved(VOCAB)


def bigram_model() -> BigramModel:
    torch.manual_seed(0)
    model = BigramModel(VOCAB, config(), torch.zeros(VOCAB))
    with torch.no_grad():
        model.embedding.weight.normal_()
        model.output_weight.normal_()
        model.output_bias.normal_()
    return model


def text(length: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=length).astype(np.int32)


def figures(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Brute-force figures from float64 logits (n, V) of the n scored tokens and their targets (n,)."""
    logits = logits.double()
    log_probs = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    log_z = torch.logsumexp(logits, dim=-1)
    scores = logits.gather(1, targets[:, None]).squeeze(1)
    return {
        "nll": -log_probs.mean().item(),
        "self_normalized_ppl": math.exp(-scores.mean().item()),
        "mean_log_z": log_z.mean().item(),
        "std_log_z": log_z.std(unbiased=False).item(),
        "tokens": len(targets),
    }


def assert_matches(got: dict, expected: dict) -> None:
    assert got["tokens"] == expected["tokens"]
    assert got["nll"] == pytest.approx(expected["nll"], rel=1e-6)
    assert got["ppl"] == pytest.approx(math.exp(expected["nll"]), rel=1e-6)
    assert got["self_normalized_ppl"] == pytest.approx(expected["self_normalized_ppl"], rel=1e-6)
    assert got["mean_log_z"] == pytest.approx(expected["mean_log_z"], rel=1e-6, abs=1e-6)
    assert got["std_log_z"] == pytest.approx(expected["std_log_z"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(
    ("length", "batch_size", "seq_len"),
    [(101, 4, 7), (103, 4, 7), (98, 10, 35), (50, 7, 1), (9, 20, 3), (2, 4, 5)],
    ids=["divisible", "remainder", "remainder-9", "seq-len-1", "more-rows-than-tokens", "one-target"],
)
def test_bigram_model_scores_every_token_once(length: int, batch_size: int, seq_len: int) -> None:
    model = bigram_model()
    ids = text(length)
    got = evaluate_model(model, ids, batch_size=batch_size, seq_len=seq_len)
    with torch.no_grad():
        logits = torch.stack([model.embedding.weight[w] @ model.output_weight.T + model.output_bias for w in ids[:-1]])
    assert_matches(got, figures(logits, torch.from_numpy(ids[1:].astype(np.int64))))
    assert got["tokens"] == length - 1
    assert got["is_log_z_error"] is None


def lstm_reference(model: LanguageNetwork, ids: np.ndarray, batch_size: int) -> dict[str, float]:
    """Rows of L = (N − 1) // B targets, row r predicting ids[r·L + 1 .. (r + 1)·L] from a zero state at
    ids[r·L], the last row on to the end; each token fed and scored one at a time."""
    rows = min(batch_size, len(ids) - 1)
    length = (len(ids) - 1) // rows
    all_logits, all_targets = [], []
    with torch.no_grad():
        for row in range(rows):
            end = len(ids) - 1 if row == rows - 1 else (row + 1) * length
            state = model.initial_state(1, torch.device("cpu"))
            for position in range(row * length, end):
                hidden, state = model(torch.tensor([[ids[position]]], dtype=torch.int64), state)
                all_logits.append(hidden[0, 0] @ model.output_weight.T + model.output_bias)
                all_targets.append(int(ids[position + 1]))
    return figures(torch.stack(all_logits), torch.tensor(all_targets))


@pytest.mark.parametrize(("length", "batch_size"), [(130, 1), (130, 4), (97, 5)])
def test_lstm_rows_carry_their_state_into_the_cut_and_the_remainder(length: int, batch_size: int) -> None:
    torch.manual_seed(2)
    model = build_model(config(), VOCAB, torch.zeros(VOCAB))
    model.train()  # evaluation must switch dropout off itself and restore the mode
    ids = text(length, seed=3)
    got = evaluate_model(model, ids, batch_size=batch_size, seq_len=6)
    model.eval()
    assert_matches(got, lstm_reference(model, ids, batch_size))
    evaluate_model(model, ids, batch_size=batch_size, seq_len=6)
    assert not model.training


def test_an_adaptive_softmax_in_place_of_the_output_layer_scores_its_own_loss() -> None:
    """``log_probs`` (scripts/bench_lm.py's adaptive row): the perplexity over windows with the state carried is
    exp of torch's own loss on the whole text as one batch; log Z is 0."""
    torch.manual_seed(4)
    model = build_model(config(), VOCAB, torch.zeros(VOCAB))
    head = torch.nn.AdaptiveLogSoftmaxWithLoss(6, VOCAB, [5, 12], div_value=2.0, head_bias=True)
    ids = text(130, seed=5)
    got = evaluate_model(model, ids, batch_size=1, seq_len=6, log_probs=head.log_prob)
    with torch.no_grad():
        hidden, _ = model(torch.from_numpy(ids[None, :-1].astype(np.int64)))
        loss = head(hidden.reshape(-1, 6), torch.from_numpy(ids[1:].astype(np.int64))).loss
    assert got["tokens"] == 129
    assert got["ppl"] == pytest.approx(math.exp(loss.item()), rel=1e-5)
    assert got["ppl"] > 10  # a number, not a shape: about V for an untrained model
    assert got["self_normalized_ppl"] == got["ppl"] and got["mean_log_z"] == 0.0 == got["std_log_z"]


def test_sums_stay_on_the_device_until_the_end(monkeypatch) -> None:
    """No host sync per window: Tensor.item is never called (the sums are read once, with tolist)."""
    model = bigram_model()
    ids = text(200)
    expected = evaluate_model(model, ids, batch_size=3, seq_len=5, noise=NoiseDistribution(np.ones(VOCAB)))

    def forbidden(self):
        raise AssertionError("a host sync per window")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    got = evaluate_model(model, ids, batch_size=3, seq_len=5, noise=NoiseDistribution(np.ones(VOCAB)))
    assert got == expected
    assert isinstance(got["is_log_z_error"], float)  # computed too (its value: test_lm.py's exact IS test)


def test_progress_bar_is_labelled_and_changes_nothing(capsys) -> None:
    model = bigram_model()
    ids = text(120)
    quiet = evaluate_model(model, ids, batch_size=4, seq_len=5)
    shown = evaluate_model(model, ids, batch_size=4, seq_len=5, progress=True, label="valid")
    assert shown == quiet
    assert "valid" in capsys.readouterr().err


WORKER = """
import json, sys
import numpy as np, torch
from nce_lm.training.distributed import DistributedContext
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import build_model
from nce_lm.lm.config import LMConfig
from nce_lm.pipeline.noise import NoiseDistribution
folder = sys.argv[1]
ctx = DistributedContext.from_environment("cpu")
config = LMConfig(**json.load(open(folder + "/config.json"))).resolved({vocab})
model = build_model(config, {vocab}, torch.zeros({vocab}))
model.load_state_dict(torch.load(folder + "/model.pt", weights_only=True))
ids = np.load(folder + "/ids.npy")
noise = NoiseDistribution(np.arange(1, {vocab} + 1))
results = [evaluate_model(model, ids, batch_size=b, seq_len=6, noise=noise, is_samples=8, ctx=ctx) for b in (5, 1)]
json.dump(results, open(f"{{folder}}/rank{{ctx.rank}}.json", "w"))
ctx.close()
"""


def test_two_gloo_ranks_give_the_figures_of_one_process(tmp_path: Path, torchrun) -> None:
    """5 rows on 2 ranks (2 + 3, the remainder on rank 1), and 1 row (rank 0 idle): same as one process."""
    settings = {"dim": 6, "layers": 2, "dropout": 0.0}
    torch.manual_seed(4)
    model = build_model(config(**settings), VOCAB, torch.zeros(VOCAB))
    ids = text(213, seed=5)
    (tmp_path / "config.json").write_text(json.dumps(settings))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    np.save(tmp_path / "ids.npy", ids)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(vocab=VOCAB))
    torchrun([str(script), str(tmp_path)])
    noise = NoiseDistribution(np.arange(1, VOCAB + 1))
    one = [evaluate_model(model, ids, batch_size=b, seq_len=6, noise=noise, is_samples=8) for b in (5, 1)]
    for rank in (0, 1):
        two = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for got, expected in zip(two, one):
            assert got["tokens"] == expected["tokens"] == len(ids) - 1
            for key in ("ppl", "nll", "mean_log_z", "std_log_z", "self_normalized_ppl", "is_log_z_error"):
                assert got[key] == pytest.approx(expected[key], rel=1e-6), (rank, key)


def test_lm_eval_reads_the_test_split_of_a_folder_or_the_file_given(tmp_path: Path) -> None:
    from nce_lm.errors import NceLmError
    from nce_lm.lm.data import eval_path

    for split in ("train", "valid"):
        (tmp_path / f"{split}.txt").write_text("a b\n")
    with pytest.raises(NceLmError, match=f"^{tmp_path} has no test split$"):
        eval_path(str(tmp_path))
    (tmp_path / "test.txt").write_text("a b\n")
    assert eval_path(str(tmp_path)) == tmp_path / "test.txt"
    assert eval_path(str(tmp_path / "valid.txt")) == tmp_path / "valid.txt"
