"""Training a language model with any objective: the loop, validation by exact perplexity, checkpoints.

The loop (one screen): for each window of the contiguous streams, the model turns inputs (B, T) into
hidden states (B·T, d); the objective scores them against the output layer — for the sampled objectives
with k noise words shared by the whole batch, one (B·T, d) × (d, k) product — and returns the loss per
token; the mean is back-propagated, gradients are clipped, the optimizer steps. After every epoch the
model is evaluated exactly on the validation text (full softmax), the learning rate is divided by
``lr_decay`` when validation perplexity did not improve (Zaremba et al. 2014), and ``last.pt`` (and
``best.pt`` when it improved) are written. Random streams are re-seeded from (seed, epoch, rank) at every
epoch, so a run resumed from an epoch boundary, on any number of ranks, repeats the draws exactly.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nce_lm.datasets import REGISTRY, dataset_path
from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic
from nce_lm.lm.batches import batchify, num_windows, rank_rows, windows
from nce_lm.lm.checkpoint import load_payload, noise_for, save_payload, write_run_files
from nce_lm.lm.config import LMConfig
from nce_lm.devices import autocast, resolve_precision
from nce_lm.distributed import DistributedContext
from nce_lm.lm.evaluate import evaluate_model
from nce_lm.lm.model import LanguageModel, State, build_model
from nce_lm.locks import folder_lock
from nce_lm.lm.optim import LMOptimizer
from nce_lm.noise import NoiseDistribution
from nce_lm.objectives import Objective, build_objective
from nce_lm.sparse_rows import average_sparse_grads_, clip_grad_norm_
from nce_lm.token_cache import cached_token_ids
from nce_lm.vocab import Vocab, build_vocab


CHECK_EVERY = 50  # steps between host-side checks of the loss (each one a sync, and an all-reduce under torchrun)


def resolve_path(name_or_path: str, split: str) -> Path:
    """A registered dataset name becomes its local split file; anything else is a path."""
    if name_or_path in REGISTRY:
        return dataset_path(name_or_path, split)
    return Path(name_or_path)


def token_ids(path: Path, vocab: Vocab, cache_dir: Path) -> np.ndarray:
    """Token ids of one text (with <eos> per line), cached under ``cache_dir``/<file name>."""
    return np.asarray(cached_token_ids([path], vocab, cache_dir / path.name))


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


@dataclass
class Trainer:
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
    objective = build_objective(config.objective, noise, config.noise_samples, generator=generator,
                                sparse_gradients=sparse) \
        if config.objective != "full" else build_objective("full", None, 0)
    module = TrainingModule(model, objective).to(device)
    tables = model.tables()
    table_ids = {id(p) for p in tables.values()}
    dense = [p for p in module.parameters() if id(p) not in table_ids]
    optimizer = LMOptimizer(config.optimizer, dense, tables, config.learning_rate, sparse)
    return Trainer(model, module, _data_parallel(module, tables, sparse, ctx), optimizer, generator)


def train_step(trained: nn.Module, module: TrainingModule, optimizer: LMOptimizer, inputs: torch.Tensor,
               targets: torch.Tensor, state: State, clip: float, precision: str,
               ctx: DistributedContext) -> tuple[torch.Tensor, torch.Tensor, State]:
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


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _split_paths(config: LMConfig) -> dict[str, Path | None]:
    named = config.train in REGISTRY
    paths: dict[str, Path | None] = {"train": resolve_path(config.train, "train")}
    for split in ("valid", "test"):
        given = getattr(config, split)
        paths[split] = resolve_path(given or config.train, split) if (given or named) else None
    if paths["valid"] is None:
        raise NceLmError("no validation data: give --valid FILE or --data NAME")
    for split, path in paths.items():
        if path is not None and not path.is_file():
            raise NceLmError(f"{split} file not found: {path}")
    return paths


def train_lm(config: LMConfig, run_dir: str | os.PathLike[str], resume: bool = False) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) the run in ``run_dir``; returns its metrics.

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
        with folder_lock(run_dir, "run folder") if ctx.is_main else nullcontext():
            metrics = _train(config, run_dir, resume, ctx)
        ctx.barrier()  # ranks leave together: one tearing its gloo group down while rank 0 still writes can abort
        return metrics
    except BaseException:
        if created and not (run_dir / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        ctx.close()


def _train(config: LMConfig, run_dir: Path, resume: bool, ctx: DistributedContext) -> dict[str, Any]:
    device = ctx.device(config.device)
    precision = resolve_precision(config.precision, device)
    paths = _split_paths(config)
    payload = None
    if resume:
        saved = LMConfig.from_dict(read_json(run_dir / "config.json", "run config"))
        vocab = Vocab.load(run_dir / "vocab.json")
        config = config.resolved(len(vocab))
        config.check_sizes(len(vocab))
        changed = config.differences(saved)
        if changed:
            raise NceLmError(f"cannot resume {run_dir}: settings differ from the run's ({', '.join(changed)})")
        payload = load_payload(run_dir / "last.pt", vocab)
    if ctx.is_main:  # rank 0 builds the vocabulary and the token-id caches; the others read them after it
        if payload is None:
            vocab = build_vocab([paths["train"]], min_count=1)
            config = config.resolved(len(vocab))
            config.check_sizes(len(vocab))
            _announce(config, len(vocab))
        write_run_files(run_dir, config, vocab)
        ids = {split: token_ids(p, vocab, run_dir / "cache") for split, p in paths.items() if p is not None}
    ctx.barrier()
    if not ctx.is_main:
        if payload is None:  # a resumed run loaded and resolved them above
            vocab = Vocab.load(run_dir / "vocab.json")
            config = config.resolved(len(vocab))
        ids = {split: token_ids(p, vocab, run_dir / "cache") for split, p in paths.items() if p is not None}

    noise = noise_for(config, vocab, device)
    trainer = build_trainer(config, noise, ctx)
    model, module, trained, optimizer, generator = (trainer.model, trainer.module, trainer.trained,
                                                    trainer.optimizer, trainer.generator)
    lr = config.learning_rate
    history: list[dict[str, Any]] = []
    start_epoch, tokens_seen, best_ppl = 0, 0, math.inf
    if payload is not None:
        try:
            module.load_state_dict(payload["module"])
            optimizer.load_state_dict(payload["optimizer"])
            start_epoch, tokens_seen = int(payload["epoch"]), int(payload["tokens_seen"])
            lr, best_ppl, history = float(payload["lr"]), float(payload["best_ppl"]), list(payload["history"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise NceLmError(f"{run_dir / 'last.pt'} does not match the run: {str(err).splitlines()[0]}") from None

    streams = rank_rows(batchify(ids["train"], config.batch_size), ctx.rank, ctx.world_size).to(device)
    steps_per_epoch = num_windows(streams, config.seq_len)
    done = config.max_tokens is not None and tokens_seen >= config.max_tokens
    for epoch in range(start_epoch, config.epochs):
        if done:
            break
        _seed_epoch(config, epoch, ctx.rank, generator)
        optimizer.set_lr(lr)
        module.train()
        state = model.initial_state(streams.shape[0], device)
        steps = epoch_tokens = 0
        started = time.perf_counter()
        bar = _progress(config, ctx, steps_per_epoch, epoch)
        loss_total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device
        non_finite = torch.zeros((), dtype=torch.bool, device=device)

        def stop_if_non_finite() -> None:
            """One host sync (and one all-reduce under torchrun) per check, not per step."""
            if ctx.any(bool(non_finite.item())):
                raise NceLmError(
                    f"the training loss became non-finite in epoch {epoch + 1}: stopped, the last good "
                    f"checkpoint in {run_dir} is intact; lower --lr"
                )

        for _, inputs, targets in windows(streams, config.seq_len):
            loss, norm, state = train_step(trained, module, optimizer, inputs, targets, state, config.clip,
                                           precision, ctx)
            non_finite |= ~(torch.isfinite(loss) & torch.isfinite(norm))
            loss_total += loss.double()
            steps += 1
            tokens_seen += targets.numel() * ctx.world_size
            epoch_tokens += targets.numel() * ctx.world_size
            if steps % CHECK_EVERY == 0:
                stop_if_non_finite()
                if bar is not None:
                    rate = epoch_tokens / (time.perf_counter() - started)
                    bar.set_postfix(loss=f"{loss_total.item() / steps:.3f}", lr=f"{lr:g}", tokens_s=f"{rate:,.0f}")
            if bar is not None:
                bar.update(1)
            if config.max_tokens is not None and tokens_seen >= config.max_tokens:
                done = True
                break
        stop_if_non_finite()
        loss_sum = loss_total.item()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        valid = evaluate_model(model, ids["valid"], config.eval_batch_size, config.seq_len, noise,
                               config.is_samples, config.seed, progress=config.progress, label="valid", ctx=ctx)
        if not math.isfinite(valid["nll"]):
            raise NceLmError(f"the validation loss became {valid['nll']} after epoch {epoch + 1}: stopped, the last "
                             f"good checkpoint in {run_dir} is intact; lower --lr")
        improved = valid["ppl"] < best_ppl
        record = {
            "epoch": epoch + 1, "lr": lr, "train_objective_loss": ctx.sum(loss_sum) / ctx.sum(steps),
            "tokens_per_s": epoch_tokens / seconds, "valid": valid, "tokens_seen": tokens_seen,
        }
        history.append(record)
        if improved:
            best_ppl = valid["ppl"]
        else:
            lr /= config.lr_decay
        if ctx.is_main:
            if improved:
                save_payload(run_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1}, vocab)
            save_payload(run_dir / "last.pt", {
                "module": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                "tokens_seen": tokens_seen, "lr": lr, "best_ppl": best_ppl, "history": history,
            }, vocab)
            print(f"epoch {epoch + 1}: valid ppl {valid['ppl']:.2f} (self-normalized {valid['self_normalized_ppl']:.2f}, "
                  f"mean log Z {valid['mean_log_z']:+.3f} ± {valid['std_log_z']:.3f}), "
                  f"{record['tokens_per_s']:,.0f} tokens/s", flush=True)
    metrics: dict[str, Any] = {
        "config": config.to_dict(), "vocab_size": len(vocab), "history": history,
        "valid": history[-1]["valid"] if history else None, "peak_memory_gib": _peak_memory_gib(device),
        "tokens_per_s": (sum(h["tokens_per_s"] for h in history) / len(history)) if history else None,
    }
    if paths["test"] is not None and ctx.is_main and (run_dir / "best.pt").exists():
        best = build_model(config, len(vocab), noise.log_probs.cpu()).to(device)
        best.load_state_dict(load_payload(run_dir / "best.pt", vocab)["model"])
        started = time.perf_counter()
        metrics["test"] = evaluate_model(best, ids["test"], config.eval_batch_size, config.seq_len, noise,
                                         config.is_samples, config.seed, progress=config.progress, label="test")
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
    print(f"training a {config.layers} × {config.dim} {config.model} on V = {vocab_size:,} with {sampling}, "
          f"{config.optimizer} (lr {config.learning_rate:g})", flush=True)
    if config.objective in ("neg", "infonce"):
        print(f"warning: {config.objective} is not a language-model objective: its scores estimate log p − log q "
              "(shifted), not log p, so its exact perplexity is far above the others'; use nce, ranking or full",
              flush=True)


def _data_parallel(module: TrainingModule, tables: dict[str, nn.Parameter], sparse: bool,
                   ctx: DistributedContext) -> nn.Module:
    """``module`` under DistributedDataParallel when running on several ranks (the module itself otherwise).

    With row-sparse tables DDP leaves the tables alone (their touched rows are exchanged by
    :func:`nce_lm.sparse_rows.average_sparse_grads_`) and all-reduces only the dense parameters.
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
