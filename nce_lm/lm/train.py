"""Training a language model with any objective: the loop, validation by exact perplexity, checkpoints.

Per window of the contiguous streams: inputs (B, T) → hidden states (B·T, d) → the objective's loss per token
(sampled objectives: k noise words shared by the batch, one (B·T, d) × (d, k) product); the mean is
back-propagated, clipped, stepped. After every epoch: exact validation perplexity, the learning rate divided by
``lr_decay`` when it did not improve (Zaremba et al. 2014), ``last.pt`` (and ``best.pt``) written. Random
streams are re-seeded from (seed, epoch, rank) every epoch, so a resumed run, on any number of ranks, repeats
the draws exactly. A step draws its noise words before its forward pass, so that catch-up Adam can bring the rows
it reads up to date first; every evaluation, checkpoint and the end of a run flush the optimizer's lagging rows.
``log.jsonl`` in the run folder gets a training record at every check point of the loss and a validation record
at every validation (docs/lm.md, "Watching a run"). A loss or validation perplexity that is not finite stops the
run with an :class:`NceLmError`.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from nce_lm.errors import NceLmError
from nce_lm.fileio import write_json_atomic
from nce_lm.lm.batches import batchify, num_windows, rank_rows, windows
from nce_lm.lm.checkpoint import load_payload, noise_for, read_run_files, save_payload, write_run_files
from nce_lm.lm.config import LMConfig
from nce_lm.lm.data import split_ids, split_paths
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import LanguageNetwork, State, build_model
from nce_lm.lm.optim import LMOptimizer, dense_parameters
from nce_lm.lm.run_log import LOG_FILE, validation_record
from nce_lm.locks import folder_lock
from nce_lm.objectives.losses import Objective, build_objective, objective_class
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.token_cache import cache_vocab, file_identity
from nce_lm.pipeline.vocab import Vocab, build_vocab
from nce_lm.training import preemption
from nce_lm.training.devices import autocast, cpu_bf16_lstm_problem, resolve_precision
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.jsonl_log import JsonLinesLog
from nce_lm.training.resume import refuse_changes
from nce_lm.training.sparse_rows import average_sparse_grads_, clip_grad_norm_

CHECK_EVERY = 50  # steps between host-side checks of the loss (each one a sync, and an all-reduce under torchrun)
LOG_POINTS_PER_EPOCH = 100  # training records per epoch unless log_every is given: every 13 steps on PTB


class TrainingModule(nn.Module):
    """Model and objective as one module, so DistributedDataParallel synchronises every parameter of both."""

    def __init__(self, model: LanguageNetwork, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor, state: State, noise_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """inputs, targets (B, T) → (mean loss per token, next state); ``noise_ids`` (K,) or (B·T, K) drawn by
        the objective's ``sample_noise`` for these targets beforehand, or None to draw them in the objective."""
        hidden, state = self.model(inputs, state)
        hidden = hidden.reshape(-1, hidden.shape[-1])  # (B·T, d)
        model = self.model
        loss = self.objective(hidden, model.output_weight, model.output_bias, targets.reshape(-1), noise_ids)
        return loss.float().mean(), state


class Trainer(NamedTuple):
    """What a run trains: the model, the model and objective as one module (``trained`` wraps it in
    DistributedDataParallel under torchrun), the optimizer and the noise generator."""

    model: LanguageNetwork
    module: TrainingModule
    trained: nn.Module
    optimizer: LMOptimizer
    generator: torch.Generator


def build_trainer(config: LMConfig, noise: NoiseDistribution, ctx: DistributedContext) -> Trainer:
    """The model (seeded by ``config.seed``), objective and optimizer of a run (``config`` resolved), on ``noise``'s
    device."""
    device = noise.device
    torch.manual_seed(config.seed)
    model = build_model(config, len(noise), noise.log_probs.cpu()).to(device)
    generator = torch.Generator(device=device)
    sparse = config.sparse_tables
    objective = build_objective(
        config.objective, noise, config.noise_samples, generator=generator, sparse_gradients=sparse
    )
    module = TrainingModule(model, objective).to(device)
    tables = model.tables()
    dense = dense_parameters(module, tables)
    optimizer = LMOptimizer(config.optimizer, dense, tables, config.learning_rate, sparse, config.table_lr)
    return Trainer(model, module, _data_parallel(module, tables, sparse, ctx), optimizer, generator)


def train_step(
    trained: nn.Module,
    module: TrainingModule,
    optimizer: LMOptimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    state: State,
    clip: float,
    precision: str,
    ctx: DistributedContext,
) -> tuple[torch.Tensor, torch.Tensor, State]:
    """One step on a window inputs, targets (B, T): the noise words drawn, the rows the step reads brought up to
    date (catch-up Adam), forward in ``precision``, backward, the tables' sparse rows averaged across ranks,
    clipping of the gradient norm to ``clip``, the optimizer's update.

    ``trained`` is ``module`` or its DistributedDataParallel wrapper. Returns the mean loss and the gradient
    norm before clipping (0-d tensors on the device, not read: no host synchronisation) and the next state.
    Under torchrun every rank catches up only the rows it reads; each of them is in the averaged gradient, so
    every rank's update catches it up at this step too, by the same arithmetic: the ranks' tables stay equal.
    """
    state = module.model.detach_state(state)
    objective = module.objective
    noise_ids = objective.sample_noise(targets.reshape(-1)) if objective.needs_noise else None
    if optimizer.catches_up:
        optimizer.catch_up(rows_read(module.model, inputs, targets, noise_ids))
    with autocast(inputs.device, precision):
        loss, state = trained(inputs, targets, state, noise_ids)
    optimizer.zero_grad()
    loss.backward()
    if optimizer.sparse and ctx.active:  # DistributedDataParallel averages the dense part; the tables' rows here
        average_sparse_grads_(list(optimizer.tables.values()), ctx.world_size)
    norm = clip_grad_norm_(module.parameters(), clip)
    optimizer.step()
    return loss.detach(), norm, state


def rows_read(
    model: LanguageNetwork, inputs: torch.Tensor, targets: torch.Tensor, noise_ids: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """The rows of each table (:meth:`LanguageNetwork.tables`) a step's forward pass reads, as ids with repeats: the
    inputs' rows of the embedding; the targets' and noise words' rows of the output weight and bias (the
    embedding's too when the two are tied)."""
    output = targets.reshape(-1) if noise_ids is None else torch.cat([targets.reshape(-1), noise_ids.reshape(-1)])
    tables = model.tables()
    if "output_weight" not in tables:  # tied: one table for both
        return {"embedding.weight": torch.cat([inputs.reshape(-1), output]), "output_bias": output}
    return {"embedding.weight": inputs.reshape(-1), "output_weight": output, "output_bias": output}


def _seed_epoch(config: LMConfig, epoch: int, rank: int, generator: torch.Generator) -> None:
    """Dropout differs by rank; the noise does not: the k noise words are shared by the global batch, so a
    run on R ranks takes the steps of the same run in one process."""
    torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + rank)  # dropout
    generator.manual_seed(config.seed * 7_919 + epoch * 104_729 + 1)  # noise


def peak_memory_gib(device: torch.device) -> float:
    """This process's peak memory: allocated on CUDA, resident (which only grows) on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def train_lm(
    config: LMConfig,
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    vocab: Vocab | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    errors: str = "strict",
    *,
    log_every: int | None = None,
    valid_tokens: int | None = None,
    final_test: bool = True,
    checkpoint_every: preemption.CheckpointEvery | None = None,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) the run in ``run_dir``; returns its metrics.

    ``vocab`` (default: the cache folder's, else the training text's own with every word) and ``cache_dir`` (a
    folder of ``nce-lm prepare`` holding the training text's ids) connect the run to the corpus pipeline;
    ``errors="replace"`` substitutes U+FFFD for undecodable bytes. A resumed run may change only the settings
    of :mod:`nce_lm.training.resume`; one stopped by ``max_tokens`` inside an epoch continues that epoch from the step
    where it stopped (exactly, in one process: the hidden state and random streams are in ``last.pt``).
    Under torchrun every rank calls this; rank 0 alone writes files, holding the run folder's lock
    (:mod:`nce_lm.locks`). A new run that fails before its first checkpoint leaves no folder behind.

    How the run is watched and evaluated (:class:`Watch`; not settings of the model, so free to change on
    resume): a training record in ``log.jsonl`` every ``log_every`` steps (default: an epoch's steps / 100),
    validation on its first ``valid_tokens`` targets only (``best.pt`` is then chosen, and the learning rate
    decayed, by that partial figure), and no test pass at the end when ``final_test`` is false.

    In one process ``last.pt`` is also written inside epochs every ``checkpoint_every``, and when SIGTERM or SIGINT
    stops the run at a step boundary (then :class:`~nce_lm.training.preemption.Stopped` is raised); resumed from
    it, the epoch continues exactly (:func:`_step_boundary`).
    """
    config.validate()
    watch = Watch(log_every, valid_tokens, final_test, checkpoint_every)
    watch.validate()
    run_dir = Path(run_dir)
    ctx = DistributedContext.from_environment(config.device)
    if not resume and (run_dir / "last.pt").exists():
        raise NceLmError(f"{run_dir} already holds a run; use --resume to continue it or pick another folder")
    created = ctx.is_main and not resume and not run_dir.exists()
    try:
        saved = None
        if resume:  # refused changes are refused before the lock, which would touch the run folder
            config, saved, vocab = _resumed(config, run_dir, vocab)
        with preemption.signals_handled(), folder_lock(run_dir, "run folder") if ctx.is_main else nullcontext():
            cache = Path(cache_dir) if cache_dir else None
            metrics = _train(config, run_dir, saved, ctx, vocab, cache, errors, watch)
        ctx.barrier()  # ranks leave together: one tearing its gloo group down while rank 0 still writes can abort
        return metrics
    except BaseException:
        if created and not (run_dir / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        ctx.close()


def _resumed(config: LMConfig, run_dir: Path, vocab: Vocab | None) -> tuple[LMConfig, LMConfig, Vocab]:
    """The settings of a resumed run (``config`` resolved for its vocabulary), the ones it was trained with, and its
    vocabulary; an NceLmError for a change :mod:`nce_lm.training.resume` does not allow or another vocabulary."""
    saved, run_vocab = read_run_files(run_dir)
    config = _settled(config, len(run_vocab))
    refuse_changes(saved, config, f"the run in {run_dir}")
    if vocab is not None and vocab.fingerprint() != run_vocab.fingerprint():
        raise NceLmError(f"{run_dir} was trained with another vocabulary than the one given")
    return config, saved, run_vocab


def _settled(config: LMConfig, vocab_size: int) -> LMConfig:
    """``config`` with its defaults for V = ``vocab_size`` filled in, once its sizes are checked against V."""
    config = config.resolved(vocab_size)
    config.check_sizes(vocab_size)
    return config


@dataclass
class RunState:
    """Where a run stands: what ``last.pt`` holds beside the module and the optimizer, in that order.

    ``epoch`` (0-based) is the epoch in training, and between epochs the next one to train; an epoch that
    ``max_tokens`` stopped stays the next one, and ``partial`` says where in it the run stands
    (:func:`_partial_payload`).
    """

    epoch: int
    tokens_seen: int
    lr: float
    best_ppl: float  # the best validation perplexity so far, after an epoch or a stop: best.pt's
    epoch_best_ppl: float  # the best at an epoch's end: what the decay compares with
    history: list[dict[str, Any]]  # one record per epoch trained (or stopped)
    partial: dict[str, Any] | None

    @classmethod
    def new(cls, lr: float) -> RunState:
        return cls(0, 0, lr, math.inf, math.inf, [], None)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RunState:
        """The state saved in ``last.pt`` (KeyError, ValueError or TypeError for another payload)."""
        best_ppl = float(payload["best_ppl"])
        return cls(
            int(payload["epoch"]),
            int(payload["tokens_seen"]),
            float(payload["lr"]),
            best_ppl,
            float(payload.get("epoch_best_ppl", best_ppl)),
            list(payload["history"]),
            payload.get("partial"),
        )

    def payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def capped(self, config: LMConfig) -> bool:
        """Whether the run has trained its ``max_tokens``."""
        return config.max_tokens is not None and self.tokens_seen >= config.max_tokens


@dataclass(frozen=True)
class Watch:
    """How a run is watched and evaluated, beside its settings: ``log_every`` steps between training records of
    ``log.jsonl`` (None: an epoch's steps / :data:`LOG_POINTS_PER_EPOCH`), ``valid_tokens``: validation scores
    only the first N targets of the validation text (None: all), ``final_test``: the test pass after training."""

    log_every: int | None = None
    valid_tokens: int | None = None
    final_test: bool = True
    checkpoint_every: preemption.CheckpointEvery | None = None  # also last.pt inside epochs (one process)

    def validate(self) -> None:
        for name in ("log_every", "valid_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise NceLmError(f"{name} must be a whole number of at least 1, got {value!r}")


@dataclass(frozen=True)
class Setup:
    """What a run trains, fixed from its start: the settings (resolved for V), the ranks, the run folder, the
    vocabulary and noise, the token ids of each split, the trainer, this rank's rows of the training streams
    (B / ranks, L) and its precision; how it is watched and, on rank 0, its log."""

    config: LMConfig
    ctx: DistributedContext
    run_dir: Path
    vocab: Vocab
    noise: NoiseDistribution
    paths: dict[str, Path | None]
    ids: dict[str, np.ndarray]
    trainer: Trainer
    streams: torch.Tensor
    precision: str
    train_text: dict[str, Any]  # the training text's identity, told apart from another text on resume
    watch: Watch
    log: JsonLinesLog | None  # log.jsonl, on rank 0

    @property
    def device(self) -> torch.device:
        return self.noise.device

    @property
    def steps_per_epoch(self) -> int:
        return num_windows(self.streams, self.config.seq_len)

    @property
    def log_every(self) -> int:
        """Steps between training records of ``log.jsonl``."""
        return self.watch.log_every or max(1, self.steps_per_epoch // LOG_POINTS_PER_EPOCH)

    def global_step(self, state: RunState, steps: int) -> int:
        """The run's step count at step ``steps`` of the epoch ``state.epoch``."""
        return state.epoch * self.steps_per_epoch + steps


class EpochDone(NamedTuple):
    """An epoch's training, up to its end or to ``max_tokens``; a continued epoch's earlier steps included."""

    steps: int
    tokens: int
    new_tokens: int  # trained by this process's call, on all ranks
    loss_sum: float  # this rank's summed loss over the steps
    seconds: float
    hidden: State


def _train(
    config: LMConfig,
    run_dir: Path,
    saved: LMConfig | None,
    ctx: DistributedContext,
    vocab: Vocab | None,
    cache_dir: Path | None,
    errors: str,
    watch: Watch,
) -> dict[str, Any]:
    """The training of :func:`train_lm`, as phases: data and vocabulary, the trainer, a resumed run's state, the
    epochs (each ended by validation, the decay and the checkpoints), the final test. ``saved``: the settings a
    resumed run was trained with (``config`` is then resolved already), else None."""
    device = ctx.device(config.device)
    precision = resolve_precision(config.precision, device)
    bf16_lstm_on_cpu = precision == "bf16" and device.type == "cpu" and config.model == "lstm"
    if bf16_lstm_on_cpu and (problem := cpu_bf16_lstm_problem()):
        raise NceLmError(
            f"--precision bf16 cannot train an LSTM on this CPU: {problem}; "
            "use --precision fp32 (the CPU's default) or --model transformer"
        )
    paths = split_paths(config)
    payload = load_payload(run_dir / "last.pt", vocab) if saved is not None else None
    config, vocab, ids = _prepare_data(config, paths, run_dir, payload is not None, ctx, vocab, cache_dir, errors)
    noise = noise_for(config, vocab, device)
    trainer = build_trainer(config, noise, ctx)
    streams = rank_rows(batchify(ids["train"], config.batch_size), ctx.rank, ctx.world_size).to(device)
    train_text = file_identity(paths["train"])
    log = JsonLinesLog(run_dir / LOG_FILE, append=payload is not None) if ctx.is_main else None
    setup = Setup(config, ctx, run_dir, vocab, noise, paths, ids, trainer, streams, precision, train_text, watch, log)
    state = RunState.new(config.learning_rate) if payload is None else _restore(setup, payload, saved)
    on_step = _step_boundary(setup, state, watch.checkpoint_every)
    with preemption.deferred() if ctx.world_size == 1 else nullcontext():
        while state.epoch < config.epochs:
            _end_epoch(setup, state, _train_epoch(setup, state, on_step))
            if state.capped(config):
                break
        return _final_test(setup, state)


def _prepare_data(
    config: LMConfig,
    paths: dict[str, Path | None],
    run_dir: Path,
    resuming: bool,
    ctx: DistributedContext,
    vocab: Vocab | None,
    cache_dir: Path | None,
    errors: str,
) -> tuple[LMConfig, Vocab, dict[str, np.ndarray]]:
    """Phase 1, data and vocabulary: the settings resolved for V, the vocabulary and the token ids of each split.

    Rank 0 settles a new run's vocabulary (``vocab``, the cache folder's, else the training text's own with every
    word) and the settings, writes them to the run folder and builds the token-id caches; the other ranks read
    them after it. A resumed run's settings and vocabulary were settled before the lock (:func:`_resumed`).
    """
    if ctx.is_main:
        if not resuming:
            if vocab is None and cache_dir is not None:
                vocab = cache_vocab(cache_dir)
            if vocab is None:
                vocab = build_vocab([paths["train"]], min_count=1, errors=errors, progress=config.progress)
            config = _settled(config, len(vocab))
            _announce(config, len(vocab))
        write_run_files(run_dir, config, vocab)
        ids = split_ids(paths, vocab, run_dir, cache_dir, errors, config.progress)
    ctx.barrier()
    if not ctx.is_main:
        if not resuming:
            config, vocab = read_run_files(run_dir)
        ids = split_ids(paths, vocab, run_dir, cache_dir, errors, False)
    return config, vocab, ids


def _restore(setup: Setup, payload: dict[str, Any], saved: LMConfig | None) -> RunState:
    """Phase 2, a resumed run: the module, optimizer and :class:`RunState` of ``last.pt`` (``saved``: the settings it
    was trained with); an NceLmError when they do not fit the run or it has nothing left to train."""
    config, run_dir = setup.config, setup.run_dir
    try:
        setup.trainer.module.load_state_dict(payload["module"])
        setup.trainer.optimizer.load_state_dict(payload["optimizer"])
        state = RunState.from_payload(payload)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise NceLmError(f"{run_dir / 'last.pt'} does not match the run: {str(err).splitlines()[0]}") from None
    if saved is not None and config.lr != saved.lr:
        state.lr = config.learning_rate  # asked for: the decay goes on from it
    recorded = payload.get("train_text")
    if setup.ctx.is_main and recorded is not None and recorded != setup.train_text:
        print(
            f"warning: the training text {setup.paths['train']} is not the one this run was trained on (its path, "
            "size or modification time differ); training goes on with the run's vocabulary, and words new "
            "to the text count as <unk>",
            file=sys.stderr,
            flush=True,
        )
    if state.capped(config):
        raise NceLmError(
            f"{run_dir} has trained {state.tokens_seen:,} tokens, its max_tokens of {config.max_tokens:,}: "
            "raise --max-tokens to continue it (or give --epochs alone, which lifts the cap)"
        )
    if state.epoch >= config.epochs and state.partial is None:
        raise NceLmError(f"{run_dir} has trained its {state.epoch} epochs: raise --epochs to continue it")
    return state


def _start_epoch(setup: Setup, state: RunState) -> tuple[int, int, float, State]:
    """The random streams seeded for ``state.epoch`` and where the epoch starts: (first step, its tokens so far,
    this rank's loss summed over them, hidden state): step 0, or where ``max_tokens`` stopped it."""
    model, module, _, optimizer, generator = setup.trainer
    ctx, partial = setup.ctx, state.partial
    _seed_epoch(setup.config, state.epoch, ctx.rank, generator)
    optimizer.set_lr(state.lr)
    module.train()
    hidden = model.initial_state(setup.streams.shape[0], setup.device)
    state.partial = None
    if partial is None or int(partial["epoch"]) != state.epoch:
        return 0, 0, 0.0, hidden
    hidden = _restore_partial(partial, hidden, generator, ctx, setup.device)
    if state.history and state.history[-1].get("partial"):
        state.history.pop()
    return int(partial["steps"]), int(partial["tokens"]), float(partial["loss_sum"]) / ctx.world_size, hidden


class LogMark(NamedTuple):
    """Where the last training record of ``log.jsonl`` left an epoch: its step, this rank's summed loss, the
    tokens trained by this call (all ranks) and the time."""

    steps: int
    loss_sum: float
    new_tokens: int
    time: float


def _train_epoch(setup: Setup, state: RunState, on_step: Callable[..., None]) -> EpochDone:
    """Phase 3, one epoch: a step per window of the streams, from where the epoch stands to its end or to
    ``max_tokens``, calling ``on_step`` (:func:`_step_boundary`) after each. The loss is summed on the device and
    read every :data:`CHECK_EVERY` steps and at every training record of the log (:func:`_checked_loss`: one
    host sync each), never in between."""
    config, ctx, device = setup.config, setup.ctx, setup.device
    _, module, trained, optimizer, _ = setup.trainer
    steps, epoch_tokens, loss_carried, hidden = _start_epoch(setup, state)
    new_tokens = 0
    started = time.perf_counter()
    mark = LogMark(steps, loss_carried, 0, started)
    bar = _progress(config, ctx, _steps_to_run(setup, state, steps), state.epoch)
    loss_total = torch.tensor(loss_carried, dtype=torch.float64, device=device)
    non_finite = torch.zeros((), dtype=torch.bool, device=device)
    for _, inputs, targets in windows(setup.streams, config.seq_len, start=steps * config.seq_len):
        loss, norm, hidden = train_step(
            trained, module, optimizer, inputs, targets, hidden, config.clip, setup.precision, ctx
        )
        non_finite |= ~(torch.isfinite(loss) & torch.isfinite(norm))
        loss_total += loss.double()
        steps += 1
        state.tokens_seen += targets.numel() * ctx.world_size
        new_tokens += targets.numel() * ctx.world_size
        log_point = setup.global_step(state, steps) % setup.log_every == 0
        if log_point or steps % CHECK_EVERY == 0:
            loss_sum = _checked_loss(loss_total, non_finite, setup, state)
            if log_point:
                mark = _log_training(setup, state, mark, LogMark(steps, loss_sum, new_tokens, time.perf_counter()))
            rate = new_tokens / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss_sum / steps:.3f}", lr=f"{state.lr:g}", tokens_s=f"{rate:,.0f}")
        bar.update(1)
        if state.capped(config):
            break
        on_step(steps, epoch_tokens + new_tokens, loss_total, hidden, non_finite)
    loss_sum = _checked_loss(loss_total, non_finite, setup, state)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    bar.close()
    return EpochDone(steps, epoch_tokens + new_tokens, new_tokens, loss_sum, seconds, hidden)


def _checked_loss(loss_total: torch.Tensor, non_finite: torch.Tensor, setup: Setup, state: RunState) -> float:
    """The epoch's summed loss on this rank, read with whether a step's loss or gradient norm was not finite in one
    host sync (and one all-reduce under torchrun), per check, not per step; an NceLmError for a non-finite one."""
    flag, loss_sum = torch.stack([non_finite.double(), loss_total]).tolist()
    if setup.ctx.any(flag != 0.0):
        kept = _kept(setup, state)
        raise NceLmError(f"the training loss became non-finite in epoch {state.epoch + 1}: stopped, {kept}; lower --lr")
    return loss_sum


def _log_training(setup: Setup, state: RunState, mark: LogMark, now: LogMark) -> LogMark:
    """A training record of ``log.jsonl`` (rank 0) for the steps between ``mark`` and ``now``: the run's step and
    tokens, the mean loss per token over those steps (all ranks), the learning rate, the tokens per second."""
    ctx = setup.ctx
    loss = ctx.sum(now.loss_sum - mark.loss_sum) / (ctx.world_size * (now.steps - mark.steps))
    if setup.log is not None:
        record = {
            "step": setup.global_step(state, now.steps),
            "tokens": state.tokens_seen,
            "loss": loss,
            "lr": state.lr,
            "tokens_per_s": (now.new_tokens - mark.new_tokens) / max(now.time - mark.time, 1e-9),
        }
        setup.log.write(record)
    return now


def _kept(setup: Setup, state: RunState) -> str:
    """What a stopped run keeps, for its error: the checkpoints of its last finite epoch, or nothing."""
    if not state.history:
        return "nothing was kept (it stopped before its first checkpoint)"
    last = state.history[-1]
    partial = " (stopped inside it)" if last.get("partial") else ""
    kept = f"the checkpoints in {setup.run_dir} are intact: last.pt is from epoch {last['epoch']}{partial}"
    if state.best_ppl < math.inf:
        epochs = [h["epoch"] for h in state.history if h["valid"]["ppl"] == state.best_ppl]
        where = f"epoch {epochs[-1]}" if epochs else "an earlier epoch"
        kept += f", best.pt is from {where} (valid ppl {state.best_ppl:.2f})"
    return kept


def _step_boundary(
    setup: Setup, state: RunState, every: preemption.CheckpointEvery | None
) -> Callable[[int, int, torch.Tensor, State, torch.Tensor], None]:
    """What :func:`_train_epoch` does after a step ``(steps, tokens, loss_total, hidden, non_finite)`` in one process:
    when ``every`` is due or a signal asks the run to stop, ``last.pt`` with the epoch's position (its ``partial``,
    which a resumed run continues exactly), then for a signal :class:`~nce_lm.training.preemption.Stopped`. Nothing
    under torchrun, where ``every`` is refused."""
    if setup.ctx.world_size > 1:
        if every is not None:
            raise NceLmError("checkpoints inside an epoch are written in one process, not under torchrun")
        return lambda *position: None
    boundaries = preemption.StepBoundaries(every)

    def on_step(steps: int, tokens: int, loss_total: torch.Tensor, hidden: State, non_finite: torch.Tensor) -> None:
        save, signum = boundaries.reached()
        if not save:
            return
        loss_sum = _checked_loss(loss_total, non_finite, setup, state)  # never a checkpoint of a diverged model
        state.partial = _partial_payload(state.epoch, steps, tokens, loss_sum, hidden, setup)
        try:
            _save_checkpoints(setup, state, False, state.epoch + 1)
        finally:
            state.partial = None
        if signum is not None:
            where = f"in epoch {state.epoch + 1} after step {steps:,} of {setup.steps_per_epoch:,}"
            raise preemption.stop(signum, where, str(setup.run_dir))

    return on_step


def _end_epoch(setup: Setup, state: RunState, done: EpochDone) -> None:
    """Phase 4, the end of an epoch (or of training inside one, at ``max_tokens``): exact validation perplexity
    (an NceLmError when it is not finite: no checkpoint records it), its record in ``log.jsonl``, the epoch's
    record, the learning rate divided by ``lr_decay`` when the perplexity at an epoch's end did not improve
    (Zaremba et al. 2014), and on rank 0 ``best.pt`` when it improved and ``last.pt``."""
    config, ctx, model = setup.config, setup.ctx, setup.trainer.model
    number, stopped = state.epoch + 1, done.steps < setup.steps_per_epoch  # stopped by max_tokens, inside the epoch
    setup.trainer.optimizer.flush()  # every rank: validation and the checkpoints read up-to-date tables
    valid = _evaluate(setup, model, "valid", ctx)
    if not (math.isfinite(valid["nll"]) and math.isfinite(valid["ppl"])):
        what = f"loss became {valid['nll']}" if not math.isfinite(valid["nll"]) else "perplexity became inf"
        raise NceLmError(f"the validation {what} after epoch {number}: stopped, {_kept(setup, state)}; lower --lr")
    if setup.log is not None:
        setup.log.write({"step": setup.global_step(state, done.steps), **validation_record(state.tokens_seen, valid)})
    improved = valid["ppl"] < state.best_ppl
    record = {
        "epoch": number,
        "lr": state.lr,
        "train_objective_loss": ctx.sum(done.loss_sum) / ctx.sum(done.steps),
        "tokens_per_s": done.new_tokens / done.seconds,
        "valid": valid,
        "tokens_seen": state.tokens_seen,
    }
    if stopped:
        record.update(partial=True, steps=done.steps, steps_per_epoch=setup.steps_per_epoch)
        loss_sum = ctx.sum(done.loss_sum)
        state.partial = _partial_payload(state.epoch, done.steps, done.tokens, loss_sum, done.hidden, setup)
    state.history.append(record)
    if improved:
        state.best_ppl = valid["ppl"]
    if not stopped:  # the decay is decided at an epoch's end, so a capped run continues as one never stopped
        if valid["ppl"] < state.epoch_best_ppl:
            state.epoch_best_ppl = valid["ppl"]
        else:
            state.lr /= config.lr_decay
        state.epoch = number
    if ctx.is_main:
        _save_checkpoints(setup, state, improved, number)
        where = f" (stopped by --max-tokens after step {done.steps:,} of {setup.steps_per_epoch:,})" if stopped else ""
        print(
            f"epoch {number}{where}: valid ppl {valid['ppl']:.2f} (self-normalized "
            f"{valid['self_normalized_ppl']:.2f}, mean log Z {valid['mean_log_z']:+.3f} ± "
            f"{valid['std_log_z']:.3f}), {record['tokens_per_s']:,.0f} tokens/s",
            flush=True,
        )


def _save_checkpoints(setup: Setup, state: RunState, improved: bool, number: int) -> None:
    """``best.pt`` (the model after epoch ``number``) when the validation perplexity improved, and ``last.pt``;
    the optimizer flushed first (idempotent: a no-op after :func:`_end_epoch`'s), so both hold up-to-date tables.
    Under torchrun, call it on rank 0 after every rank has flushed."""
    model, module, _, optimizer, _ = setup.trainer
    optimizer.flush()
    if improved:
        save_payload(setup.run_dir / "best.pt", {"model": model.state_dict(), "epoch": number}, setup.vocab)
    payload = {"module": module.state_dict(), "optimizer": optimizer.state_dict(), **state.payload()}
    save_payload(setup.run_dir / "last.pt", {**payload, "train_text": setup.train_text}, setup.vocab)


def _final_test(setup: Setup, state: RunState) -> dict[str, Any]:
    """Phase 5, the run's metrics: its history and, on rank 0, the test perplexity of ``best.pt`` unless
    ``--no-test``; written to ``metrics.json`` by rank 0. The optimizer is flushed: the trained module's tables are
    up to date at the end of a run. Metrics say what was skipped or limited (``test_skipped``,
    ``valid_limited_to``)."""
    config, ctx, run_dir, history = setup.config, setup.ctx, setup.run_dir, state.history
    setup.trainer.optimizer.flush()
    metrics: dict[str, Any] = {
        "config": config.to_dict(),
        "rank": ctx.rank,
        "vocab_size": len(setup.vocab),
        "history": history,
        "valid": history[-1]["valid"] if history else None,
        "peak_memory_gib": peak_memory_gib(setup.device),
        "tokens_per_s": (sum(h["tokens_per_s"] for h in history) / len(history)) if history else None,
    }
    valid_total = len(setup.ids["valid"]) - 1
    if setup.watch.valid_tokens is not None and setup.watch.valid_tokens < valid_total:
        metrics["valid_limited_to"] = {"tokens": setup.watch.valid_tokens, "of": valid_total}
    if setup.paths["test"] is not None and not setup.watch.final_test:
        metrics["test_skipped"] = True
    elif setup.paths["test"] is not None and ctx.is_main and (run_dir / "best.pt").exists():
        best = build_model(config, len(setup.vocab), setup.noise.log_probs.cpu()).to(setup.device)
        best.load_state_dict(load_payload(run_dir / "best.pt", setup.vocab)["model"])
        started = time.perf_counter()
        metrics["test"] = _evaluate(setup, best, "test")
        metrics["test"]["seconds"] = time.perf_counter() - started
    if ctx.is_main:
        write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def _evaluate(
    setup: Setup, model: LanguageNetwork, split: str, ctx: DistributedContext | None = None
) -> dict[str, Any]:
    """Exact perplexity and self-normalization of ``model`` on ``split`` (:func:`nce_lm.lm.evaluate.evaluate_model`),
    summed over the ranks when ``ctx`` is given; validation on its first ``valid_tokens`` targets when asked."""
    c, ids = setup.config, setup.ids[split]
    if split == "valid" and setup.watch.valid_tokens is not None:
        ids = ids[: setup.watch.valid_tokens + 1]  # N + 1 tokens: N targets
    settings = (c.eval_batch_size, c.seq_len, setup.noise, c.is_samples, c.seed)
    return evaluate_model(model, ids, *settings, progress=c.progress, label=split, ctx=ctx)


def _restore_partial(
    partial: dict[str, Any], state: State, generator: torch.Generator, ctx: DistributedContext, device: torch.device
) -> State:
    """Continue an epoch that ``max_tokens`` stopped: its hidden state and random streams when they were saved by
    one process and this is one process too; otherwise the epoch goes on at the same step from a fresh state."""
    if ctx.world_size != 1 or partial.get("cpu_rng") is None:
        if ctx.is_main:
            print(
                f"note: epoch {partial['epoch'] + 1} continues at step {partial['steps'] + 1} from a fresh hidden "
                "state (the hidden state of several ranks is not saved)",
                flush=True,
            )
        return state
    torch.set_rng_state(partial["cpu_rng"])
    if partial.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(partial["cuda_rng"], device)
    generator.set_state(partial["noise_rng"])
    hidden = partial.get("hidden")
    return None if hidden is None else tuple(t.to(device) for t in hidden)


def _partial_payload(
    epoch: int, steps: int, tokens: int, loss_sum: float, hidden: State, setup: Setup
) -> dict[str, Any]:
    """Where an epoch stopped by ``max_tokens`` is: its step, tokens and summed loss; in one process also the
    hidden state and the random streams, so that raising ``max_tokens`` continues it exactly."""
    one_process, device = setup.ctx.world_size == 1, setup.device
    return {
        "epoch": epoch,
        "steps": steps,
        "tokens": tokens,
        "loss_sum": loss_sum,
        "cpu_rng": torch.get_rng_state() if one_process else None,
        "cuda_rng": torch.cuda.get_rng_state(device) if one_process and device.type == "cuda" else None,
        "noise_rng": setup.trainer.generator.get_state() if one_process else None,
        "hidden": [t.detach().cpu() for t in hidden] if one_process and hidden is not None else None,
    }


def _announce(config: LMConfig, vocab_size: int) -> None:
    """Say what a new run trains with, the defaults chosen for it included."""
    objective = objective_class(config.objective)
    if objective.needs_noise:
        sampling = f"{config.objective}, k = {config.noise_samples} noise words (q ∝ count^{config.noise_power:g})"
    else:
        sampling = "the full softmax"
    print(
        f"training a {config.layers} × {config.dim} {config.model} on V = {vocab_size:,} with {sampling}, "
        f"{config.optimizer} (lr {config.learning_rate:g}"
        + (f", tables {config.table_lr:g})" if config.table_lr is not None else ")"),
        flush=True,
    )
    if not objective.models_log_probability:
        print(
            f"warning: {config.objective} is not a language-model objective: its scores estimate log p − log q "
            "(shifted), not log p, so its exact perplexity is far above the others'; use nce, ranking or full",
            flush=True,
        )


def _data_parallel(
    module: TrainingModule, tables: dict[str, nn.Parameter], sparse: bool, ctx: DistributedContext
) -> nn.Module:
    """``module`` under DistributedDataParallel when running on several ranks (the module itself otherwise).

    With row-sparse tables DDP leaves the tables alone (their touched rows are exchanged by
    :func:`nce_lm.training.sparse_rows.average_sparse_grads_`) and all-reduces only the dense parameters.
    """
    if not ctx.active:
        return module
    if sparse:
        names = {id(p): n for n, p in module.named_parameters()}
        ignored = [names[id(p)] for p in tables.values()]
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignored)
    device = next(module.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def _steps_to_run(setup: Setup, state: RunState, first_step: int) -> int:
    """The steps this epoch will take from ``first_step``: to its end or to ``max_tokens``."""
    config = setup.config
    to_run = setup.steps_per_epoch - first_step
    if config.max_tokens is not None:  # the last window of an epoch may be shorter: whole windows here
        tokens_per_step = setup.streams.shape[0] * config.seq_len * setup.ctx.world_size
        to_run = min(to_run, -(-(config.max_tokens - state.tokens_seen) // tokens_per_step))
    return to_run


def _progress(config: LMConfig, ctx: DistributedContext, total: int, epoch: int) -> Any:
    """A progress bar over the epoch's ``total`` steps, shown on rank 0 when progress is on (disabled otherwise)."""
    from tqdm import tqdm

    shown = config.progress and ctx.is_main
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False, disable=not shown)
