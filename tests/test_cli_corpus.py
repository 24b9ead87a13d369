"""End to end through `nce-lm vocab|prepare|data`: output, exit status, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nce_lm.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse errors and --help
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_vocab_then_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat\nthe dog <unk>\n")
    vocab_path = tmp_path / "v.json"
    status, out, _ = run(["vocab", str(corpus), "-o", str(vocab_path)], capsys)
    assert status == 0
    assert "5 entries" in out and "5 tokens in 2 lines" in out and "80.0000%" in out
    assert json.loads(vocab_path.read_text())["tokens"][:3] == ["<unk>", "<eos>", "the"]
    status, out, _ = run(["prepare", str(corpus), "--vocab", str(vocab_path), "-o", str(tmp_path / "ids")], capsys)
    assert status == 0 and out.startswith("wrote 7 token ids (2 lines)")
    status, out, _ = run(["prepare", str(corpus), "--vocab", str(vocab_path), "-o", str(tmp_path / "ids")], capsys)
    assert status == 0 and out.startswith("reused")


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["vocab", str(d / "absent.txt"), "-o", str(d / "v.json")], "corpus file not found"),
        (lambda d: ["vocab", str(d / "bad.txt"), "-o", str(d / "v.json")], "invalid UTF-8 at byte offset 2"),
        (lambda d: ["vocab", str(d / "c.txt"), "-o", str(d / "v.json"), "--min-count", "9"], "vocabulary is empty"),
        (
            lambda d: ["vocab", str(d / "c.txt"), "-o", str(d / "v.json"), "--min-count", "0"],
            "--min-count: must be at least 1",
        ),
        (lambda d: ["prepare", str(d / "c.txt"), "--vocab", str(d / "c.txt"), "-o", str(d / "x")], "vocabulary"),
        (lambda d: ["data", "path"], "needs a dataset name"),
    ],
)
def test_bad_inputs_end_in_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args, message: str
) -> None:
    (tmp_path / "c.txt").write_text("a b\n")
    (tmp_path / "bad.txt").write_bytes(b"a \xfe b\n")
    status, _out, err = run(make_args(tmp_path), capsys)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("nce-lm ") and message in err
    assert not (tmp_path / "v.json").exists()


def test_every_verb_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("vocab", "prepare", "data"):
        status, out, _ = run([verb, "--help"], capsys)
        assert status == 0 and "usage: nce-lm " + verb in out
