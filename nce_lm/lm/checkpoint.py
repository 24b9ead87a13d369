"""Run folders: configuration and vocabulary as JSON, model and training state as tensors.

A run folder holds ``config.json``, ``vocab.json``, ``last.pt`` (model, optimizer, learning rate, epoch,
history and every random state: enough to continue exactly) and ``best.pt`` (the model with the best
validation perplexity), written and read by :mod:`nce_lm.training.checkpoint`. Each ``.pt``'s vocabulary
fingerprint is checked against ``vocab.json`` when it is read back: a replaced or edited vocabulary is refused
instead of silently mapping words to another word's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nce_lm.clobber import check_output_folder
from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic
from nce_lm.lm.config import LMConfig
from nce_lm.lm.model import LanguageNetwork, build_model
from nce_lm.lm.run_log import LOG_FILE
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.vocab import Vocab
from nce_lm.training.checkpoint import check_vocabulary, load_checkpoint, save_checkpoint
from nce_lm.training.devices import resolve_device

FORMAT = "nce_lm.lm"


def save_payload(path: Path, payload: dict[str, Any], vocab: Vocab) -> None:
    """Write ``payload`` with the format tag and ``vocab``'s fingerprint, atomically."""
    save_checkpoint(path, FORMAT, vocab, payload)


def load_payload(path: Path, vocab: Vocab) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_payload` for ``vocab``; anything else is an NceLmError."""
    payload = load_checkpoint(path, FORMAT, "language-model")
    check_vocabulary(
        payload,
        vocab,
        f"{path} was trained on another vocabulary than {path.parent / 'vocab.json'}: the run "
        "folder's files do not belong together",
    )
    return payload


RUN_FILES = ("config.json", "vocab.json", "last.pt", "best.pt", "metrics.json", LOG_FILE, "cache")


def _is_run_folder(folder: Path) -> bool:
    """Whether ``folder``'s config.json is a run's: a JSON object (checked in full when the run is resumed)."""
    try:
        return isinstance(read_json(folder / "config.json", "run config"), dict)
    except NceLmError:
        return False


def check_new_run_folder(option: str, run_dir: Path) -> None:
    """Refuse a folder for a new run that holds files a run did not write (a run's own files, including those
    of a run that stopped before its first checkpoint, are left for ``train_lm`` to judge)."""
    check_output_folder(option, run_dir, "lm train", RUN_FILES, _is_run_folder)


def write_run_files(run_dir: Path, config: LMConfig, vocab: Vocab) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", config.to_dict())
    vocab.save(run_dir / "vocab.json")


def read_run_files(run_dir: Path) -> tuple[LMConfig, Vocab]:
    """The settings and vocabulary :func:`write_run_files` wrote."""
    return LMConfig.from_dict(read_json(run_dir / "config.json", "run config")), Vocab.load(run_dir / "vocab.json")


def noise_for(config: LMConfig, vocab: Vocab, device: torch.device | str = "cpu") -> NoiseDistribution:
    """The run's noise distribution q ∝ count^α over its vocabulary (every id that occurs in training)."""
    return NoiseDistribution(vocab.counts, config.noise_power, device=device)


@dataclass
class Run:
    config: LMConfig
    vocab: Vocab
    model: LanguageNetwork
    noise: NoiseDistribution
    payload: dict[str, Any]


def model_state(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's state dict in a checkpoint's payload: ``best.pt``'s ``model``, or the ``model.`` entries of
    ``last.pt``'s ``module`` (the model and its objective, trained as one module)."""
    if "model" in payload:
        return payload["model"]
    module = payload["module"]
    return {name.removeprefix("model."): value for name, value in module.items() if name.startswith("model.")}


def load_run(run_dir: Path, which: str = "best", device: str | None = None) -> Run:
    """Rebuild the model of a run folder from ``best.pt`` or ``last.pt``; mismatches, and weights that are not
    all finite (a diverged run), are an NceLmError."""
    if not run_dir.is_dir():
        raise NceLmError(f"run folder not found: {run_dir}")
    config = LMConfig.from_dict(read_json(run_dir / "config.json", "run config"))
    if device is not None:
        config = config.with_changes(device=device)
    try:
        config.validate()
    except NceLmError as err:
        raise NceLmError(f"{run_dir / 'config.json'} is invalid: {err}") from None
    vocab = Vocab.load(run_dir / "vocab.json")
    payload = load_payload(run_dir / f"{which}.pt", vocab)
    target = resolve_device(config.device)
    noise = noise_for(config, vocab, target)
    model = build_model(config, len(vocab), noise.log_probs.cpu())
    try:
        model.load_state_dict(model_state(payload))
    except (KeyError, RuntimeError) as err:
        raise NceLmError(
            f"{run_dir / (which + '.pt')} does not match the run's config or vocabulary: {str(err).splitlines()[0]}"
        ) from None
    diverged = next((name for name, t in model.state_dict().items() if not torch.isfinite(t).all()), None)
    if diverged is not None:
        raise NceLmError(
            f"{run_dir / (which + '.pt')} holds non-finite weights (NaN or infinity in {diverged}): the run "
            "diverged, so no perplexity it gives means anything; train again with a lower --lr"
        )
    return Run(config, vocab, model.to(target), noise, payload)
