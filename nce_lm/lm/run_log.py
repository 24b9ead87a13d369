"""What a run folder tells of its training over time, read for plots: a per-step log or the per-epoch history.

``log.jsonl`` (:data:`LOG_FILE`) holds one JSON object per line, appended as the run goes (so a killed run
keeps what it logged): training records with :data:`TRAIN_FIELDS` every few steps and validation records with
:data:`VALID_FIELDS` at every validation. A last line cut short by a kill is ignored; any other line that is
not such a record is an error naming the file and line. Where a resumed run logged a step again, its last
record counts. A run folder without ``log.jsonl`` falls back to
``metrics.json``, written when a run ends, whose ``history`` has one entry per epoch (or per ``--max-tokens``
stop): its training loss is the epoch's mean, its validation the exact evaluation after it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json

LOG_FILE = "log.jsonl"
TRAIN_FIELDS = ("step", "tokens", "loss", "lr", "tokens_per_s")
VALID_FIELDS = ("step", "tokens", "valid_ppl", "log_z_mean", "log_z_std")


@dataclass
class RunCurves:
    """One run's curves against training tokens: ``train`` records carry ``tokens`` and ``loss``, ``valid``
    records ``tokens``, ``valid_ppl``, ``log_z_mean`` and ``log_z_std``."""

    name: str  # the run folder's name
    objective: str  # the training objective, from config.json
    source: str  # the file the curves came from: log.jsonl or metrics.json
    train: list[dict[str, float]] = field(default_factory=list)
    valid: list[dict[str, float]] = field(default_factory=list)


def validation_record(tokens: int, scores: dict[str, Any]) -> dict[str, Any]:
    """A validation record's figures after ``tokens`` training tokens (:data:`VALID_FIELDS` but the step), from an
    exact evaluation's ``scores`` (:func:`nce_lm.lm.evaluate.evaluate_model`)."""
    return {
        "tokens": tokens,
        "valid_ppl": scores["ppl"],
        "log_z_mean": scores["mean_log_z"],
        "log_z_std": scores["std_log_z"],
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _log_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl``, a truncated last line left out."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise NceLmError(f"cannot read {path}: {err}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # cut short by a kill while it was written
                break
            raise NceLmError(f"{path}:{number} is not a JSON record") from None
        if not isinstance(record, dict):
            raise NceLmError(f"{path}:{number} is not a JSON object")
        kind = VALID_FIELDS if "valid_ppl" in record else TRAIN_FIELDS
        missing = [name for name in kind if name not in record]
        if missing or not all(_is_number(record[name]) or record[name] is None for name in kind):
            what = "missing " + ", ".join(missing) if missing else "a field that is not a number"
            raise NceLmError(f"{path}:{number}: a {'validation' if kind is VALID_FIELDS else 'training'} record {what}")
        records.append(record)
    return records


def _from_history(history: Any, path: Path) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Training and validation points of metrics.json's per-epoch ``history``."""
    if not isinstance(history, list):
        raise NceLmError(f"{path} has no training history")
    train, valid = [], []
    try:
        for entry in history:
            tokens = entry["tokens_seen"]
            train.append({"tokens": tokens, "loss": entry["train_objective_loss"]})
            valid.append(validation_record(tokens, entry["valid"]))
    except (KeyError, TypeError):
        raise NceLmError(f"{path}: a history entry lacks the tokens seen, the loss or the validation") from None
    return train, valid


def _last_per_step(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records in step order, the last one logged for each step: a run killed between checkpoints and resumed
    logs the steps it replays again."""
    return sorted({record["step"]: record for record in records}.values(), key=lambda record: record["step"])


def read_curves(run_dir: str | os.PathLike[str]) -> RunCurves:
    """The curves of a run folder, from its ``log.jsonl`` or else its ``metrics.json``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NceLmError(f"run folder not found: {run_dir}")
    config = read_json(run_dir / "config.json", "run config")
    objective = str(config.get("objective", "?")) if isinstance(config, dict) else "?"
    log = run_dir / LOG_FILE
    if log.is_file():
        records = _log_records(log)
        train = _last_per_step([r for r in records if "valid_ppl" not in r])
        valid = _last_per_step([r for r in records if "valid_ppl" in r])
        source = LOG_FILE
    elif (run_dir / "metrics.json").is_file():
        metrics = read_json(run_dir / "metrics.json", "run metrics")
        history = metrics.get("history") if isinstance(metrics, dict) else None
        train, valid = _from_history(history, run_dir / "metrics.json")
        source = "metrics.json"
    else:
        raise NceLmError(f"{run_dir} has neither {LOG_FILE} nor metrics.json (written when a run ends)")
    valid = [r for r in valid if r["valid_ppl"] is not None and math.isfinite(r["valid_ppl"])]
    if not train and not valid:
        raise NceLmError(f"{run_dir / source} holds no training or validation record yet")
    return RunCurves(run_dir.resolve().name, objective, source, train, valid)
