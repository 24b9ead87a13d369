"""The settings of one skip-gram or CBOW run, their defaults (word2vec's and gensim's) and their validation."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

from nce_lm.errors import NceLmError
from nce_lm.fileio import check_field_types
from nce_lm.objectives.kinds import OBJECTIVE_KINDS
from nce_lm.skipgram.examples import MODELS
from nce_lm.training.devices import MAX_THREADS, resolve_device_name

OUTPUT_BIAS = ("fixed", "learned", "none")
SKIPGRAM_OPTIMIZER_LR = {"sgd": 0.025, "rowwise-adagrad": 0.1}  # the optimizers and their default learning rates
CBOW_SGD_LR = 0.05  # word2vec.c's default -alpha with -cbow 1 (gensim uses 0.025 for both models)
KERNELS = ("auto", "fused", "device", "torch")  # the implementations of the update (SkipGramConfig.kernel)
NOISE_PER = ("pair", "window")  # how often a skip-gram run draws its k noise words (SkipGramConfig.noise_per)
RENAMED = {"negatives": "noise_samples"}  # old setting names (checkpoints, configs, keyword arguments) -> new


@dataclass(frozen=True)
class SkipGramConfig:
    """Settings of one skip-gram (or CBOW) run; defaults are word2vec's and gensim's where they agree."""

    model: str = "skipgram"  # "skipgram" (word2vec -cbow 0, gensim sg=1) or "cbow" (-cbow 1; sg=0, cbow_mean=1)
    dim: int = 100  # vector size (word2vec -size 100, gensim vector_size=100)
    window: int = 5  # maximum distance between context and centre word (both: 5)
    noise_samples: int = 5  # k noise words per example (word2vec -negative 5, gensim negative=5)
    epochs: int = 5  # passes over the corpus (word2vec -iter 5, gensim epochs=5)
    min_count: int = 5  # words seen fewer times are removed (both: 5)
    max_final_vocab: int | None = None  # raise min_count until at most this many words remain (gensim's)
    sample: float = 1e-3  # subsampling threshold t (both: 1e-3; fastText uses 1e-4)
    noise_power: float = 0.75  # q ∝ count^α (both: 0.75; fastText 0.5)
    optimizer: str = "sgd"  # "sgd" (word2vec's) or "rowwise-adagrad" (for the large batches of a GPU)
    lr: float | None = None  # SGD: the starting rate (skip-gram 0.025 as both; CBOW 0.05 as word2vec, gensim 0.025);
    # row-wise Adagrad: the constant rate (0.1)
    min_lr: float = 0.0001  # SGD's final learning rate (gensim min_alpha; word2vec uses lr · 1e-4)
    batch_size: int = 1024  # examples per update (word2vec: 1); smaller batches stay in cache
    objective: str = "neg"  # any name of nce_lm.objectives.kinds.OBJECTIVE_KINDS except "full"
    shared_noise: bool = False  # one set of k noise words per batch instead of k per pair (word2vec: per pair)
    noise_per: str = "window"  # skip-gram: "window", one draw of k noise words shared by the pairs of a centre's
    # window (Ji et al. 2016; gensim's quality at 1.3x the speed, BENCHMARKS.md); "pair": k per (context, centre)
    # pair, as word2vec does. No effect on CBOW (an example is a window) or with shared_noise
    sync_every: int = 64  # under torchrun: average the tables across ranks every this many batches per rank
    output_bias: str | None = None  # a per-word bias b_w in s = v·u + b_w, starting at log q(w): "fixed" (not
    # trained), "learned" or "none"; None: fixed for objectives whose optimum is log p (nce, ranking), none for
    # neg and infonce (word2vec has none)
    device: str = "auto"  # auto (cuda when visible), cpu, cuda, cuda:N
    threads: int | None = None  # CPU threads for torch and the fused kernel (None: torch's default)
    kernel: str = "auto"  # "fused": the C kernel (CPU, one process); "device": pairs and update on the device
    # (for a GPU; runs on the CPU too); "torch": the torch path; "auto": fused where it applies, else device on CUDA
    seed: int = 1  # seeds subsampling, windows, initialisation and noise
    lowercase: bool = False  # tokenizer: lower-case the text (word2vec does not)
    split_punctuation: bool = False  # tokenizer: split punctuation off words (word2vec does not)

    def validate(self) -> None:
        """Every setting in range, or an :class:`NceLmError` naming the first that is not."""
        if self.model not in MODELS:
            raise NceLmError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        positive = ("dim", "window", "noise_samples", "epochs", "min_count", "batch_size", "sync_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise NceLmError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_final_vocab is not None and self.max_final_vocab < 1:
            raise NceLmError(f"max_final_vocab must be at least 1, got {self.max_final_vocab}")
        if not (self.sample >= 0 and math.isfinite(self.sample)):
            raise NceLmError(f"sample must be non-negative, got {self.sample}")
        if not 0 <= self.noise_power <= 1:
            raise NceLmError(f"noise_power must be between 0 and 1, got {self.noise_power}")
        if self.optimizer not in SKIPGRAM_OPTIMIZER_LR:
            raise NceLmError(f"optimizer must be one of {', '.join(SKIPGRAM_OPTIMIZER_LR)}, got {self.optimizer!r}")
        lr = self.start_lr()
        if not (0 < lr < math.inf and 0 <= self.min_lr <= lr):
            raise NceLmError(f"need 0 <= min_lr <= lr and lr > 0, got lr={lr}, min_lr={self.min_lr}")
        if self.objective in OBJECTIVE_KINDS and OBJECTIVE_KINDS[self.objective].classifier_kind is None:
            raise NceLmError("the skip-gram trainer takes a sampled objective (nce, neg, ranking, infonce)")
        if self.output_bias not in (None, *OUTPUT_BIAS):
            raise NceLmError(f"output_bias must be one of {', '.join(OUTPUT_BIAS)}, got {self.output_bias!r}")
        if self.noise_per not in NOISE_PER:
            raise NceLmError(f"noise_per must be one of {', '.join(NOISE_PER)}, got {self.noise_per!r}")
        if self.kernel not in KERNELS:
            raise NceLmError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise NceLmError(
                f"threads must be between 1 and {MAX_THREADS} (more threads than the {os.cpu_count()} "
                f"CPUs only wait for each other), got {self.threads}"
            )
        resolve_device_name(self.device)  # a valid name, and CUDA present when asked for

    def start_lr(self) -> float:
        """The learning rate at the start: the setting, or the optimizer's default (SGD with CBOW: word2vec's
        0.05; why in BENCHMARKS.md, CBOW against gensim)."""
        if self.lr is not None:
            return self.lr
        return (
            CBOW_SGD_LR if self.model == "cbow" and self.optimizer == "sgd" else SKIPGRAM_OPTIMIZER_LR[self.optimizer]
        )

    def bias_mode(self, models_log_probability: bool) -> str:
        """The output bias this run uses: the setting, or its default for the objective."""
        if self.output_bias is not None:
            return self.output_bias
        return "fixed" if models_log_probability else "none"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkipGramConfig:
        data = renamed(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NceLmError(f"unknown skip-gram settings: {', '.join(unknown)}")
        if isinstance(data.get("output_bias"), bool):  # checkpoints before the fixed bias: True meant learned
            data = {**data, "output_bias": "learned" if data["output_bias"] else "none"}
        check_field_types(cls, data, "skip-gram settings")
        return cls(**data)


def renamed(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the old names of :data:`RENAMED` under their new ones (an old and a new name for one
    setting: an :class:`NceLmError`)."""
    both = [old for old, new in RENAMED.items() if old in settings and new in settings]
    if both:
        raise NceLmError(f"{both[0]} is the old name of {RENAMED[both[0]]}: give one of them")
    return {RENAMED.get(name, name): value for name, value in settings.items()}
