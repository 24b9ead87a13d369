"""Resuming: what may change (nce_lm.training.resume, shared by both trainers), schedules that continue, other
corpora."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import train_lm
from nce_lm.lm.checkpoint import load_payload
from nce_lm.pipeline.vocab import Vocab
from nce_lm.skipgram.checkpoint import LinearSchedule, SkipGramState, continued_schedule, load_checkpoint
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.trainer import train_skipgram

SG = SkipGramConfig(dim=8, epochs=2, min_count=1, threads=1, kernel="torch", lr=0.02, min_lr=0.001)
W = 1_000  # corpus words, for the schedule arithmetic


def test_an_interrupted_run_keeps_its_schedule() -> None:
    config = replace(SG, epochs=3)
    state = SkipGramState(None, None, epochs_done=1, schedule=LinearSchedule(0.02, 0, 3 * W, 0.001))
    assert continued_schedule(config, config, state, W) is state.schedule


def test_more_epochs_re_spread_the_decay_from_the_rate_reached() -> None:
    saved, more = replace(SG, epochs=3), replace(SG, epochs=5)
    state = SkipGramState(None, None, epochs_done=1, schedule=LinearSchedule(0.02, 0, 3 * W, 0.001))
    schedule = continued_schedule(saved, more, state, W)
    reached = 0.02 - (0.02 - 0.001) / 3
    assert schedule.rate(W) == pytest.approx(reached)  # no jump at the resume point
    assert schedule.rate(5 * W) == pytest.approx(0.001) and schedule.rate(3 * W) == pytest.approx((reached + 0.001) / 2)
    faster = continued_schedule(saved, replace(more, lr=0.01), state, W)
    assert faster.rate(W) == pytest.approx(0.01) and faster.rate(5 * W) == pytest.approx(0.001)


def test_a_finished_run_given_more_epochs_never_jumps_back_up(
    topic_corpus: Path, tmp_path: Path, skipgram_rates: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    rates = skipgram_rates
    train_skipgram(topic_corpus, SG, progress=False, checkpoint=tmp_path / "c.pt")
    first = list(rates)
    rates.clear()
    train_skipgram(topic_corpus, replace(SG, epochs=4), progress=False, resume=tmp_path / "c.pt")
    assert rates[0] <= first[-1] + 1e-12 and all(a >= b for a, b in itertools.pairwise(rates))
    assert "learning rate: from 0.001" in capsys.readouterr().out
    rates.clear()
    train_skipgram(topic_corpus, replace(SG, epochs=4, lr=0.01), progress=False, resume=tmp_path / "c.pt")
    assert rates[0] == pytest.approx(0.01) and rates[-1] >= 0.001


@pytest.mark.parametrize(
    "change",
    [
        {"objective": "nce"},
        {"window": 2},
        {"noise_samples": 3},
        {"dim": 4},
        {"sample": 0.0},
        {"seed": 2},
        {"batch_size": 64},
    ],
)
def test_skipgram_refuses_changes_a_resumed_run_cannot_make(topic_corpus: Path, tmp_path: Path, change) -> None:
    train_skipgram(topic_corpus, SG, progress=False, checkpoint=tmp_path / "c.pt")
    name = next(iter(change))
    with pytest.raises(NceLmError, match=f"cannot resume .*{name} .* only epochs, lr, min_lr, device, threads, kernel"):
        train_skipgram(topic_corpus, replace(SG, epochs=3, **change), progress=False, resume=tmp_path / "c.pt")


def test_skipgram_cli_resumes_with_the_checkpoints_settings(
    topic_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = ["--quiet", "--threads", "1", "-o", str(tmp_path / "v.bin")]
    assert (
        main(
            [
                "skipgram",
                str(topic_corpus),
                "--dim",
                "6",
                "--window",
                "3",
                "--min-count",
                "1",
                "--epochs",
                "1",
                "--checkpoint",
                str(tmp_path / "c.pt"),
                *fast,
            ]
        )
        == 0
    )
    # dim and window are not repeated: they come from the checkpoint; the rate may change
    assert (
        main(
            [
                "skipgram",
                str(topic_corpus),
                "--resume",
                str(tmp_path / "c.pt"),
                "--epochs",
                "2",
                "--lr",
                "0.01",
                "--checkpoint",
                str(tmp_path / "c.pt"),
                *fast,
            ]
        )
        == 0
    )
    config, _, state = load_checkpoint(tmp_path / "c.pt")
    assert (config.dim, config.window, config.lr, state.epochs_done) == (6, 3, 0.01, 2)
    capsys.readouterr()
    assert (
        main(
            [
                "skipgram",
                str(topic_corpus),
                "--resume",
                str(tmp_path / "c.pt"),
                "--epochs",
                "3",
                "--negatives",
                "2",
                *fast,
            ]
        )
        == 2
    )
    assert "noise_samples 5 -> 2" in capsys.readouterr().err


def test_resuming_on_another_corpus_warns(topic_corpus: Path, tmp_path: Path, capsys) -> None:
    train_skipgram(topic_corpus, SG, progress=False, checkpoint=tmp_path / "c.pt")
    other = tmp_path / "other.txt"
    other.write_text("a1 a2 new words here a3\n" * 40)
    capsys.readouterr()
    train_skipgram(other, replace(SG, epochs=3), progress=False, resume=tmp_path / "c.pt")
    err = capsys.readouterr().err
    assert "not the one the checkpoint was trained on" in err and "50.00% of its tokens" in err
    train_skipgram(topic_corpus, replace(SG, epochs=3), progress=False, resume=tmp_path / "c.pt")
    assert capsys.readouterr().err == ""  # the same corpus: no warning


# ---- the language model ----------------------------------------------------------------------------------------


# Dropout, so that a continued epoch must restore the random streams too; Adam at a rate that moves this model.
RESUMED = dict(dim=12, dropout=0.3, is_samples=8, optimizer="adam", lr=0.01)


def tables(run: Path) -> dict[str, torch.Tensor]:
    return load_payload(run / "last.pt", Vocab.load(run / "vocab.json"))["module"]


def test_raising_max_tokens_continues_the_partial_epoch_exactly(tiny_lm, tmp_path: Path) -> None:
    config = tiny_lm(**RESUMED)
    straight = train_lm(config, tmp_path / "straight")
    run = tmp_path / "capped"
    first = train_lm(replace(config, max_tokens=800), run)  # 10 steps of 80 tokens, inside epoch 1
    assert first["history"][-1]["partial"] and first["history"][-1]["steps"] == 10
    assert load_payload(run / "last.pt", Vocab.load(run / "vocab.json"))["epoch"] == 0  # no epoch completed yet
    train_lm(replace(config, max_tokens=3_200), run, resume=True)  # into epoch 2
    resumed = train_lm(config, run, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2] and not any(h.get("partial") for h in resumed["history"])
    assert [h["valid"]["ppl"] for h in resumed["history"]] == [h["valid"]["ppl"] for h in straight["history"]]
    assert resumed["history"][-1]["tokens_seen"] == straight["history"][-1]["tokens_seen"]
    ours, theirs = tables(run), tables(tmp_path / "straight")
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def test_a_resumed_run_with_nothing_to_do_says_so(tiny_lm, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_lm(tiny_lm(**RESUMED, max_tokens=800), run)
    with pytest.raises(NceLmError, match="has trained 800 tokens, its max_tokens of 800: raise --max-tokens"):
        train_lm(tiny_lm(**RESUMED, max_tokens=800, epochs=3), run, resume=True)
    done = tmp_path / "done"
    train_lm(tiny_lm(**RESUMED, epochs=1), done)
    with pytest.raises(NceLmError, match="has trained its 1 epochs: raise --epochs"):
        train_lm(tiny_lm(**RESUMED, epochs=1), done, resume=True)


def test_cli_epochs_alone_lifts_a_token_cap_and_says_so(lm_corpus: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    common = [
        "--train",
        str(lm_corpus / "train.txt"),
        "--valid",
        str(lm_corpus / "valid.txt"),
        "--dim",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--seq-len",
        "10",
        "--noise-samples",
        "4",
        "--quiet",
    ]
    assert main(["lm", "train", *common, "-o", str(run), "--epochs", "1", "--max-tokens", "800"]) == 0
    capsys.readouterr()
    assert main(["lm", "train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "lifts the run's cap of 800 tokens: training goes on to the end of epoch 2" in out
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["tokens_seen"] > 800
    assert out.strip().splitlines()[-1].startswith(f"wrote {run}: config.json, vocab.json, last.pt (for --resume)")


def test_lm_resume_may_change_the_learning_rate(tiny_lm, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_lm(tiny_lm(**RESUMED, epochs=1), run)
    metrics = train_lm(tiny_lm(**{**RESUMED, "lr": 0.003}, epochs=2), run, resume=True)
    assert metrics["history"][-1]["lr"] == 0.003
    with pytest.raises(NceLmError, match=r"other settings \(dropout 0.3 -> 0.1\); only epochs, max_tokens, lr"):
        train_lm(tiny_lm(**{**RESUMED, "dropout": 0.1}, epochs=3), run, resume=True)


def test_the_progress_bar_ends_at_the_token_cap(tiny_lm, tmp_path: Path, monkeypatch) -> None:
    from tqdm import tqdm

    from nce_lm.lm import train as train_module

    totals: list[int] = []
    progress = train_module._progress

    def recorded(config, ctx, total: int, epoch: int) -> tqdm:
        totals.append(total)
        return progress(config, ctx, total, epoch)

    monkeypatch.setattr(train_module, "_progress", recorded)
    train_lm(tiny_lm(**RESUMED, max_tokens=800), tmp_path / "run")
    assert totals == [10]


def test_the_corpus_check_compares_with_the_trained_corpus_not_the_vocabulary(
    topic_corpus: Path, tmp_path: Path, capsys
) -> None:
    from nce_lm.pipeline.vocab import build_vocab

    half = tmp_path / "half.txt"
    half.write_text("\n".join(topic_corpus.read_text().splitlines()[:300]) + "\n")
    vocab = build_vocab([topic_corpus])  # counted on more text than the run trains on
    train_skipgram(half, SG, vocab=vocab, progress=False, checkpoint=tmp_path / "c.pt")
    capsys.readouterr()
    train_skipgram(half, replace(SG, epochs=3), progress=False, resume=tmp_path / "c.pt")
    assert capsys.readouterr().err == ""


def test_a_token_capped_run_of_two_ranks_continues_its_epoch_in_one_process(
    lm_corpus: Path, tmp_path: Path, capsys, torchrun
) -> None:
    """Under torchrun only rank 0's hidden state could be saved, so the epoch goes on at the same step from a
    fresh state, and says so."""
    run = tmp_path / "run"
    settings = [
        "--train",
        str(lm_corpus / "train.txt"),
        "--valid",
        str(lm_corpus / "valid.txt"),
        "--dim",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--seq-len",
        "10",
        "--noise-samples",
        "4",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--max-tokens",
        "800",
    ]
    torchrun(["-m", "nce_lm", "lm", "train", *settings, "-o", str(run)])
    partial = load_payload(run / "last.pt", Vocab.load(run / "vocab.json"))["partial"]
    assert partial["steps"] == 10 and partial["hidden"] is None and partial["cpu_rng"] is None
    assert main(["lm", "train", "--resume", str(run), "--max-tokens", "1600", "--quiet"]) == 0
    assert "note: epoch 1 continues at step 11 from a fresh hidden state" in capsys.readouterr().out
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [(h["epoch"], h["steps"], h["tokens_seen"]) for h in history] == [(1, 20, 1600)]


def test_resuming_on_an_edited_training_text_warns(tiny_lm, lm_corpus: Path, tmp_path: Path, capsys) -> None:
    """Issue 16: a resumed LM run whose training text changed in place says so (new words become <unk>)."""
    folder = tmp_path / "data"
    shutil.copytree(lm_corpus, folder)
    run = tmp_path / "run"
    train_lm(tiny_lm(folder, **RESUMED, max_tokens=800), run)
    train_lm(tiny_lm(folder, **RESUMED, max_tokens=1_600), run, resume=True)
    assert "not the one this run was trained on" not in capsys.readouterr().err
    with open(folder / "train.txt", "a") as text:
        text.write("brand new words here\n")
    train_lm(tiny_lm(folder, **RESUMED, max_tokens=2_400), run, resume=True)
    assert "not the one this run was trained on" in capsys.readouterr().err
