"""What a skip-gram checkpoint holds (:class:`SkipGramState`: the tables and the position in the schedule, and
inside an epoch the :class:`EpochPosition`), and its file: settings, vocabulary and state in one torch file
(:mod:`nce_lm.training.checkpoint`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.pipeline.vocab import Vocab
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.training import checkpoint

if TYPE_CHECKING:
    import torch

FORMAT = "nce_lm.skipgram.trainer"


@dataclass
class SkipGramState:
    """The trainable tables and the position in the schedule: what a checkpoint holds."""

    input_vectors: torch.Tensor | np.ndarray  # (V, d); numpy while the fused kernel trains them, tensors in files
    output_vectors: torch.Tensor | np.ndarray  # (V, d)
    epochs_done: int = 0
    loss_per_epoch: list[float] = field(default_factory=list)
    noise_rng: torch.Tensor | None = None  # the noise generator's state, so a resumed run draws what it would have
    output_bias: torch.Tensor | np.ndarray | None = None  # (V,), when the model has one
    optimizer_state: dict[str, torch.Tensor] | None = None  # row-wise Adagrad's accumulators, by table
    schedule: LinearSchedule | None = None  # SGD's learning rate; None: a fresh run's, from lr at word 0
    corpus_counts: str | None = None  # sha256 of the training corpus's id counts (corpus_fingerprint)
    words_done: float | None = None  # the schedule's clock at the save; None: corpus words × epochs_done
    position: EpochPosition | None = None  # saved inside epoch ``epochs_done``: where in it; None: between epochs


@dataclass(frozen=True)
class EpochPosition:
    """Where inside an epoch a checkpoint was saved, so that a resumed run continues it exactly: after
    ``chunks_done`` chunks of ``chunk_tokens`` words (:mod:`nce_lm.skipgram.windows`; their subsampling and window
    draws are made again, not trained again), with ``examples_done`` examples trained (the fused kernel's noise is
    keyed by the example's index in the epoch) and their summed loss ``loss_sum``. The noise generator's state is
    the checkpoint's ``noise_rng``."""

    chunks_done: int
    examples_done: int
    loss_sum: float
    chunk_tokens: int


@dataclass(frozen=True)
class LinearSchedule:
    """SGD's learning rate, decaying linearly from ``lr`` after ``start_words`` corpus words to ``min_lr`` after
    ``total_words`` (word2vec's schedule: a fresh run starts at word 0). A resumed run keeps its schedule when
    it asks for the same length and rates, so it takes exactly the steps of an uninterrupted run; asked for more
    epochs (or another rate), it re-spreads the decay over the words that remain, from the rate reached (or
    the rate asked for): the rate never jumps back up by itself."""

    lr: float
    start_words: float
    total_words: float
    min_lr: float

    def rate(self, words_done: float) -> float:
        span = self.total_words - self.start_words
        if span <= 0:
            return self.min_lr
        return max(self.min_lr, self.lr - (self.lr - self.min_lr) * (words_done - self.start_words) / span)


def corpus_fingerprint(counts: np.ndarray) -> str:
    """sha256 of a corpus's id counts (V,): equal for the same text under the same vocabulary, whatever its files."""
    return hashlib.sha256(np.asarray(counts, dtype="<i8").tobytes()).hexdigest()


def save_checkpoint(path: str | os.PathLike[str], config: SkipGramConfig, vocab: Vocab, state: SkipGramState) -> None:
    """Settings, vocabulary and ``state`` (tensors on the CPU) in one torch file, loadable with weights_only."""
    payload: dict[str, Any] = {f.name: getattr(state, f.name) for f in fields(state)}
    payload["schedule"] = asdict(state.schedule) if state.schedule is not None else None
    payload["position"] = asdict(state.position) if state.position is not None else None
    checkpoint.save_checkpoint(path, FORMAT, vocab, {"config": asdict(config), "vocab": vocab.to_dict(), **payload})


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[SkipGramConfig, Vocab, SkipGramState]:
    """Read a checkpoint written by :func:`save_checkpoint`; damage is an :class:`NceLmError`."""
    import torch

    payload = checkpoint.load_checkpoint(path, FORMAT, "skip-gram")
    try:
        vocab = Vocab.from_dict(payload["vocab"])
        config = SkipGramConfig.from_dict(payload["config"])
    except (NceLmError, KeyError, TypeError) as err:
        raise NceLmError(f"checkpoint {path} is damaged: {err}") from None
    if "vocab_fingerprint" in payload:
        checkpoint.check_vocabulary(
            payload, vocab, f"checkpoint {path} is damaged: its vocabulary does not match the fingerprint it recorded"
        )
    optional = {"optimizer_state", "schedule", "corpus_counts", "words_done", "position"}  # absent from older files
    try:
        saved = {f.name: payload.get(f.name) if f.name in optional else payload[f.name] for f in fields(SkipGramState)}
        saved["schedule"] = LinearSchedule(**saved["schedule"]) if saved["schedule"] is not None else None
        saved["position"] = EpochPosition(**saved["position"]) if saved["position"] is not None else None
        state = SkipGramState(**saved)
        state.epochs_done, state.loss_per_epoch = int(state.epochs_done), list(state.loss_per_epoch)
    except (KeyError, TypeError, ValueError):
        raise NceLmError(f"checkpoint {path} is incomplete") from None
    tables = (state.input_vectors, state.output_vectors, state.output_bias, state.noise_rng)
    if not all(t is None or isinstance(t, torch.Tensor) for t in tables) or state.input_vectors is None:
        raise NceLmError(f"checkpoint {path} is damaged: its tables are not tensors")
    if state.input_vectors.shape != (len(vocab), config.dim) or state.output_vectors.shape != state.input_vectors.shape:
        raise NceLmError(f"checkpoint {path} is inconsistent: tables do not match its vocabulary and dimension")
    return config, vocab, state


def continued_schedule(
    saved: SkipGramConfig, config: SkipGramConfig, state: SkipGramState, corpus_words: int
) -> LinearSchedule:
    """The learning-rate schedule of a run resumed from ``state`` (saved with ``saved``) with ``config``.

    Same length and rates: the checkpoint's schedule, unchanged. Otherwise the decay starts again from where
    the run is, at the rate it had reached (or at ``config.lr`` when that changed), and reaches ``min_lr`` at
    the end of ``config.epochs``.
    """
    total = float(corpus_words * config.epochs)
    schedule = state.schedule or LinearSchedule(saved.start_lr(), 0, corpus_words * saved.epochs, saved.min_lr)
    same_rates = config.start_lr() == saved.start_lr() and config.min_lr == saved.min_lr
    if same_rates and schedule.total_words == total:
        return schedule
    done = float(corpus_words * state.epochs_done)
    if state.position is not None and state.words_done is not None:  # saved inside an epoch
        done = state.words_done
    lr = schedule.rate(done) if config.start_lr() == saved.start_lr() else config.start_lr()
    return LinearSchedule(max(lr, config.min_lr), done, total, config.min_lr)
