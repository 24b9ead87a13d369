"""Pictures of language-model runs: training curves of one or several runs, and the spread of log Z.

Matplotlib is an optional extra (``pip install 'nce_lm[plot]'``), imported here only, with the Agg backend (no
display needed). Figures are written atomically, in the format the file name's suffix names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path
from nce_lm.lm.run_log import RunCurves

MARKED_POINTS = 30  # curves of at most this many points (one per epoch, say) show each point


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend; an :class:`NceLmError` saying how to install it when it is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NceLmError("plots need matplotlib: pip install 'nce_lm[plot]'") from None
    return plt


def check_figure_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, a figure that could not be written: no matplotlib, or a suffix it cannot write."""
    plt = pyplot()
    suffix = Path(path).suffix.lstrip(".").lower()
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if suffix not in supported:
        raise NceLmError(f"{path}: give a figure file name ending in one of .{', .'.join(sorted(supported))}")


def _save(figure: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".").lower(), dpi=120, bbox_inches="tight")


def plot_curves(runs: list[RunCurves], path: str | os.PathLike[str]) -> None:
    """Three panels against training tokens, one colour per run: exact validation perplexity, the training
    objective's loss, and the mean log Z(c) on validation with a band of ± one standard deviation."""
    plt = pyplot()
    from matplotlib import ticker

    figure, (ppl_axis, loss_axis, z_axis) = plt.subplots(1, 3, figsize=(15, 4.2))
    try:
        for index, run in enumerate(runs):
            style = {"color": f"C{index % 10}", "label": f"{run.name} ({run.objective})"}
            if run.valid:
                tokens = np.array([r["tokens"] for r in run.valid], dtype=float)
                marker = "o" if len(tokens) <= MARKED_POINTS else None
                mean = np.array([np.nan if r["log_z_mean"] is None else r["log_z_mean"] for r in run.valid])
                std = np.array([np.nan if r["log_z_std"] is None else r["log_z_std"] for r in run.valid])
                ppl_axis.plot(tokens, [r["valid_ppl"] for r in run.valid], marker=marker, **style)
                z_axis.plot(tokens, mean, marker=marker, **style)
                z_axis.fill_between(tokens, mean - std, mean + std, color=style["color"], alpha=0.2, linewidth=0)
                if marker:  # a band needs two points; a bar shows the spread of each
                    z_axis.errorbar(tokens, mean, yerr=std, fmt="none", ecolor=style["color"], capsize=3, alpha=0.6)
            if run.train:
                tokens = np.array([r["tokens"] for r in run.train], dtype=float)
                marker = "o" if len(tokens) <= MARKED_POINTS else None
                loss_axis.plot(tokens, [r["loss"] for r in run.train], marker=marker, **style)
        ppl_axis.set(title="validation perplexity (exact)", xlabel="training tokens", ylabel="perplexity")
        ppl_axis.set_yscale("log")
        ppl_axis.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))  # 200, not 2 × 10²
        ppl_axis.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        loss_axis.set(title="training loss (each objective's own)", xlabel="training tokens", ylabel="loss per token")
        z_axis.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        z_axis.set(title="log Z(c) on validation: mean ± std", xlabel="training tokens", ylabel="log Z")
        for axis in (ppl_axis, loss_axis, z_axis):
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize="small")
        _save(figure, path)
    finally:
        plt.close(figure)


def plot_log_z_histogram(log_z: np.ndarray, path: str | os.PathLike[str], title: str) -> None:
    """A histogram of log Z(c) over every scored position (N,), with 0 (a self-normalized model's target) and
    the mean marked; ``title`` says which model on which text."""
    plt = pyplot()
    log_z = np.asarray(log_z, dtype=np.float64)
    if log_z.size == 0:
        raise NceLmError("no log Z values to draw")
    mean, std = float(log_z.mean()), float(log_z.std())
    figure, axis = plt.subplots(figsize=(7, 4.2))
    try:
        axis.hist(log_z, bins=100, color="C0")
        axis.axvline(0.0, color="grey", linestyle="--", linewidth=1, label="log Z = 0 (self-normalized)")
        axis.axvline(mean, color="C3", linewidth=1.5, label=f"mean {mean:+.3f} ± {std:.3f}")
        axis.set(title=title, xlabel="log Z(c)", ylabel=f"positions (of {log_z.size:,})")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
        _save(figure, path)
    finally:
        plt.close(figure)
