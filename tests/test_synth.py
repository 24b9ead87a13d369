"""Synthetic corpora: the recorded floor is the teacher's exact cross-entropy, and the samples follow the teacher."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.pipeline.synth import Teacher, TeacherConfig, write_corpus
from nce_lm.pipeline.vocab import build_vocab

CONFIG = TeacherConfig(vocab=12, classes=3, mix=0.8, zipf=1.0, mean_line=6.0, seed=3)


def brute_force_conditional(teacher: Teacher) -> np.ndarray:
    """p*(w | prev) as a (V + 1, V + 1) matrix from the formula; row V is the line start, column V is <eos>."""
    c = teacher.config
    u = np.array([(w + 1) ** -c.zipf for w in range(c.vocab)])
    u /= u.sum()
    table = np.zeros((c.vocab + 1, c.vocab + 1))
    for prev in range(c.vocab + 1):
        target = teacher.successor[(prev if prev < c.vocab else 0) % c.classes]
        in_class = np.array([w % c.classes == target for w in range(c.vocab)])
        class_part = u * in_class / u[in_class].sum()
        table[prev, : c.vocab] = (1 - 1 / c.mean_line) * (c.mix * class_part + (1 - c.mix) * u)
        table[prev, c.vocab] = 1 / c.mean_line
    return table


def test_teacher_rows_are_distributions_and_match_the_formula() -> None:
    teacher = Teacher(CONFIG)
    table = brute_force_conditional(teacher)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    previous = torch.arange(CONFIG.vocab).repeat_interleave(CONFIG.vocab + 1)
    words = torch.cat([torch.arange(CONFIG.vocab), torch.tensor([-1])]).repeat(CONFIG.vocab)
    got = teacher.log_prob(previous, words).exp().numpy().reshape(CONFIG.vocab, CONFIG.vocab + 1)
    np.testing.assert_allclose(got, table[: CONFIG.vocab], rtol=1e-12)


def test_recorded_floor_is_the_exact_cross_entropy_of_the_test_text(tmp_path: Path) -> None:
    report = write_corpus(tmp_path, 3000, CONFIG)
    table = brute_force_conditional(Teacher(CONFIG))
    total, count = 0.0, 0
    for line in (tmp_path / "test.txt").read_text().splitlines():
        prev = CONFIG.vocab  # line start
        for token in [*line.split(), "<eos>"]:
            word = CONFIG.vocab if token == "<eos>" else int(token[1:])
            total += math.log(table[prev, word])
            count += 1
            prev = word
    assert count == report["tokens"]["test"]
    assert report["test_cross_entropy"] == pytest.approx(-total / count, rel=1e-10)
    assert json.loads((tmp_path / "teacher.json").read_text())["test_floor_ppl"] == pytest.approx(
        math.exp(-total / count)
    )
    assert report["test_floor_ppl"] < report["unigram_ppl"]
    assert sum(report["tokens"].values()) >= 3000


def test_samples_follow_the_teacher() -> None:
    teacher = Teacher(CONFIG)
    lines, _ = teacher.sample_lines(40_000, torch.Generator().manual_seed(0))
    table = brute_force_conditional(teacher)
    bigrams: Counter[tuple[int, int]] = Counter()
    for line in lines:
        previous = CONFIG.vocab
        for word in [*line.tolist(), CONFIG.vocab]:
            bigrams[previous, word] += 1
            previous = word
    for prev in (CONFIG.vocab, 0, 1):  # line start and the two most frequent words
        row_total = sum(n for (p, _), n in bigrams.items() if p == prev)
        observed = np.array([bigrams[prev, w] for w in range(CONFIG.vocab + 1)], dtype=float)
        expected = table[prev] * row_total
        statistic = ((observed - expected) ** 2 / np.maximum(expected, 1e-12)).sum()
        assert statistic < 60, (prev, statistic)  # chi-square, 12 dof: p < 1e-7 beyond 60


def test_seed_repeats_and_vocabulary_fits(tmp_path: Path) -> None:
    write_corpus(tmp_path / "a", 2000, CONFIG)
    write_corpus(tmp_path / "b", 2000, CONFIG)
    for name in ("train.txt", "valid.txt", "test.txt", "teacher.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    vocab = build_vocab([tmp_path / "a" / "train.txt"])
    assert len(vocab) <= CONFIG.vocab + 2


def test_cli_and_bad_options(tmp_path: Path, capsys) -> None:
    assert main(["synth", "-o", str(tmp_path / "s"), "--vocab", "50", "--tokens", "500", "--quiet"]) == 0
    assert "floor" in capsys.readouterr().out
    for argv, message in [
        (["--vocab", "1", "--tokens", "500"], "--vocab: must be between 2 and"),
        (["--vocab", "50", "--tokens", "10"], "--tokens: must be at least 100"),
        (["--vocab", "50", "--tokens", "500", "--mix", "2"], "--mix: must be a finite number between 0 and 1"),
        (["--vocab", "50", "--tokens", "500", "--classes", "99"], "classes must be between"),
    ]:
        assert main(["synth", "-o", str(tmp_path / "x"), *argv, "--quiet"]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(NceLmError, match="not a folder"):
        (tmp_path / "file").write_text("")
        write_corpus(tmp_path / "file", 500, CONFIG)
