"""The trained language model in use (nce_lm.lm.language_model and ``lm score``/``lm sample``): exact log-probs
against ``lm eval``, self-normalized scores against h · u + b by hand, next words against the softmax, seeded
generation."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import nce_lm.lm.language_model as language_model
from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import LMConfig, train_lm
from nce_lm.lm.checkpoint import FORMAT, save_payload
from nce_lm.lm.language_model import LanguageModel
from nce_lm.pipeline.vocab import Vocab
from nce_lm.training.checkpoint import load_checkpoint

SENTENCES = 6  # sentences of the scored file, all WORDS long: lm eval's rows then fall on them (see below)
WORDS = 5


def _bigram_lines(rng: np.random.Generator, count: int, length: int | None = None) -> list[str]:
    """Lines of a sparse random bigram model over 20 words (learnable: perplexity falls below 20)."""
    successors = [[(3 * w + j) % 20 for j in (1, 2, 5)] for w in range(20)]
    lines = []
    for _ in range(count):
        word, line = int(rng.integers(20)), []
        for _ in range(length or int(rng.integers(3, 10))):
            line.append(f"w{word}")
            word = int(rng.choice(successors[word]))
        lines.append(" ".join(line))
    return lines


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training and validation text, ``sentences.txt`` (SENTENCES lines of WORDS words) and ``stream.txt``: the
    same lines after one blank line, which ``lm eval`` with SENTENCES rows reads as each sentence on its own."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("lm_use")
    paths = {name: folder / f"{name}.txt" for name in ("train", "valid", "sentences", "stream")}
    paths["train"].write_text("\n".join(_bigram_lines(rng, 120)) + "\n")
    paths["valid"].write_text("\n".join(_bigram_lines(rng, 20)) + "\n")
    sentences = _bigram_lines(rng, SENTENCES, WORDS)
    paths["sentences"].write_text("\n".join(sentences) + "\n")
    paths["stream"].write_text("\n" + "\n".join(sentences) + "\n")
    return paths


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def run(request: pytest.FixtureRequest, texts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained with nce for one epoch, evaluated in SENTENCES rows."""
    run_dir = tmp_path_factory.mktemp("runs") / request.param
    config = LMConfig(
        train=str(texts["train"]),
        valid=str(texts["valid"]),
        model=request.param,
        dim=16,
        layers=1,
        heads=2,
        dropout=0.0,
        seq_len=10,
        batch_size=8,
        epochs=1,
        noise_samples=8,
        is_samples=8,
        eval_batch_size=SENTENCES,
        progress=False,
        device="cpu",
    )
    train_lm(config, run_dir)
    return run_dir


def _lm_eval(run: Path, data: Path, tmp_path: Path) -> dict:
    assert main(["lm", "eval", str(run), "--data", str(data), "--quiet", "--metrics", str(tmp_path / "m.json")]) == 0
    return json.loads((tmp_path / "m.json").read_text())


def test_exact_log_probs_sum_to_lm_evals_total_through_the_api_and_the_cli(
    run: Path, texts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lm eval`` of the stream scores each sentence from the initial state after an <eos>, as scoring does: the
    summed log-probabilities over the token count give its perplexity (exact and self-normalized)."""
    reference = _lm_eval(run, texts["stream"], tmp_path)
    assert reference["tokens"] == SENTENCES * (WORDS + 1)
    model = LanguageModel.load(run)
    sentences = texts["sentences"].read_text().splitlines()
    scores = model.log_probs(sentences)
    assert [len(s) for s in scores] == [WORDS + 1] * SENTENCES and scores[0].dtype == torch.float64
    total = float(torch.cat(scores).sum())
    assert -total / reference["tokens"] == pytest.approx(reference["nll"], rel=1e-6)
    assert model.perplexity(sentences) == pytest.approx(reference["ppl"], rel=1e-6)
    assert model.perplexity(sentences, "self") == pytest.approx(reference["self_normalized_ppl"], rel=1e-6)

    out = tmp_path / "scores.jsonl"
    assert main(["lm", "score", str(run), str(texts["sentences"]), "-o", str(out)]) == 0
    assert "perplexity" in capsys.readouterr().out
    *lines, last = [json.loads(line) for line in out.read_text().splitlines()]
    assert last["total"] is True and last["tokens"] == reference["tokens"] and last["sentences"] == SENTENCES
    assert last["log_prob"] == pytest.approx(-reference["nll"] * reference["tokens"], rel=1e-6)
    assert last["ppl"] == pytest.approx(reference["ppl"], rel=1e-6)
    assert [line["line"] for line in lines] == list(range(1, SENTENCES + 1))
    for line, score in zip(lines, scores):
        assert line["tokens"] == WORDS + 1
        assert line["log_prob"] == pytest.approx(float(score.sum()), abs=1e-9)
        assert line["ppl"] == pytest.approx(math.exp(-float(score.sum()) / (WORDS + 1)), rel=1e-9)
    assert main(["lm", "score", str(run), str(texts["sentences"]), "--self-normalized", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""  # trained with nce: no warning
    self_total = json.loads(out.read_text().splitlines()[-1])
    assert self_total["ppl"] == pytest.approx(reference["self_normalized_ppl"], rel=1e-6)


def _by_hand(model: LanguageModel, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every score (T, V) of the sentence's positions, h · u + b computed from the model's tensors, and targets:
    the LSTM reads the sentence at once, the Transformer in windows of seq_len, each on its own."""
    ids = torch.tensor([1, *[model.vocab.index(w) for w in words], 1])
    inputs = ids[:-1]
    step = model.config.seq_len if model.config.model == "transformer" else len(inputs)
    with torch.no_grad():
        hidden = torch.cat([model.network(inputs[None, i : i + step])[0][0] for i in range(0, len(inputs), step)])
        logits = hidden @ model.network.output_weight.T + model.network.output_bias  # (T, V)
    return logits, ids[1:]


def test_self_normalized_scores_are_h_dot_u_plus_b_and_exact_ones_the_log_softmax(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = LanguageModel.load(run)
    words = _bigram_lines(np.random.default_rng(4), 1, 23)[0].split()  # 24 targets: windows of 10, 10 and 4
    logits, targets = _by_hand(model, words)
    picked = torch.arange(len(targets))
    exact = torch.log_softmax(logits.double(), dim=1)[picked, targets]
    assert torch.allclose(model.log_probs([words])[0], exact, atol=1e-5, rtol=0)
    assert torch.allclose(model.log_probs([" ".join(words)])[0], exact, atol=1e-5, rtol=0)

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("self-normalized scoring computed log Z")

    monkeypatch.setattr(language_model, "exact_log_z", refused)
    own = model.log_probs([words], normalize="self")[0]
    assert torch.allclose(own, logits.double()[picked, targets], atol=1e-5, rtol=0)
    assert not torch.allclose(own, exact, atol=1e-3)  # log Z ≠ 0: the two normalizations are told apart


def test_batching_padding_and_long_sentences_change_no_score(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentences of every length (longer than seq_len, empty) scored together, in small batches, and one by one."""
    model = LanguageModel.load(run)
    rng = np.random.default_rng(3)
    sentences = [*_bigram_lines(rng, 5), " ".join(_bigram_lines(rng, 1, 23)), "", "w2"]
    alone = [model.log_probs([s])[0] for s in sentences]
    assert [len(s) for s in alone] == [len(s.split()) + 1 for s in sentences]
    for batch in (64, 3):
        monkeypatch.setattr(language_model, "SCORE_BATCH", batch)
        together = model.log_probs(sentences)
        for one, other in zip(alone, together):
            assert torch.allclose(one, other, atol=1e-6, rtol=0)


def test_unknown_words_are_scored_as_unk(run: Path) -> None:
    model = LanguageModel.load(run)
    unknown, as_unk = model.log_probs(["w3 never-seen w4", ["w3", "<unk>", "w4"]])
    assert torch.equal(unknown, as_unk)
    with pytest.raises(NceLmError, match="normalize must be"):
        model.log_probs(["w1"], normalize="approximate")


def test_next_words_are_the_softmax_of_every_score(run: Path) -> None:
    model = LanguageModel.load(run)
    logits, _ = _by_hand(model, ["w2", "w7"])
    probs = torch.softmax(logits[-1].double(), dim=0)  # after <eos> w2 w7
    best = model.next_words("w2 w7", topk=5)
    expected = probs.topk(5)
    assert [w for w, _ in best] == [model.vocab.tokens[i] for i in expected.indices.tolist()]
    assert [p for _, p in best] == pytest.approx(expected.values.tolist(), abs=1e-6)
    everything = model.next_words("w2 w7", topk=10**6)
    assert len(everything) == len(model.vocab) and sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-9)


def test_generation_is_reproducible_by_seed(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = LanguageModel.load(run)
    first = model.generate("w1", max_new_tokens=30, seed=5)
    assert model.generate("w1", max_new_tokens=30, seed=5) == first
    assert model.generate("w1", max_new_tokens=30, seed=6) != first
    assert len(first.split()) + first.count("\n") == 30  # 30 tokens, each <eos> a line break
    greedy = model.generate("w1", max_new_tokens=1, top_k=1, seed=9).strip() or "<eos>"
    assert greedy == model.next_words("w1", topk=1)[0][0]
    assert main(["lm", "sample", str(run), "--prompt", "w1", "-n", "30", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("w1") and printed.rstrip("\n").endswith(first.rstrip("\n"))


def test_the_last_checkpoint_loads_the_last_weights(run: Path, tmp_path: Path) -> None:
    """last.pt's weights made unlike best.pt's: ``checkpoint="last"`` reads them, ``"best"`` does not."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    payload = load_checkpoint(copy / "last.pt", FORMAT, "language-model")
    payload["module"]["model.output_bias"] += 1.0
    save_payload(copy / "last.pt", payload, Vocab.load(copy / "vocab.json"))
    last = LanguageModel.load(copy, checkpoint="last").network.state_dict()
    assert all(torch.equal(tensor, payload["module"][f"model.{name}"]) for name, tensor in last.items())
    best = LanguageModel.load(copy).network.state_dict()
    assert not torch.equal(best["output_bias"], last["output_bias"])
    with pytest.raises(NceLmError, match="checkpoint must be"):
        LanguageModel.load(run, checkpoint="first")


def test_self_normalized_scores_of_a_model_not_trained_with_nce_carry_a_warning(
    run: Path, texts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ranking = tmp_path / "ranking"
    shutil.copytree(run, ranking)
    config = json.loads((ranking / "config.json").read_text())
    (ranking / "config.json").write_text(json.dumps({**config, "objective": "ranking"}))
    assert main(["lm", "score", str(ranking), str(texts["sentences"])]) == 0
    assert capsys.readouterr().err == ""
    assert main(["lm", "score", str(ranking), str(texts["sentences"]), "--self-normalized"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "log Z is free" in err[0]
