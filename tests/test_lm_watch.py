"""Watching and evaluating a language-model run: log.jsonl against the run's own figures, --valid-tokens,
--no-test, and runs that diverge (docs/lm.md, "Watching a run" and "Evaluation a user controls"); and skip-gram's
per-epoch log of the same kind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import train as train_module
from nce_lm.lm import train_lm
from nce_lm.lm.checkpoint import load_payload
from nce_lm.pipeline.vocab import Vocab

TRAIN_FIELDS = ["step", "tokens", "loss", "lr", "tokens_per_s"]
VALID_FIELDS = ["step", "tokens", "valid_ppl", "log_z_mean", "log_z_std"]
STEPS_PER_EPOCH = 32  # tiny_lm on lm_corpus: 8 streams of about 318 tokens, windows of 10


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def without_speed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


@pytest.fixture
def check_count(monkeypatch) -> list[int]:
    """Counts the loop's host reads of the loss (train._checked_loss), one host sync each."""
    calls = [0]
    checked = train_module._checked_loss

    def counted(*args):
        calls[0] += 1
        return checked(*args)

    monkeypatch.setattr(train_module, "_checked_loss", counted)
    return calls


def test_the_log_holds_the_runs_own_figures_with_one_sync_per_record(tiny_lm, tmp_path: Path, check_count) -> None:
    """Every 4 steps a training record whose loss is the mean over those 4 steps (so each epoch's records average
    to its train_objective_loss); at each validation the history's perplexity and log Z statistics. The loss is
    read from the device only at those points: 8 records + 1 epoch end = 9 reads per epoch, not 32."""
    metrics = train_lm(tiny_lm(epochs=2), tmp_path / "run", log_every=4)
    records = read_log(tmp_path / "run")
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if "valid_ppl" in r]
    assert all(list(r) == TRAIN_FIELDS for r in train) and all(list(r) == VALID_FIELDS for r in valid)
    assert len(train) + len(valid) == len(records)
    assert [r["step"] for r in train] == list(range(4, 2 * STEPS_PER_EPOCH + 1, 4))
    assert check_count[0] == 2 * (STEPS_PER_EPOCH // 4 + 1)
    history = metrics["history"]
    for epoch, entry in enumerate(history):
        in_epoch = [r for r in train if epoch * STEPS_PER_EPOCH < r["step"] <= (epoch + 1) * STEPS_PER_EPOCH]
        assert sum(r["loss"] for r in in_epoch) / len(in_epoch) == pytest.approx(entry["train_objective_loss"])
        assert all(r["lr"] == entry["lr"] and r["tokens_per_s"] > 0 for r in in_epoch)
        assert in_epoch[-1]["tokens"] == entry["tokens_seen"]
    assert [r["tokens"] for r in train[:3]] == [320, 640, 960]  # 4 steps of 8 × 10 tokens each
    assert valid == [
        {
            "step": STEPS_PER_EPOCH * h["epoch"],
            "tokens": h["tokens_seen"],
            "valid_ppl": h["valid"]["ppl"],
            "log_z_mean": h["valid"]["mean_log_z"],
            "log_z_std": h["valid"]["std_log_z"],
        }
        for h in history
    ]


def test_a_resumed_run_appends_and_a_stopped_one_keeps_its_records(tiny_lm, tmp_path: Path, monkeypatch) -> None:
    """1 epoch then --resume to 2 logs what a 2-epoch run logs (to the bit, speeds aside); a run stopped by an
    error in its 10th step keeps the records of steps 4 and 8 it wrote before."""
    train_lm(tiny_lm(epochs=2), tmp_path / "straight", log_every=4)
    train_lm(tiny_lm(epochs=1), tmp_path / "parts", log_every=4)
    train_lm(tiny_lm(epochs=2), tmp_path / "parts", resume=True, log_every=4)
    assert without_speed(read_log(tmp_path / "parts")) == without_speed(read_log(tmp_path / "straight"))

    train_lm(tiny_lm(epochs=1), tmp_path / "stopped", log_every=4)
    before = (tmp_path / "stopped" / "log.jsonl").read_text()
    step = train_module.train_step
    steps = [0]

    def failing(*args, **kwargs):
        steps[0] += 1
        if steps[0] == 10:
            raise RuntimeError("killed")
        return step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", failing)
    with pytest.raises(RuntimeError, match="killed"):
        train_lm(tiny_lm(epochs=2), tmp_path / "stopped", resume=True, log_every=4)
    log = (tmp_path / "stopped" / "log.jsonl").read_text()
    assert log.startswith(before)
    assert [json.loads(line)["step"] for line in log[len(before) :].splitlines()] == [36, 40]


def test_valid_tokens_scores_a_prefix_of_validation_and_no_test_skips_the_test(
    tiny_lm, lm_corpus: Path, tmp_path: Path
) -> None:
    """--valid-tokens N validates on the first N targets exactly as a validation text holding only them does;
    N at least the text's length is a full validation (the same run to the bit); --no-test leaves the test out
    and says so in the metrics."""
    lines = (lm_corpus / "valid.txt").read_text().splitlines()
    head = tmp_path / "head.txt"
    head.write_text("\n".join(lines[:5]) + "\n")
    head_targets = sum(len(line.split()) + 1 for line in lines[:5]) - 1  # every word and <eos>, less the first
    all_targets = sum(len(line.split()) + 1 for line in lines) - 1
    on_head = train_lm(tiny_lm(epochs=1, valid=str(head)), tmp_path / "head")
    limited = train_lm(tiny_lm(epochs=1), tmp_path / "limited", valid_tokens=head_targets)
    assert limited["history"][0]["valid"] == on_head["history"][0]["valid"]
    assert limited["history"][0]["valid"]["tokens"] == head_targets
    assert limited["valid_limited_to"] == {"tokens": head_targets, "of": all_targets}
    assert "valid_limited_to" not in on_head

    full = train_lm(tiny_lm(epochs=1), tmp_path / "full")
    whole = train_lm(tiny_lm(epochs=1), tmp_path / "whole", valid_tokens=all_targets + 100, final_test=False)
    assert whole["history"][0]["valid"] == full["history"][0]["valid"]
    assert "valid_limited_to" not in whole
    assert whole["test_skipped"] is True and "test" not in whole
    assert "test_skipped" not in full and full["test"]["tokens"] > 0
    runs = ("full", "whole")
    for name, key in (("best.pt", "model"), ("last.pt", "module")):
        a, b = (load_payload(tmp_path / run / name, Vocab.load(tmp_path / run / "vocab.json"))[key] for run in runs)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_options_and_a_diverging_resumed_run(lm_corpus: Path, tmp_path: Path, capsys) -> None:
    """lm train --log-every --valid-tokens --no-test; then --resume with --lr 1e6: exit 2, one line naming the
    epoch best.pt is from, and best.pt and last.pt untouched."""
    run = tmp_path / "run"
    common = ["--train", str(lm_corpus / "train.txt"), "--valid", str(lm_corpus / "valid.txt")]
    common += ["--test", str(lm_corpus / "test.txt"), "--dim", "8", "--layers", "1", "--batch-size", "4"]
    common += ["--seq-len", "8", "--noise-samples", "4", "--quiet", "--optimizer", "sgd", "--lr", "1"]
    options = ["--log-every", "3", "--valid-tokens", "20", "--no-test"]
    assert main(["lm", "train", *common, *options, "-o", str(run), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "test pass skipped (--no-test)" in out and "on the first 20 of" in out and "log.jsonl" in out
    records = read_log(run)
    assert [r["step"] for r in records if "loss" in r][:3] == [3, 6, 9]
    assert records[-1]["valid_ppl"] > 0
    saved = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    assert main(["lm", "train", "--resume", str(run), "--epochs", "2", "--lr", "1e6", "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("nce-lm lm train: error: the "), err
    assert "became" in err[0] and "best.pt is from epoch 1 (valid ppl" in err[0] and "lower --lr" in err[0]
    assert {name: (run / name).read_bytes() for name in saved} == saved


def test_non_finite_validation_writes_no_best_pt(tiny_lm, tmp_path: Path, monkeypatch) -> None:
    """A validation perplexity of inf (a finite mean loss past exp's range) stops the run after the epoch that
    gave it; best.pt stays the earlier epoch's and the error says which."""
    evaluate = train_module.evaluate_model
    calls = [0]

    def diverging(*args, **kwargs):
        calls[0] += 1
        figures = evaluate(*args, **kwargs)
        return figures if calls[0] == 1 else {**figures, "nll": 1e4, "ppl": float("inf")}

    monkeypatch.setattr(train_module, "evaluate_model", diverging)
    with pytest.raises(NceLmError, match=r"perplexity became inf after epoch 2: .*best.pt is from epoch 1"):
        train_lm(tiny_lm(epochs=3), tmp_path / "run")
    assert load_payload(tmp_path / "run" / "best.pt", Vocab.load(tmp_path / "run" / "vocab.json"))["epoch"] == 1
    assert len([r for r in read_log(tmp_path / "run") if "valid_ppl" in r]) == 1


def test_skipgram_logs_each_epoch_beside_its_checkpoint(topic_corpus: Path, tmp_path: Path) -> None:
    """Skip-gram's log of the same kind: CHECKPOINT.log.jsonl gets one record per epoch holding the epoch's
    mean loss as the metrics report it; --resume appends the next epochs' records after the earlier ones."""
    from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram

    config = SkipGramConfig(dim=8, epochs=2, min_count=1, threads=1, kernel="torch")
    checkpoint = tmp_path / "c.pt"
    first = train_skipgram(topic_corpus, config, progress=False, checkpoint=checkpoint).metrics
    log = Path(f"{checkpoint}.log.jsonl")
    before = log.read_text()
    words = first["corpus_words"]
    records = [json.loads(line) for line in before.splitlines()]
    assert [list(r) for r in records] == [["epoch", "words", "loss", "words_per_s"]] * 2
    assert [(r["epoch"], r["words"], r["loss"]) for r in records] == [
        (1, words, first["loss_per_epoch"][0]),
        (2, 2 * words, first["loss_per_epoch"][1]),
    ]
    assert all(r["words_per_s"] > 0 for r in records)
    resumed = train_skipgram(
        topic_corpus, replace(config, epochs=3), progress=False, checkpoint=checkpoint, resume=checkpoint
    ).metrics
    after = log.read_text()
    assert after.startswith(before)
    added = [json.loads(line) for line in after[len(before) :].splitlines()]
    assert [(r["epoch"], r["words"], r["loss"]) for r in added] == [(3, 3 * words, resumed["loss_per_epoch"][2])]
