"""The settings of one language-model run, saved as JSON beside its checkpoints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nce_lm.errors import NceLmError
from nce_lm.fileio import check_field_types
from nce_lm.lm.optim import DEFAULT_LR, LM_OPTIMIZERS, sparse_tables
from nce_lm.objectives.losses import OBJECTIVES, objective_class
from nce_lm.objectives.partition import DEFAULT_CHUNK_SIZE
from nce_lm.training.devices import PRECISIONS, check_device_name
from nce_lm.training.memory import check_memory

MODELS = ("lstm", "transformer")
DEFAULT_NOISE_SAMPLES = 1024  # k for a sampled objective, unless V is smaller
# α of q ∝ count^α for nce and ranking, whose logits subtract log q (docs/lm.md, "The noise power"); the others keep
# the unigram: neg and infonce, whose scores estimate a ratio to q (infonce's bound needs q = the unigram), and the
# full softmax, whose output bias starts at log q and draws no noise.
DEFAULT_NOISE_POWER = 0.75
DEFAULT_OPTIMIZER = "adam-rowwise"  # every objective, every V: docs/lm.md, "Defaults, and the measurements behind them"


def default_noise_power(objective: str) -> float:
    """α for ``objective`` when none is given: :data:`DEFAULT_NOISE_POWER` where the logit subtracts log q (nce,
    ranking), 1 (the unigram) for the others."""
    return DEFAULT_NOISE_POWER if objective_class(objective).kind.subtracts_log_q else 1.0


@dataclass(frozen=True)
class LMConfig:
    """One language-model run. Defaults: a small Zaremba-style LSTM trained with self-normalized NCE.

    ``noise_samples`` left as None depends on V, ``noise_power`` on the objective (:func:`default_noise_power`);
    ``optimizer`` and ``lr`` left as None are :data:`DEFAULT_OPTIMIZER` and its rate. :meth:`resolved` fills them in
    before training (docs/lm.md, "Defaults, and the measurements behind them").
    """

    train: str = ""  # training text, or a registered dataset name ("ptb", "wikitext-2") for all three splits
    valid: str = ""  # validation text (defaults to the dataset's when ``train`` names one)
    test: str = ""  # test text, optional
    model: str = "lstm"  # lstm (Zaremba et al. 2014) or transformer (causal, pre-norm)
    dim: int = 200  # embedding and hidden size
    layers: int = 2  # LSTM layers or Transformer blocks
    heads: int = 4  # attention heads (transformer)
    dropout: float = 0.2  # on embeddings and between layers
    tie_weights: bool = False  # output weight = input embedding (Press & Wolf 2017)
    objective: str = "nce"  # training objective: nce (self-normalized), ranking, neg, infonce, full
    noise_samples: int | None = None  # k, shared across the batch; None: min(DEFAULT_NOISE_SAMPLES, V)
    noise_power: float | None = None  # q ∝ count^α over the training text; None: default_noise_power(objective)
    seq_len: int = 35  # truncated back-propagation length (tokens)
    batch_size: int = 20  # parallel streams (the global batch under torchrun)
    epochs: int = 4  # passes over the training text
    max_tokens: int | None = None  # stop after this many training tokens instead (whole steps)
    optimizer: str | None = None  # one of lm/optim.py's LM_OPTIMIZERS; None: DEFAULT_OPTIMIZER
    lr: float | None = None  # None: the optimizer's default (lm/optim.py DEFAULT_LR)
    table_lr: float | None = None  # adam-rowwise: the tables' starting rate; None: lr × ROWWISE_TABLE_LR_SCALE
    lr_decay: float = 4.0  # divide the learning rate by this when validation perplexity does not improve
    clip: float = 0.25  # gradient-norm clipping
    device: str = "auto"  # auto (cuda when visible), cpu, cuda, cuda:N
    precision: str = "auto"  # fp32, bf16 (autocast), auto: bf16 on CUDA, fp32 on the CPU
    seed: int = 1
    eval_batch_size: int = 10
    is_samples: int = 1024  # samples for the importance-sampling estimate of log Z in evaluation
    progress: bool = True

    def _optimizer(self) -> str:
        if self.optimizer is None:
            raise NceLmError("the configuration's defaults are not resolved yet: call resolved(vocab_size)")
        return self.optimizer

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self._optimizer()]

    @property
    def draws_noise(self) -> bool:
        """Whether the objective draws k noise words (all but the full softmax)."""
        return objective_class(self.objective).needs_noise

    @property
    def sparse_tables(self) -> bool:
        """Whether the embedding tables train with row-sparse gradients (a sampled objective, not dense Adam)."""
        return sparse_tables(self._optimizer(), self.draws_noise)

    def resolved(self, vocab_size: int) -> LMConfig:
        """This configuration with every default filled in: k (which depends on V), α, the optimizer and its rate."""
        samples = self.noise_samples if self.noise_samples is not None else min(DEFAULT_NOISE_SAMPLES, vocab_size)
        optimizer = self.optimizer or DEFAULT_OPTIMIZER
        if self.table_lr is not None and optimizer != "adam-rowwise":
            raise NceLmError(f"table_lr sets adam-rowwise's rate for the tables; this run trains with {optimizer}")
        return replace(
            self,
            noise_samples=samples,
            noise_power=self.noise_power if self.noise_power is not None else default_noise_power(self.objective),
            optimizer=optimizer,
            lr=self.lr if self.lr is not None else DEFAULT_LR[optimizer],
        )

    def check_sizes(self, vocab_size: int) -> None:
        """Once V is known: k at most V, and the largest tensors within the memory budget
        (:mod:`nce_lm.training.memory`). Float32 copies: noise scores ×3 (forward, gradient, a temporary),
        activations ×6 per layer (an LSTM's gates), the two (V, d) tables ×4 (gradients, two Adam moments)."""
        if self.draws_noise and self.noise_samples is not None and self.noise_samples > vocab_size:
            raise NceLmError(
                f"noise_samples (k) must be at most the vocabulary size V = {vocab_size:,}, got "
                f"{self.noise_samples:,}: k noise words are drawn from V"
            )
        positions = self.batch_size * self.seq_len
        k = (self.noise_samples or 0) if self.draws_noise else 0
        check_memory(
            {
                "noise scores": 4 * 3 * positions * k,
                "activations": 4 * 6 * positions * self.dim * self.layers,
                "embedding tables": 4 * 4 * 2 * vocab_size * self.dim,
                "evaluation scores": 4 * 2 * self.eval_batch_size * self.seq_len * min(vocab_size, DEFAULT_CHUNK_SIZE),
            },
            "lower --noise-samples, --batch-size, --seq-len or --dim",
        )

    def validate(self) -> None:
        if self.model not in MODELS:
            raise NceLmError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.objective not in OBJECTIVES:
            raise NceLmError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.optimizer is not None and self.optimizer not in LM_OPTIMIZERS:
            raise NceLmError(f"optimizer must be one of {', '.join(LM_OPTIMIZERS)}, got {self.optimizer!r}")
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise NceLmError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("dim", "layers", "heads", "noise_samples", "seq_len", "batch_size", "epochs", "eval_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise NceLmError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise NceLmError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.dropout < 1:
            raise NceLmError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.noise_power is not None and not 0 <= self.noise_power <= 1:
            raise NceLmError(f"noise_power must be between 0 and 1, got {self.noise_power}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise NceLmError(f"lr must be positive, got {self.lr}")
        if self.table_lr is not None and not (math.isfinite(self.table_lr) and self.table_lr > 0):
            raise NceLmError(f"table_lr must be positive, got {self.table_lr}")
        if self.lr_decay < 1 or self.clip <= 0:
            raise NceLmError("lr_decay must be at least 1 and clip positive")
        if self.model == "transformer" and self.dim % self.heads:
            raise NceLmError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.is_samples < 2:
            raise NceLmError(f"is_samples must be at least 2, got {self.is_samples}")
        if not self.train:
            raise NceLmError("no training data: give --train FILE or --data NAME")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LMConfig:
        if not isinstance(data, dict):
            raise NceLmError("the run's config must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise NceLmError(f"unknown language-model settings: {', '.join(unknown)}")
        check_field_types(cls, data, "run config")
        return cls(**data)

    def with_changes(self, **changes: Any) -> LMConfig:
        return replace(self, **changes)
