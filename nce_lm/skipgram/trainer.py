"""Skip-gram word embeddings with word2vec's semantics, batched for torch on the CPU or a GPU.

Skip-gram (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space"; "Distributed
Representations of Words and Phrases and their Compositionality") learns an input vector v_w and an output
vector u_w per word, so that s(w, c) = v_c · u_w scores the words w seen within a window of each word c.
The scores are trained with any objective of :mod:`nce_lm.objectives.losses` (negative sampling by default), with
word2vec's procedure, which gensim follows too:

* words rarer than ``min_count`` are removed before the windows are formed; each line is a sentence (cut
  every 10,000 words, as gensim's ``corpus_file`` does), and windows never cross sentences;
* each occurrence of w is kept with probability min(1, (√(f/t) + 1)·t/f) (``noise.keep_probabilities``),
  a fresh draw each epoch;
* for each centre word the window is shrunk to b ~ U{1, …, window}, and every word within b positions
  becomes a (context, centre) pair: the context word's input vector predicts the centre word's output
  vector, as in word2vec.c;
* the learning rate decays linearly from ``lr`` to ``min_lr`` over the words of all epochs;
* v starts uniform in ±0.5/d (CBOW: ±1/d, as gensim 4 starts both models), u at zero.

Objectives whose optimal score is log p(w | c) itself (``nce``, ``ranking``) get a per-word output bias
b_w = log q(w), fixed by default, in s(w, c) = v_c · u_w + b_w: the dot product of small vectors cannot carry
the unigram part of log p. With b fixed at log q the corrections for q cancel, which is the sense in which
negative sampling and InfoNCE are NCE and ranking NCE with log q folded into the model (docs/skipgram.md).

Unlike word2vec's one-pair-at-a-time Hogwild updates, pairs are processed in batches of ``batch_size``, scored
against the tables as they stand at the batch's start; three implementations compute that same update
(docs/skipgram.md, "How an update is computed"): the torch path (any device, any objective; ``scatter_add_``
of the row steps, no autograd graph through the tables), the fused CPU kernel (:mod:`nce_lm.skipgram.kernel`,
the default on the CPU where the objective has a per-pair :class:`~nce_lm.objectives.losses.NoiseClassifier`
form) and the device update (:mod:`nce_lm.skipgram.device_update`, the default on a GPU where it applies).
CBOW (``model="cbow"``, word2vec's ``-cbow 1``) makes one example per centre word, the mean of its window's
input vectors (:mod:`nce_lm.skipgram.examples`), trained by the same three with the same objectives.

Under ``torchrun`` every rank forms the same pairs (the subsampling and window draws are seeded by epoch),
takes every N-th batch of them, draws its own noise, and every ``sync_every`` batches per rank the two
tables are averaged across ranks with one all-reduce each (model averaging): 2 · V · d floats per rank and
synchronisation, 19 MB for V = 23,379 and d = 100.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nce_lm.errors import NceLmError
from nce_lm.fileio import remove_stale, temp_prefix
from nce_lm.objectives.losses import build_objective
from nce_lm.objectives.mi_bound import info_nce_bound
from nce_lm.pipeline.corpus import TokenizerConfig
from nce_lm.pipeline.noise import NoiseDistribution, keep_probabilities
from nce_lm.pipeline.sentences import Corpus, encode_sentences, sentence_chunks, split_corpus
from nce_lm.pipeline.token_cache import cache_sources, cache_vocab, cached_token_ids, prepared_ids
from nce_lm.pipeline.vocab import Vocab, build_vocab, count_chunks, vocab_from_counts
from nce_lm.skipgram import device_update
from nce_lm.skipgram import kernel as fused_kernel
from nce_lm.skipgram.checkpoint import (
    LinearSchedule,
    SkipGramState,
    continued_schedule,
    corpus_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.examples import Examples, context_steps, mean_inputs
from nce_lm.skipgram.windows import sentence_ids, window_examples
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.memory import check_memory
from nce_lm.training.resume import refuse_changes
from nce_lm.training.rowwise_adagrad import RowwiseAdagrad
from nce_lm.vectors.formats import format_named
from nce_lm.vectors.word_vectors import WordVectors

IDS_TEMP_PREFIX = "nce_lm-ids-"  # a run without --cache-dir keeps its token ids in a temporary folder so named
_CHUNK_TOKENS = 1 << 20  # tokens turned into examples at a time: bounds the memory of their arrays


@dataclass
class SkipGramResult:
    """What :func:`train_skipgram` returns: the exported vectors, the vocabulary, the run's figures, the output
    (context) vectors of the same words and the run's settings."""

    vectors: WordVectors
    vocab: Vocab
    metrics: dict[str, Any] = field(default_factory=dict)
    context_vectors: WordVectors | None = None
    config: SkipGramConfig | None = None

    @property
    def wv(self) -> WordVectors:
        """The input vectors (gensim's ``Word2Vec.wv``)."""
        return self.vectors

    def save(self, path: str | os.PathLike[str], format: str = "word2vec-bin") -> None:
        """The vectors in ``format`` (nce_lm.vectors.formats); ``gensim-model``: a gensim ``Word2Vec`` that
        ``gensim.models.Word2Vec.load`` opens and can train further, holding the output vectors too."""
        from nce_lm.skipgram.gensim_export import word2vec_training

        training = word2vec_training(self) if format_named(format).needs_training else None
        self.vectors.save(path, format, training)


def _memory_estimate(config: SkipGramConfig, vocab_size: int, tokens: int) -> dict[str, int]:
    """Bytes of a run's largest allocations: the two (V, d) tables (twice: the kernel's padded copy, or the
    optimizer's state), one chunk's (tokens, 2·window) window masks and context ids with its pairs, and one
    batch's (B, k, d) gathered noise rows (with their steps)."""
    return {
        "tables": 4 * 2 * 2 * vocab_size * config.dim,
        "window pairs": min(tokens, _CHUNK_TOKENS) * 2 * config.window * (1 + 4 + 8),
        "noise rows": 2 * config.batch_size * config.negatives * (8 + 4 * config.dim),
    }


class SkipGramTrainer:
    """Runs the epochs of one skip-gram model: data preparation, SGD updates, checkpoints."""

    def __init__(
        self,
        config: SkipGramConfig,
        vocab: Vocab,
        ids: np.ndarray,
        state: SkipGramState | None = None,
        ctx: DistributedContext | None = None,
    ) -> None:
        config.validate()
        check_memory(
            _memory_estimate(config, len(vocab), len(ids)), "lower --dim, --window, --negatives or --batch-size"
        )
        self.config = config
        self.vocab = vocab
        self.ctx = ctx or DistributedContext()
        self.device = self.ctx.device(config.device)
        self.keep = keep_probabilities(vocab.counts, config.sample)  # (V,)
        self.keep[[vocab.unk_id, vocab.eos_id]] = 1.0
        # <unk> stands for every removed word: word2vec drops them before forming windows, so do we.
        self.words_all, self.sentence_all = sentence_ids(ids[ids != vocab.unk_id], vocab.eos_id)
        self.corpus_words = int(np.count_nonzero(ids != vocab.eos_id))  # every word, as gensim counts them
        self.corpus_counts = np.bincount(ids, minlength=len(vocab))  # (V,): which corpus this is (on resume)
        noise = NoiseDistribution(
            vocab.counts, config.noise_power, exclude=[vocab.unk_id, vocab.eos_id], device=self.device
        )
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * self.ctx.rank)
        if state is not None and state.noise_rng is not None:
            self.generator.set_state(state.noise_rng)
        self.objective = build_objective(
            config.objective, noise, config.negatives, shared_noise=config.shared_noise, generator=self.generator
        ).to(self.device)
        self.noise = noise
        self.log_probs = noise.log_probs
        self.classifier = self.objective.classifier(self.log_probs)
        self.kernel = self._choose_kernel()  # "fused", "device" or "torch"
        self.use_kernel = self.kernel == "fused"
        if self.kernel == "device":  # the corpus on the device for the whole run: 16 bytes per word
            self.device_words = torch.from_numpy(self.words_all.astype(np.int64)).to(self.device)
            self.device_sentence = torch.from_numpy(self.sentence_all.astype(np.int64)).to(self.device)
            self.device_keep = torch.from_numpy(self.keep).to(self.device)
        self.bias_mode = config.bias_mode(self.objective.models_log_probability)
        if state is None:
            init = torch.Generator().manual_seed(config.seed)
            # word2vec.c's ±0.5/d; CBOW takes gensim 4's ±1/d (keyedvectors.prep_vectors): its input is a mean,
            # smaller from the start, and with ±0.5/d CBOW's vectors lagged gensim's on WS-353 and MEN (BENCHMARKS)
            bound = (1.0 if config.model == "cbow" else 0.5) / config.dim
            state = SkipGramState(
                (torch.rand(len(vocab), config.dim, generator=init) * 2 - 1) * bound,
                torch.zeros(len(vocab), config.dim),
                # Starting at log q puts s = log q: NCE's logit starts at −log k for every word.
                output_bias=noise.log_probs.cpu().clamp(min=-30.0) if self.bias_mode != "none" else None,
            )
        self.state = SkipGramState(
            state.input_vectors.to(self.device),
            state.output_vectors.to(self.device),
            state.epochs_done,
            list(state.loss_per_epoch),
            output_bias=state.output_bias.to(self.device) if state.output_bias is not None else None,
            schedule=state.schedule
            or LinearSchedule(config.start_lr(), 0, self.corpus_words * config.epochs, config.min_lr),
        )
        self.optimizer = None  # None: SGD, applied by hand
        if config.optimizer == "rowwise-adagrad":
            tables = {"input": len(vocab), "output": len(vocab)}
            if self.bias_mode == "learned":
                tables["bias"] = len(vocab)
            try:
                self.optimizer = RowwiseAdagrad(tables, self.device, state.optimizer_state)
            except ValueError as err:
                raise NceLmError(f"cannot resume the optimizer: {err}") from None

    def _choose_kernel(self) -> str:
        """The update this run uses: ``config.kernel``, or for "auto" the fused kernel where it applies, else the
        device update on CUDA where it applies, else the torch path; asking for one that cannot run is an error."""
        config = self.config
        reasons = {
            "fused": fused_kernel.unavailable_reason(
                self.device, self.ctx.world_size, self.classifier, config.optimizer
            ),
            "device": device_update.unavailable_reason(self.classifier),
            "torch": None,
        }
        if config.kernel == "auto":
            usable = ["fused", "device", "torch"] if self.device.type == "cuda" else ["fused", "torch"]
            return next(kernel for kernel in usable if reasons[kernel] is None)
        if reasons[config.kernel] is not None:
            name = "fused kernel" if config.kernel == "fused" else "device update"
            raise NceLmError(f"the {name} cannot run this training: {reasons[config.kernel]}")
        return config.kernel

    def _examples(self, epoch: int) -> Iterator[tuple[Examples, int]]:
        """Per chunk of the corpus: the subsampled examples and the number of corpus words covered; numpy
        arrays on the host, or for the device update int64 tensors on the device."""
        config = self.config
        if self.kernel == "device":
            generator = device_update.pair_generator(self.device, config.seed, epoch)
            for start in range(0, len(self.device_words), _CHUNK_TOKENS):
                words = self.device_words[start : start + _CHUNK_TOKENS]
                sentence = self.device_sentence[start : start + _CHUNK_TOKENS]
                examples = device_update.chunk_examples(
                    words, sentence, self.device_keep, config.window, generator, config.model
                )
                yield examples, len(words)
            return
        rng = np.random.default_rng([self.config.seed, epoch])
        total = len(self.words_all)
        for start in range(0, total, _CHUNK_TOKENS):
            words = self.words_all[start : start + _CHUNK_TOKENS]
            sentence = self.sentence_all[start : start + _CHUNK_TOKENS]
            kept = rng.random(len(words)) < self.keep[words]
            yield window_examples(words[kept], sentence[kept], config.window, rng, config.model), len(words)

    def _update(self, examples: Examples, lr: float) -> torch.Tensor:
        """One SGD step on a batch of B examples; returns the summed loss as a 0-d tensor on the device.

        Rows are read with ``index_select`` and written with ``scatter_add_`` over an expanded index:
        on the CPU both are several times faster than fancy indexing and ``index_add_``, and the
        scatter stays deterministic (it runs serially along the scattered dimension).
        """
        v_in, u_out = self.state.input_vectors, self.state.output_vectors
        dim, centre = v_in.shape[1], examples.centre
        h = mean_inputs(v_in, examples)  # (B, d)
        noise_ids = self.objective.sample_noise(centre)  # (K,) or (B, K)
        out_ids = torch.cat([centre, noise_ids.reshape(-1)])  # (B + K) or (B + B·K,)
        u_rows = u_out.index_select(0, out_ids)
        u_true, u_noise = u_rows[: len(centre)], u_rows[len(centre) :]  # (B, d), (K or B·K, d)
        s_true = (h * u_true).sum(-1)  # (B,)
        if noise_ids.dim() == 1:
            s_noise = h @ u_noise.T  # (B, K)
            hits = centre[:, None] == noise_ids[None, :]
        else:
            u_noise = u_noise.view(*noise_ids.shape, dim)  # (B, K, d)
            s_noise = torch.bmm(u_noise, h[:, :, None]).squeeze(-1)  # (B, K)
            hits = centre[:, None] == noise_ids
        bias = self.state.output_bias
        if bias is not None:
            s_true, s_noise = s_true + bias[centre], s_noise + bias[noise_ids]
        s_true.requires_grad_(True)
        s_noise.requires_grad_(True)
        loss = self.objective.loss(s_true, s_noise, self.log_probs[centre], self.log_probs[noise_ids], hits).sum()
        g_true, g_noise = torch.autograd.grad(loss, (s_true, s_noise))  # ∂loss/∂s: (B,), (B, K)
        with torch.no_grad():
            # Steps applied as additions: SGD's are −lr × gradient; Adagrad scales the descent direction itself.
            scale = -lr if self.optimizer is None else -1.0
            g_true, g_noise = g_true * scale, g_noise * scale
            if noise_ids.dim() == 1:
                step_h = g_true[:, None] * u_true + g_noise @ u_noise  # (B, d)
                step_noise = g_noise.T @ h  # (K, d)
            else:
                step_h = g_true[:, None] * u_true + torch.bmm(g_noise[:, None, :], u_noise).squeeze(1)
                step_noise = (g_noise[:, :, None] * h[:, None, :]).reshape(-1, dim)  # (B·K, d)
            step_out = torch.cat([g_true[:, None] * h, step_noise])  # rows of out_ids
            # ∂s/∂b = 1: the bias steps are the score steps themselves
            noise_steps = g_noise.sum(0) if noise_ids.dim() == 1 else g_noise.reshape(-1)
            step_bias = torch.cat([g_true, noise_steps]) if self.bias_mode == "learned" else None
            if self.optimizer is None:
                u_out.scatter_add_(0, out_ids[:, None].expand(-1, dim), step_out)
                v_in.scatter_add_(0, examples.context[:, None].expand(-1, dim), context_steps(step_h, examples))
                if step_bias is not None:
                    bias.scatter_add_(0, out_ids, step_bias)
            else:
                self.optimizer.step_("output", u_out, out_ids, step_out, lr)
                self.optimizer.step_("input", v_in, examples.context, context_steps(step_h, examples), lr)
                if step_bias is not None:
                    self.optimizer.step_("bias", bias, out_ids, step_bias, lr)
        return loss.detach().double()

    def _update_device(self, examples: Examples, lr: float) -> torch.Tensor:
        """:meth:`_update`'s step by :func:`nce_lm.skipgram.device_update.update_`, on per-example noise drawn on the
        device."""
        return device_update.update_(
            self.state.input_vectors,
            self.state.output_vectors,
            self.state.output_bias,
            examples,
            self.objective.sample_noise(examples.centre),
            self.classifier,
            lr,
            self.optimizer,
            self.bias_mode == "learned",
        )

    def _threads(self) -> int:
        """The kernel's team: ``--threads``, else torch's count capped by the CPUs this process may run on (the
        kernel's threads wait for each other at every batch, so one more thread than CPUs costs dearly)."""
        if self.config.threads is not None:
            return self.config.threads
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(torch.get_num_threads(), usable))

    def _on_device(self, ids: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Word ids (or offsets) as int64 on the device. From the host to a GPU they go through pinned memory, so
        that the copy is asynchronous: the host goes on queueing the chunk's batches instead of waiting for it."""
        if isinstance(ids, torch.Tensor):
            return ids
        tensor = torch.from_numpy(ids)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True).long()  # int32 over the bus, widened on the device

    def _rate(self, words_done: float) -> float:
        """The learning rate after ``words_done`` corpus words: SGD's linear decay over all words of all epochs;
        row-wise Adagrad's constant rate (it decays each row's steps itself)."""
        return self.config.start_lr() if self.optimizer is not None else self.state.schedule.rate(words_done)

    def _train_chunk_torch(self, examples: Examples, words_done: float, words: float) -> tuple[torch.Tensor, int]:
        """All examples of one chunk, covering ``words`` corpus words after ``words_done``, through :meth:`_update`
        (or :meth:`_update_device`), batch by batch; returns the summed loss and the number of examples trained.

        Each batch takes the rate reached at its share of the chunk's words. Under torchrun rank r takes batches
        r, r + N, ...; every rank counts every batch, so the collective calls line up whatever share each rank
        gets.
        """
        config, ctx = self.config, self.ctx
        update = self._update_device if self.kernel == "device" else self._update
        host_starts = None if examples.starts is None else examples.starts.tolist()  # a sync, once per chunk
        examples = examples.map(self._on_device)
        count, trained = len(examples), 0
        chunk_loss = torch.zeros((), dtype=torch.float64, device=self.device)  # one sync per chunk
        for index, first in enumerate(range(0, count, config.batch_size)):
            if (index + 1) % (config.sync_every * ctx.world_size) == 0:
                self._average_tables()
            if index % ctx.world_size != ctx.rank:
                continue
            last = min(first + config.batch_size, count)
            lr = self._rate(words_done + words * (first / count))
            chunk_loss += update(examples.slice(first, last, host_starts), lr)
            trained += last - first
        return chunk_loss, trained

    def _train_epoch(
        self, epoch: int, tables: fused_kernel.KernelTables | None, bar: Any, words_done: float
    ) -> tuple[float, int, float]:
        """One epoch, chunk by chunk, on this rank, from ``words_done`` corpus words into the schedule; returns
        its summed loss, its number of examples and the words done after it."""
        loss_sum, example_count = 0.0, 0
        for examples, covered in self._examples(epoch):
            words = covered * self.corpus_words / max(len(self.words_all), 1)  # the chunk, in corpus words
            if tables is not None:
                chunk_loss = fused_kernel.train_examples(  # the rate falls linearly over the chunk
                    tables,
                    examples,
                    self.classifier,
                    self.noise,
                    self.config.negatives,
                    self.config.batch_size,
                    self._threads(),
                    fused_kernel.noise_seed(self.config.seed, epoch),
                    example_count,
                    self._rate(words_done),
                    self._rate(words_done + words),
                )
                example_count += len(examples)
            else:
                summed, trained = self._train_chunk_torch(examples, words_done, words)
                chunk_loss = summed.item()
                example_count += trained
            if not math.isfinite(chunk_loss):
                raise NceLmError(
                    f"the loss became {chunk_loss} in epoch {epoch + 1}; lower --lr (also on --resume) or --batch-size"
                )
            loss_sum += chunk_loss
            words_done += words
            bar.update(round(words))
            bar.set_postfix(loss=f"{loss_sum / max(example_count, 1):.4f}", lr=f"{self._rate(words_done):.5f}")
        return loss_sum, example_count, words_done

    def train(
        self, progress: bool = True, on_epoch_end: Callable[[SkipGramTrainer], None] | None = None
    ) -> dict[str, Any]:
        """Run the remaining epochs, calling ``on_epoch_end(self)`` after each; returns the figures of this call
        (``words_per_s`` etc.)."""
        from tqdm import tqdm

        config, ctx = self.config, self.ctx
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        start_epoch = self.state.epochs_done
        words_done = self.corpus_words * start_epoch  # advanced chunk by chunk, never reset: the schedule's clock
        started = time.perf_counter()
        bar = tqdm(
            total=self.corpus_words * config.epochs,
            initial=words_done,
            unit="w",
            unit_scale=True,
            disable=not (progress and ctx.is_main),
            desc="skip-gram",
        )
        unit = "(context, centre) pair" if config.model == "skipgram" else "CBOW example"
        tables = None  # the fused kernel's padded copy of the tables, written back after each epoch
        if self.use_kernel:
            state, learned_bias = self.state, self.bias_mode == "learned"
            tables = fused_kernel.KernelTables(
                state.input_vectors, state.output_vectors, state.output_bias, learned_bias
            )
        for epoch in range(start_epoch, config.epochs):
            loss_sum, example_count, words_done = self._train_epoch(epoch, tables, bar, words_done)
            if tables is not None:
                tables.write_back()
            self._average_tables()
            loss_sum, example_count = ctx.sum(loss_sum), int(ctx.sum(example_count))
            if example_count == 0:
                raise NceLmError(
                    f"epoch {epoch + 1} formed no {unit}s: the corpus is too small for --window "
                    f"{config.window} after subsampling (--sample {config.sample:g}; 0 turns it off)"
                )
            epoch_loss = loss_sum / max(example_count, 1)
            self.state.loss_per_epoch.append(epoch_loss)
            self.state.epochs_done = epoch + 1
            if progress and ctx.is_main:
                bar.write(
                    f"epoch {epoch + 1}/{config.epochs}: mean loss per {unit} {epoch_loss:.4f} over "
                    f"{example_count:,} {unit}s"
                )
            if on_epoch_end is not None:
                on_epoch_end(self)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        bar.close()
        wall = time.perf_counter() - started
        epochs_run = config.epochs - start_epoch
        final = self.state.loss_per_epoch[-1] if self.state.loss_per_epoch else None
        return {
            "words_per_s": self.corpus_words * epochs_run / wall if wall > 0 else float("nan"),
            "wall_s": wall,
            "epochs": config.epochs,
            "epochs_run": epochs_run,
            "corpus_words": self.corpus_words,
            "vocab_size": len(self.vocab) - 2,
            "final_loss": final if final is not None else float("nan"),
            # log(k + 1) − the last epoch's mean training loss, and whether it bounds I(centre; context)
            **info_nce_bound(config.objective, final, config.negatives, config.noise_power, config.sample),
            "loss_per_epoch": list(self.state.loss_per_epoch),
            "objective": config.objective,
            "device": str(self.device),
            "kernel": self.kernel,
            "optimizer": config.optimizer,
            "threads": self._threads() if self.use_kernel else torch.get_num_threads(),
            "rank": ctx.rank,
            "world_size": ctx.world_size,
        }

    def _average_tables(self) -> None:
        """Model averaging under torchrun: each table becomes its mean over the ranks (2·V·d floats each way)."""
        self.ctx.average_(self.state.input_vectors)
        self.ctx.average_(self.state.output_vectors)
        if self.state.output_bias is not None:
            self.ctx.average_(self.state.output_bias)
        if self.optimizer is not None:
            for accumulator in self.optimizer.accumulators.values():
                self.ctx.average_(accumulator)

    def word_vectors(self, table: str = "input") -> WordVectors:
        """The vectors of the real words (the special tokens left out), most frequent first: the input vectors
        v, or with ``table="output"`` the output (context) vectors u (without the output bias)."""
        rows = slice(2, len(self.vocab))
        vectors = self.state.input_vectors if table == "input" else self.state.output_vectors
        return WordVectors(self.vocab.tokens[rows], vectors[rows].float().cpu().numpy(), self.vocab.counts[rows])

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Tables, schedule position, config and vocabulary in one torch file (:mod:`nce_lm.skipgram.checkpoint`)."""
        state = replace(
            self.state,
            input_vectors=self.state.input_vectors.cpu(),
            output_vectors=self.state.output_vectors.cpu(),
            loss_per_epoch=list(self.state.loss_per_epoch),
            noise_rng=self.generator.get_state(),
            output_bias=self.state.output_bias.cpu() if self.state.output_bias is not None else None,
            optimizer_state=self.optimizer.state() if self.optimizer is not None else None,
            corpus_counts=corpus_fingerprint(self.corpus_counts),
        )
        save_checkpoint(path, self.config, self.vocab, state)


def _warn_if_other_corpus(state: SkipGramState, vocab: Vocab, counts: np.ndarray) -> None:
    """On resume: warn when the corpus's id counts (V,) are not those of the corpus the checkpoint was trained on
    (checkpoints without that record: not the vocabulary's own counts). Training goes on, since fine-tuning on
    new text is legitimate, but its words outside the vocabulary are dropped, which the user should know."""
    if state.corpus_counts is not None:
        same = state.corpus_counts == corpus_fingerprint(counts)
    else:
        same = bool(vocab.settings.get("prune_threshold")) or np.array_equal(counts, vocab.counts)
    if same:
        return
    words = max(int(counts.sum() - counts[vocab.eos_id]), 1)
    print(
        f"warning: this corpus is not the one the checkpoint was trained on (its word counts differ); training "
        f"goes on with the checkpoint's vocabulary of {len(vocab) - 2:,} words, and the "
        f"{counts[vocab.unk_id] / words:.2%} of its tokens outside it are dropped",
        file=sys.stderr,
        flush=True,
    )


def _corpus_ids(
    corpus: Corpus | None,
    config: SkipGramConfig,
    vocab: Vocab | None,
    cache_dir: str | os.PathLike[str] | None,
    scratch: str,
    errors: str,
    progress: bool,
) -> tuple[Vocab, np.ndarray]:
    """The vocabulary (given, from the cache folder, or counted) and the corpus's token ids (N,)."""
    paths, sentences = split_corpus(corpus) if corpus is not None else (None, None)
    if sentences is not None:
        if cache_dir is not None:
            raise NceLmError("a token cache holds the ids of files; token lists are encoded in memory")
        if config.lowercase or config.split_punctuation:
            raise NceLmError("lowercase and split_punctuation apply to text files; token lists are used as given")
        if vocab is None:
            counted = count_chunks(sentence_chunks(sentences, "counting words" if progress else None))
            vocab = vocab_from_counts(*counted, min_count=config.min_count, max_final_vocab=config.max_final_vocab)
        return vocab, encode_sentences(sentences, vocab, "encoding" if progress else None)
    if cache_dir is not None:
        vocab = vocab or cache_vocab(cache_dir)
        paths = paths or cache_sources(cache_dir)
    if paths is None:
        raise NceLmError("no corpus: give text files, token lists, or a token cache")
    if vocab is None:
        tokenizer = TokenizerConfig(config.lowercase, config.split_punctuation)
        vocab = build_vocab(
            paths,
            min_count=config.min_count,
            tokenizer=tokenizer,
            errors=errors,
            progress=progress,
            max_final_vocab=config.max_final_vocab,
        )
    if cache_dir is None:
        return vocab, np.asarray(cached_token_ids(paths, vocab, scratch, errors, progress))
    return vocab, np.asarray(prepared_ids(cache_dir, vocab, paths, errors, progress))


def train_skipgram(
    corpus: Corpus | None,
    config: SkipGramConfig | None = None,
    vocab: Vocab | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    errors: str = "strict",
    **settings: Any,
) -> SkipGramResult:
    """Train skip-gram vectors; the Python entry point behind ``nce-lm skipgram``.

    ``corpus``: text files (a path or a list of paths, folders read recursively), or token lists as gensim's
    ``Word2Vec`` takes them (``[["the", "cat"], ["a", "dog"]]`` or any re-iterable of such lists; see
    :mod:`nce_lm.pipeline.sentences`), or None with ``cache_dir`` (the files recorded there). Settings come from
    ``config`` (default :class:`SkipGramConfig`) with ``settings`` (``dim=50, min_count=1``...) applied on top.

    ``vocab`` defaults to the cache folder's (written by ``nce-lm prepare``) or else the corpus's own, counted
    with ``config.min_count``, ``config.max_final_vocab`` and the config's tokenizer settings; a given vocabulary
    is used as it is.
    ``cache_dir`` keeps the files' token ids for later runs: a folder of ``nce-lm prepare`` must hold this
    corpus under this vocabulary (an :class:`NceLmError` otherwise); without one, ids go to a temporary folder.
    ``errors="replace"`` substitutes U+FFFD for undecodable bytes instead of stopping.
    ``progress=False`` prints no bar and no per-epoch lines; what a resumed run's learning rate does, and warnings,
    are still said.

    ``checkpoint`` is rewritten after every epoch; ``resume`` continues a checkpoint up to ``config.epochs``
    epochs in all with its tables, vocabulary and schedule. Only the settings of :mod:`nce_lm.training.resume` may
    differ from the checkpoint's; the learning rate continues as :func:`continued_schedule` says.
    """
    config = replace(config or SkipGramConfig(), **settings)
    config.validate()
    saved = state = None
    if resume is not None:
        saved, saved_vocab, state = load_checkpoint(resume)
        refuse_changes(saved, config, f"from {resume}")
        if vocab is not None and vocab.fingerprint() != saved_vocab.fingerprint():
            raise NceLmError(f"checkpoint {resume} was trained with another vocabulary than the one given")
        vocab = saved_vocab
        if state.epochs_done >= config.epochs:
            raise NceLmError(f"checkpoint already has {state.epochs_done} epochs; ask for more with --epochs")
    ctx = DistributedContext.from_environment(config.device)
    try:
        remove_stale(Path(tempfile.gettempdir()), IDS_TEMP_PREFIX)  # left by killed runs
        with tempfile.TemporaryDirectory(prefix=temp_prefix(IDS_TEMP_PREFIX)) as tmp:
            vocab, ids = _corpus_ids(
                corpus, config, vocab, None if ctx.active else cache_dir, tmp, errors, progress and ctx.is_main
            )
            trainer = SkipGramTrainer(config, vocab, ids, state, ctx)
            if state is not None and ctx.is_main:
                _warn_if_other_corpus(state, vocab, trainer.corpus_counts)
            if not len(trainer.words_all):
                raise NceLmError("the corpus holds no word of the vocabulary to train on")
            if saved is not None and state is not None:
                trainer.state.schedule = continued_schedule(saved, config, state, trainer.corpus_words)
                if trainer.state.schedule is not state.schedule and config.optimizer == "sgd" and ctx.is_main:
                    source = (
                        "as asked" if config.start_lr() != saved.start_lr() else "the rate reached; --lr sets another"
                    )
                    print(
                        f"learning rate: from {trainer.state.schedule.lr:g} ({source}) down to {config.min_lr:g} "
                        f"over epochs {state.epochs_done + 1}-{config.epochs}",
                        flush=True,
                    )
            save = (lambda t: t.save_checkpoint(checkpoint)) if checkpoint is not None and ctx.is_main else None
            metrics = trainer.train(progress=progress, on_epoch_end=save)
            ctx.barrier()  # ranks leave together, not while rank 0 still writes its checkpoint
    finally:
        ctx.close()
    return SkipGramResult(trainer.word_vectors(), vocab, metrics, trainer.word_vectors("output"), config)
