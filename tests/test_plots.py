"""Pictures of runs: the run-log reader (log.jsonl, else metrics.json), ``nce-lm plot`` and ``lm eval --plot``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nce_lm.cli import main
from nce_lm.errors import NceLmError
from nce_lm.lm import LMConfig, evaluate_lm, train_lm
from nce_lm.lm.run_log import read_curves

C0, C1 = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's first two colours: the first and second run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny nce run of two epochs: its metrics.json as the trainer writes it, without its log.jsonl (a run
    from before the per-step log, which the reader falls back from)."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("plots")
    text = "\n".join(" ".join(f"w{i}" for i in rng.integers(0, 15, size=8)) for _ in range(60)) + "\n"
    (folder / "c.txt").write_text(text)
    config = LMConfig(
        train=str(folder / "c.txt"),
        valid=str(folder / "c.txt"),
        dim=8,
        layers=1,
        seq_len=8,
        batch_size=4,
        epochs=2,
        noise_samples=4,
        is_samples=4,
        progress=False,
        device="cpu",
    )
    train_lm(config, folder / "run")
    (folder / "run" / "log.jsonl").unlink()
    return folder / "run"


def _log_run(folder: Path, lines: list[str]) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"objective": "full"}))
    (folder / "log.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


STEPS = [
    json.dumps({"step": 10, "tokens": 1000, "loss": 5.0, "lr": 0.01, "tokens_per_s": 900.0}),
    json.dumps({"step": 20, "tokens": 2000, "loss": 4.0, "lr": 0.01, "tokens_per_s": 950.0}),
    json.dumps({"step": 20, "tokens": 2000, "valid_ppl": 80.0, "log_z_mean": 0.5, "log_z_std": 0.25}),
]


def test_the_reader_prefers_the_per_step_log_and_ignores_a_line_cut_short(run: Path, tmp_path: Path) -> None:
    logged = read_curves(_log_run(tmp_path / "logged", [*STEPS, '{"step": 30, "tok']))
    assert logged.source == "log.jsonl" and logged.objective == "full"
    assert [(r["tokens"], r["loss"]) for r in logged.train] == [(1000, 5.0), (2000, 4.0)]
    assert [(r["valid_ppl"], r["log_z_mean"], r["log_z_std"]) for r in logged.valid] == [(80.0, 0.5, 0.25)]
    epochs = read_curves(run)
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert epochs.source == "metrics.json" and epochs.objective == "nce"
    assert [r["tokens"] for r in epochs.valid] == [h["tokens_seen"] for h in history]
    assert [r["valid_ppl"] for r in epochs.valid] == [h["valid"]["ppl"] for h in history]
    assert [r["loss"] for r in epochs.train] == [h["train_objective_loss"] for h in history]
    with pytest.raises(NceLmError, match="log.jsonl:2 is not a JSON record"):
        read_curves(_log_run(tmp_path / "broken", [STEPS[0], "{oops", STEPS[2]]))
    with pytest.raises(NceLmError, match="validation record missing log_z_std"):
        read_curves(_log_run(tmp_path / "short", [STEPS[2].replace(', "log_z_std": 0.25', "")]))


def _pixels(path: Path) -> np.ndarray:
    """The figure's RGB pixels (H, W, 3) as 0-255 integers."""
    import matplotlib.image

    return np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(int)


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels - np.array(colour)).max(axis=-1) <= 2).sum() > 50)


def test_plot_draws_every_run_in_its_colour(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    logged = _log_run(tmp_path / "logged", STEPS)
    one = tmp_path / "one.png"
    assert main(["plot", str(run), "-o", str(one)]) == 0
    pixels = _pixels(one)
    assert pixels.shape[1] > 1000 and _has_colour(pixels, C0) and not _has_colour(pixels, C1)
    two = tmp_path / "two.png"
    assert main(["plot", str(run), str(logged), "-o", str(two)]) == 0
    assert "run (metrics.json), logged (log.jsonl)" in capsys.readouterr().out
    assert _has_colour(_pixels(two), C0) and _has_colour(_pixels(two), C1)
    assert main(["plot", str(run), "-o", str(tmp_path / "curves.xyz")]) == 2
    assert "give a figure file name ending in one of" in capsys.readouterr().err
    assert not (tmp_path / "curves.xyz").exists()


def test_lm_eval_draws_the_log_z_of_every_position_it_scores(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink: list[torch.Tensor] = []
    metrics = evaluate_lm(run, run.parent / "c.txt", log_z_sink=sink)
    log_z = torch.cat(sink).double()
    assert len(log_z) == metrics["tokens"]
    assert float(log_z.mean()) == pytest.approx(metrics["mean_log_z"], abs=1e-6)
    assert float(log_z.std(unbiased=False)) == pytest.approx(metrics["std_log_z"], abs=1e-5)
    pytest.importorskip("matplotlib")
    figure = tmp_path / "hist.png"
    assert main(["lm", "eval", str(run), "--data", str(run.parent / "c.txt"), "--quiet", "--plot", str(figure)]) == 0
    assert f"wrote {figure}" in capsys.readouterr().out
    assert _has_colour(_pixels(figure), C0)


def test_without_matplotlib_plots_are_one_line_naming_the_extra(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    for argv in (
        ["plot", str(run), "-o", str(tmp_path / "c.png")],
        ["lm", "eval", str(run), "--data", str(run.parent / "c.txt"), "--plot", str(tmp_path / "h.png")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "pip install 'nce_lm[plot]'" in err[0]
    assert list(tmp_path.iterdir()) == []
