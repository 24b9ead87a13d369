"""Training a language model with any objective: the loop, validation by exact perplexity, checkpoints.

Per window of the contiguous streams: inputs (B, T) → hidden states (B·T, d) → the objective's loss per token
(sampled objectives: k noise words shared by the batch, one (B·T, d) × (d, k) product); the mean is
back-propagated, clipped, stepped. After every epoch: exact validation perplexity, the learning rate divided by
``lr_decay`` when it did not improve (Zaremba et al. 2014), ``last.pt`` (and ``best.pt``) written. Random
streams are re-seeded from (seed, epoch, rank) every epoch, so a resumed run, on any number of ranks, repeats
the draws exactly.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic
from nce_lm.lm.batches import batchify, num_windows, rank_rows, windows
from nce_lm.lm.checkpoint import load_payload, noise_for, save_payload, write_run_files
from nce_lm.lm.config import LMConfig
from nce_lm.lm.data import split_ids, split_paths
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import LanguageModel, State, build_model
from nce_lm.lm.optim import LMOptimizer
from nce_lm.locks import folder_lock
from nce_lm.objectives.losses import Objective, build_objective
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.token_cache import cache_vocab, file_identity
from nce_lm.pipeline.vocab import Vocab, build_vocab
from nce_lm.training.devices import autocast, resolve_precision
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.resume import refuse_changes
from nce_lm.training.sparse_rows import average_sparse_grads_, clip_grad_norm_

CHECK_EVERY = 50  # steps between host-side checks of the loss (each one a sync, and an all-reduce under torchrun)


class TrainingModule(nn.Module):
    """Model and objective as one module, so DistributedDataParallel synchronises every parameter of both."""

    def __init__(self, model: LanguageModel, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """inputs, targets (B, T) → (mean loss per token, next state)."""
        hidden, state = self.model(inputs, state)
        hidden = hidden.reshape(-1, hidden.shape[-1])  # (B·T, d)
        loss = self.objective(hidden, self.model.output_weight, self.model.output_bias, targets.reshape(-1))
        return loss.float().mean(), state


class Trainer(NamedTuple):
    """What a run trains: the model, the model and objective as one module (``trained`` wraps it in
    DistributedDataParallel under torchrun), the optimizer and the noise generator."""

    model: LanguageModel
    module: TrainingModule
    trained: nn.Module
    optimizer: LMOptimizer
    generator: torch.Generator


def build_trainer(config: LMConfig, noise: NoiseDistribution, ctx: DistributedContext) -> Trainer:
    """The model (seeded by ``config.seed``), objective and optimizer of a run, on ``noise``'s device."""
    device = noise.device
    torch.manual_seed(config.seed)
    model = build_model(config, len(noise), noise.log_probs.cpu()).to(device)
    generator = torch.Generator(device=device)
    sparse = config.sparse_tables
    objective = (
        build_objective(config.objective, noise, config.noise_samples, generator=generator, sparse_gradients=sparse)
        if config.objective != "full"
        else build_objective("full", None, 0)
    )
    module = TrainingModule(model, objective).to(device)
    tables = model.tables()
    table_ids = {id(p) for p in tables.values()}
    dense = [p for p in module.parameters() if id(p) not in table_ids]
    optimizer = LMOptimizer(config.optimizer, dense, tables, config.learning_rate, sparse)
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
    """One step on a window inputs, targets (B, T): forward in ``precision``, backward, the tables' sparse rows
    averaged across ranks, clipping of the gradient norm to ``clip``, the optimizer's update.

    ``trained`` is ``module`` or its DistributedDataParallel wrapper. Returns the mean loss and the gradient
    norm before clipping (0-d tensors on the device, not read: no host synchronisation) and the next state.
    """
    state = module.model.detach_state(state)
    with autocast(inputs.device, precision):
        loss, state = trained(inputs, targets, state)
    optimizer.zero_grad()
    loss.backward()
    if optimizer.sparse and ctx.active:  # DistributedDataParallel averages the dense part; the tables' rows here
        average_sparse_grads_(list(optimizer.tables.values()), ctx.world_size)
    norm = clip_grad_norm_(module.parameters(), clip)
    optimizer.step()
    return loss.detach(), norm, state


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
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) the run in ``run_dir``; returns its metrics.

    ``vocab`` (default: the cache folder's, else the training text's own with every word) and ``cache_dir`` (a
    folder of ``nce-lm prepare`` holding the training text's ids) connect the run to the corpus pipeline;
    ``errors="replace"`` substitutes U+FFFD for undecodable bytes. A resumed run may change only the settings
    of :mod:`nce_lm.training.resume`; one stopped by ``max_tokens`` inside an epoch continues that epoch from the step
    where it stopped (exactly, in one process: the hidden state and random streams are in ``last.pt``).
    Under torchrun every rank calls this; rank 0 alone writes files, holding the run folder's lock
    (:mod:`nce_lm.locks`). A new run that fails before its first checkpoint leaves no folder behind.
    """
    config.validate()
    run_dir = Path(run_dir)
    ctx = DistributedContext.from_environment(config.device)
    if not resume and (run_dir / "last.pt").exists():
        raise NceLmError(f"{run_dir} already holds a run; use --resume to continue it or pick another folder")
    created = ctx.is_main and not resume and not run_dir.exists()
    try:
        saved = None
        if resume:  # refused changes are refused before the lock, which would touch the run folder
            config, saved, vocab = _resumed(config, run_dir, vocab)
        with folder_lock(run_dir, "run folder") if ctx.is_main else nullcontext():
            metrics = _train(config, run_dir, saved, ctx, vocab, Path(cache_dir) if cache_dir else None, errors)
        ctx.barrier()  # ranks leave together: one tearing its gloo group down while rank 0 still writes can abort
        return metrics
    except BaseException:
        if created and not (run_dir / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        ctx.close()


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
    epoch: int,
    steps: int,
    tokens: int,
    loss_sum: float,
    state: State,
    generator: torch.Generator,
    ctx: DistributedContext,
    device: torch.device,
) -> dict[str, Any]:
    """Where an epoch stopped by ``max_tokens`` is: its step, tokens and summed loss; in one process also the
    hidden state and the random streams, so that raising ``max_tokens`` continues it exactly."""
    partial: dict[str, Any] = {
        "epoch": epoch,
        "steps": steps,
        "tokens": tokens,
        "loss_sum": loss_sum,
        "cpu_rng": None,
        "cuda_rng": None,
        "noise_rng": None,
        "hidden": None,
    }
    if ctx.world_size == 1:
        partial.update(
            cpu_rng=torch.get_rng_state(),
            noise_rng=generator.get_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            hidden=None if state is None else [t.detach().cpu() for t in state],
        )
    return partial


def _resumed(config: LMConfig, run_dir: Path, vocab: Vocab | None) -> tuple[LMConfig, LMConfig, Vocab]:
    """The settings of a resumed run (``config`` resolved for its vocabulary), the ones it was trained with, and its
    vocabulary; an NceLmError for a change :mod:`nce_lm.training.resume` does not allow or another vocabulary."""
    saved = LMConfig.from_dict(read_json(run_dir / "config.json", "run config"))
    run_vocab = Vocab.load(run_dir / "vocab.json")
    config = config.resolved(len(run_vocab))
    config.check_sizes(len(run_vocab))
    refuse_changes(saved, config, f"the run in {run_dir}")
    if vocab is not None and vocab.fingerprint() != run_vocab.fingerprint():
        raise NceLmError(f"{run_dir} was trained with another vocabulary than the one given")
    return config, saved, run_vocab


def _train(
    config: LMConfig,
    run_dir: Path,
    saved: LMConfig | None,
    ctx: DistributedContext,
    vocab: Vocab | None,
    cache_dir: Path | None,
    errors: str,
) -> dict[str, Any]:
    """The training of :func:`train_lm`; ``saved``: the settings a resumed run was trained with, else None."""
    device = ctx.device(config.device)
    precision = resolve_precision(config.precision, device)
    paths = split_paths(config)
    payload = None
    if saved is not None:
        payload = load_payload(run_dir / "last.pt", vocab)
    if ctx.is_main:  # rank 0 builds the vocabulary and the token-id caches; the others read them after it
        if payload is None:
            if vocab is None and cache_dir is not None:
                vocab = cache_vocab(cache_dir)
            if vocab is None:
                vocab = build_vocab([paths["train"]], min_count=1, errors=errors, progress=config.progress)
            config = config.resolved(len(vocab))
            config.check_sizes(len(vocab))
            _announce(config, len(vocab))
        write_run_files(run_dir, config, vocab)
        ids = split_ids(paths, vocab, run_dir, cache_dir, errors, config.progress)
    ctx.barrier()
    if not ctx.is_main:
        if payload is None:  # a resumed run loaded and resolved them above
            vocab = Vocab.load(run_dir / "vocab.json")
            config = config.resolved(len(vocab))
        ids = split_ids(paths, vocab, run_dir, cache_dir, errors, False)

    noise = noise_for(config, vocab, device)

    def evaluate_split(scored: LanguageModel, split: str, on: DistributedContext | None = None) -> dict[str, Any]:
        settings = (config.eval_batch_size, config.seq_len, noise, config.is_samples, config.seed)
        return evaluate_model(scored, ids[split], *settings, progress=config.progress, label=split, ctx=on)

    model, module, trained, optimizer, generator = build_trainer(config, noise, ctx)
    lr = config.learning_rate
    history: list[dict[str, Any]] = []
    start_epoch, tokens_seen, best_ppl = 0, 0, math.inf
    epoch_best_ppl = math.inf  # the best validation perplexity at an epoch's end: what the decay compares with
    partial = None  # where an epoch stopped by max_tokens stands
    train_text = file_identity(paths["train"])  # told apart from another text on resume
    if payload is not None:
        try:
            module.load_state_dict(payload["module"])
            optimizer.load_state_dict(payload["optimizer"])
            start_epoch, tokens_seen = int(payload["epoch"]), int(payload["tokens_seen"])
            lr, best_ppl, history = float(payload["lr"]), float(payload["best_ppl"]), list(payload["history"])
            epoch_best_ppl = float(payload.get("epoch_best_ppl", best_ppl))
            partial = payload.get("partial")
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise NceLmError(f"{run_dir / 'last.pt'} does not match the run: {str(err).splitlines()[0]}") from None
        if saved is not None and config.lr != saved.lr:
            lr = config.learning_rate  # asked for: the decay goes on from it
        recorded = payload.get("train_text")
        if ctx.is_main and recorded is not None and recorded != train_text:
            print(
                f"warning: the training text {paths['train']} is not the one this run was trained on (its path, "
                "size or modification time differ); training goes on with the run's vocabulary, and words new "
                "to the text count as <unk>",
                file=sys.stderr,
                flush=True,
            )
        if config.max_tokens is not None and tokens_seen >= config.max_tokens:
            raise NceLmError(
                f"{run_dir} has trained {tokens_seen:,} tokens, its max_tokens of {config.max_tokens:,}: "
                "raise --max-tokens to continue it (or give --epochs alone, which lifts the cap)"
            )
        if start_epoch >= config.epochs and partial is None:
            raise NceLmError(f"{run_dir} has trained its {start_epoch} epochs: raise --epochs to continue it")

    streams = rank_rows(batchify(ids["train"], config.batch_size), ctx.rank, ctx.world_size).to(device)
    steps_per_epoch = num_windows(streams, config.seq_len)
    tokens_per_step = streams.shape[0] * config.seq_len * ctx.world_size  # the last window of an epoch may be shorter
    done = False
    for epoch in range(start_epoch, config.epochs):
        if done:
            break
        _seed_epoch(config, epoch, ctx.rank, generator)
        optimizer.set_lr(lr)
        module.train()
        state = model.initial_state(streams.shape[0], device)
        first_step = epoch_tokens = 0
        loss_carried = 0.0
        if partial is not None and int(partial["epoch"]) == epoch:  # the epoch max_tokens stopped: go on from there
            first_step, epoch_tokens = int(partial["steps"]), int(partial["tokens"])
            loss_carried = float(partial["loss_sum"]) / ctx.world_size
            state = _restore_partial(partial, state, generator, ctx, device)
            if history and history[-1].get("partial"):
                history.pop()
        partial = None
        to_run = steps_per_epoch - first_step
        if config.max_tokens is not None:
            to_run = min(to_run, -(-(config.max_tokens - tokens_seen) // tokens_per_step))
        steps, new_tokens = first_step, 0
        started = time.perf_counter()
        bar = _progress(config, ctx, to_run, epoch)
        loss_total = torch.tensor(loss_carried, dtype=torch.float64, device=device)  # summed on the device
        non_finite = torch.zeros((), dtype=torch.bool, device=device)

        def stop_if_non_finite() -> None:
            """One host sync (and one all-reduce under torchrun) per check, not per step."""
            if ctx.any(bool(non_finite.item())):  # noqa: B023 (called in the iteration that defines it)
                raise NceLmError(
                    f"the training loss became non-finite in epoch {epoch + 1}: stopped, the last good "  # noqa: B023
                    f"checkpoint in {run_dir} is intact; lower --lr"
                )

        for _, inputs, targets in windows(streams, config.seq_len, start=first_step * config.seq_len):
            loss, norm, state = train_step(
                trained, module, optimizer, inputs, targets, state, config.clip, precision, ctx
            )
            non_finite |= ~(torch.isfinite(loss) & torch.isfinite(norm))
            loss_total += loss.double()
            steps += 1
            tokens_seen += targets.numel() * ctx.world_size
            new_tokens += targets.numel() * ctx.world_size
            if steps % CHECK_EVERY == 0:
                stop_if_non_finite()
                if bar is not None:
                    rate = new_tokens / (time.perf_counter() - started)
                    bar.set_postfix(loss=f"{loss_total.item() / steps:.3f}", lr=f"{lr:g}", tokens_s=f"{rate:,.0f}")
            if bar is not None:
                bar.update(1)
            if config.max_tokens is not None and tokens_seen >= config.max_tokens:
                done = True
                break
        stop_if_non_finite()
        loss_sum = loss_total.item()
        epoch_tokens += new_tokens
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        stopped = steps < steps_per_epoch  # by max_tokens, inside the epoch
        valid = evaluate_split(model, "valid", ctx)
        if not math.isfinite(valid["nll"]):
            raise NceLmError(
                f"the validation loss became {valid['nll']} after epoch {epoch + 1}: stopped, the last "
                f"good checkpoint in {run_dir} is intact; lower --lr"
            )
        improved = valid["ppl"] < best_ppl
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_objective_loss": ctx.sum(loss_sum) / ctx.sum(steps),
            "tokens_per_s": new_tokens / seconds,
            "valid": valid,
            "tokens_seen": tokens_seen,
        }
        if stopped:
            record.update(partial=True, steps=steps, steps_per_epoch=steps_per_epoch)
            partial = _partial_payload(epoch, steps, epoch_tokens, ctx.sum(loss_sum), state, generator, ctx, device)
        history.append(record)
        if improved:
            best_ppl = valid["ppl"]
        if not stopped:  # the decay is decided at an epoch's end, so a capped run continues as one never stopped
            if valid["ppl"] < epoch_best_ppl:
                epoch_best_ppl = valid["ppl"]
            else:
                lr /= config.lr_decay
        if ctx.is_main:
            if improved:
                save_payload(run_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1}, vocab)
            save_payload(
                run_dir / "last.pt",
                {
                    "module": module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch if stopped else epoch + 1,
                    "tokens_seen": tokens_seen,
                    "lr": lr,
                    "best_ppl": best_ppl,
                    "epoch_best_ppl": epoch_best_ppl,
                    "history": history,
                    "partial": partial,
                    "train_text": train_text,
                },
                vocab,
            )
            where = f" (stopped by --max-tokens after step {steps:,} of {steps_per_epoch:,})" if stopped else ""
            print(
                f"epoch {epoch + 1}{where}: valid ppl {valid['ppl']:.2f} (self-normalized "
                f"{valid['self_normalized_ppl']:.2f}, mean log Z {valid['mean_log_z']:+.3f} ± "
                f"{valid['std_log_z']:.3f}), {record['tokens_per_s']:,.0f} tokens/s",
                flush=True,
            )
    metrics: dict[str, Any] = {
        "config": config.to_dict(),
        "rank": ctx.rank,
        "vocab_size": len(vocab),
        "history": history,
        "valid": history[-1]["valid"] if history else None,
        "peak_memory_gib": peak_memory_gib(device),
        "tokens_per_s": (sum(h["tokens_per_s"] for h in history) / len(history)) if history else None,
    }
    if paths["test"] is not None and ctx.is_main and (run_dir / "best.pt").exists():
        best = build_model(config, len(vocab), noise.log_probs.cpu()).to(device)
        best.load_state_dict(load_payload(run_dir / "best.pt", vocab)["model"])
        started = time.perf_counter()
        metrics["test"] = evaluate_split(best, "test")
        metrics["test"]["seconds"] = time.perf_counter() - started
    if ctx.is_main:
        write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def _announce(config: LMConfig, vocab_size: int) -> None:
    """Say what a new run trains with, the defaults chosen for it included."""
    if config.objective == "full":
        sampling = "the full softmax"
    else:
        sampling = f"{config.objective}, k = {config.noise_samples} noise words (q ∝ count^{config.noise_power:g})"
    print(
        f"training a {config.layers} × {config.dim} {config.model} on V = {vocab_size:,} with {sampling}, "
        f"{config.optimizer} (lr {config.learning_rate:g})",
        flush=True,
    )
    if config.objective in ("neg", "infonce"):
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


def _progress(config: LMConfig, ctx: DistributedContext, total: int, epoch: int):
    if not (config.progress and ctx.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
