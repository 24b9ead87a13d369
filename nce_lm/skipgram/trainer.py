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
* each pair is scored against k noise words from q, drawn for the pair as word2vec does, or once per window and
  shared by its pairs (``noise_per="window"``, Ji et al. 2016; docs/skipgram.md);
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
the default on the CPU where the objective has a per-pair :class:`~nce_lm.objectives.kinds.NoiseClassifier`
form) and the device update (:mod:`nce_lm.skipgram.device_update`, the default on a GPU where it applies).
CBOW (``model="cbow"``, word2vec's ``-cbow 1``) makes one example per centre word, the mean of its window's
input vectors (:mod:`nce_lm.skipgram.examples`), trained by the same three with the same objectives.

Under ``torchrun`` every rank forms the same pairs (the subsampling and window draws are seeded by epoch),
takes every N-th batch of them, draws its own noise, and every ``sync_every`` batches per rank the two
tables are averaged across ranks with one all-reduce each (model averaging): 2 · V · d floats per rank and
synchronisation, 19 MB for V = 23,379 and d = 100.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nce_lm.errors import NceLmError
from nce_lm.fileio import remove_stale, temp_prefix
from nce_lm.objectives.kinds import objective_kind
from nce_lm.objectives.mi_bound import info_nce_bound
from nce_lm.pipeline.corpus import TokenizerConfig
from nce_lm.pipeline.noise import NoiseDistribution, keep_probabilities
from nce_lm.pipeline.sentences import Corpus, encode_sentences, sentence_chunks, split_corpus
from nce_lm.pipeline.token_cache import build_vocab_and_ids, cache_sources, cache_vocab, cached_token_ids, prepared_ids
from nce_lm.pipeline.vocab import Vocab, build_vocab, count_chunks, vocab_from_counts
from nce_lm.skipgram import windows
from nce_lm.skipgram.checkpoint import (
    EpochPosition,
    LinearSchedule,
    SkipGramState,
    continued_schedule,
    corpus_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from nce_lm.skipgram.config import SkipGramConfig, renamed
from nce_lm.skipgram.kernel import FusedKernelPath, KernelTables
from nce_lm.skipgram.update_path import UpdatePath, choose_path
from nce_lm.skipgram.windows import CHUNK_TOKENS, CorpusWords, epoch_examples
from nce_lm.training import preemption
from nce_lm.training.devices import default_threads
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.jsonl_log import JsonLinesLog
from nce_lm.training.memory import check_memory
from nce_lm.training.resume import refuse_changes
from nce_lm.vectors.formats import format_named
from nce_lm.vectors.word_vectors import WordVectors

if TYPE_CHECKING:
    import torch

    from nce_lm.objectives.losses import Objective
    from nce_lm.training.rowwise_adagrad import RowwiseAdagrad

UNIFORM_BLOCK = 1 << 20  # random numbers drawn at a time by seeded_uniform
IDS_TEMP_PREFIX = "nce_lm-ids-"  # a run without --cache-dir keeps its token ids in a temporary folder so named


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
    key_bytes = 8 if config.noise_per == "window" else 0  # the pairs' int64 noise keys
    return {
        "tables": 4 * 2 * 2 * vocab_size * config.dim,
        "window pairs": min(tokens, CHUNK_TOKENS) * 2 * config.window * (1 + 4 + 8 + key_bytes),
        "noise rows": 2 * config.batch_size * config.noise_samples * (8 + 4 * config.dim),
    }


class SkipGramTrainer:
    """Runs the epochs of one skip-gram model: data preparation, the update path's chunks, checkpoints."""

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
            _memory_estimate(config, len(vocab), len(ids)), "lower --dim, --window, --noise-samples or --batch-size"
        )
        self.config = config
        self.vocab = vocab
        self.ctx = ctx or DistributedContext()
        self.device = self.ctx.device_name(config.device)  # "cpu", "cuda:0"...
        self.keep = keep_probabilities(vocab.counts, config.sample)  # (V,)
        self.keep[[vocab.unk_id, vocab.eos_id]] = 1.0
        # <unk> stands for every removed word: word2vec drops them before forming windows, so do we.
        self.corpus = CorpusWords.from_ids(ids, len(vocab), vocab.unk_id, vocab.eos_id)
        self.corpus_words = len(ids) - int(self.corpus.counts[vocab.eos_id])  # every word, as gensim counts them
        self.noise = NoiseDistribution(
            vocab.counts, config.noise_power, exclude=[vocab.unk_id, vocab.eos_id], device=self.device
        )
        self._saved_noise_rng = state.noise_rng if state is not None else None
        kind = objective_kind(config.objective)
        per_pair = None if config.shared_noise else kind.classifier(self.noise.host_log_probs, config.noise_samples)
        self.path_name = choose_path(config.kernel, self.device, self.ctx.world_size, per_pair, config.optimizer)
        # the fused kernel reads the numpy form; the torch and device paths the objective's, on the device
        self.classifier = per_pair if self.path_name == "fused" else self.objective.classifier(self.noise.log_probs)
        self.bias_mode = config.bias_mode(kind.models_log_probability)
        self._kernel_tables: KernelTables | None = None  # the fused kernel's layout of the state's tables
        self.state = self._device_state(state or self._initial_state())
        self.optimizer = self._optimizer(state.optimizer_state if state is not None else None)  # None: SGD
        self.path = self._update_path()

    @cached_property
    def generator(self) -> torch.Generator:
        """The noise generator of the torch and device paths (and of the checkpoint), made at first use."""
        import torch

        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 7919 * self.ctx.rank)
        if self._saved_noise_rng is not None:
            generator.set_state(self._saved_noise_rng)
        return generator

    @cached_property
    def objective(self) -> Objective:
        """The objective as a torch module, for the torch and device paths (the fused kernel needs none)."""
        from nce_lm.objectives.losses import build_objective

        config = self.config
        return build_objective(
            config.objective,
            self.noise,
            config.noise_samples,
            shared_noise=config.shared_noise,
            generator=self.generator,
        ).to(self.device)

    def _initial_state(self) -> SkipGramState:
        """A new run's tables: v uniform in ±0.5/d (CBOW ±1/d), u at zero, the output bias (if any) at log q."""
        config, vocab = self.config, self.vocab
        # word2vec.c's ±0.5/d; CBOW takes gensim 4's ±1/d (keyedvectors.prep_vectors): its input is a mean,
        # smaller from the start, and with ±0.5/d CBOW's vectors lagged gensim's on WS-353 and MEN (BENCHMARKS)
        bound = (1.0 if config.model == "cbow" else 0.5) / config.dim
        input_vectors = seeded_uniform(len(vocab), config.dim, config.seed)  # scaled in place: (u · 2 − 1) · bound
        input_vectors *= 2
        input_vectors -= 1
        input_vectors *= bound
        return SkipGramState(
            input_vectors,
            np.zeros((len(vocab), config.dim), dtype=np.float32),
            # Starting at log q puts s = log q: NCE's logit starts at −log k for every word.
            output_bias=np.maximum(self.noise.host_log_probs, -30.0) if self.bias_mode != "none" else None,
        )

    def _table(self, table: Any) -> Any:
        """``table`` (a numpy array or a CPU tensor) as the update path trains it: a numpy array for the fused
        kernel, else a tensor on the run's device (either sharing memory with ``table`` where it can)."""
        if table is None or self.path_name == "fused":
            return None if table is None else np.asarray(table)
        import torch

        return torch.as_tensor(table).to(self.device)

    def _device_state(self, state: SkipGramState) -> SkipGramState:
        """``state``'s tables as the update path trains them (:meth:`_table`), with the schedule of all epochs if it
        has none yet."""
        return SkipGramState(
            self._table(state.input_vectors),
            self._table(state.output_vectors),
            state.epochs_done,
            list(state.loss_per_epoch),
            output_bias=self._table(state.output_bias),
            schedule=state.schedule
            or LinearSchedule(self.config.start_lr(), 0, self.corpus_words * self.config.epochs, self.config.min_lr),
            words_done=state.words_done,
            position=state.position,
        )

    def _optimizer(self, saved: dict[str, Any] | None) -> RowwiseAdagrad | None:
        """Row-wise Adagrad's accumulators (restored from ``saved``) when the run asks for it; None for SGD."""
        if self.config.optimizer != "rowwise-adagrad":
            return None
        from nce_lm.training.rowwise_adagrad import RowwiseAdagrad

        tables = {"input": len(self.vocab), "output": len(self.vocab)}
        if self.bias_mode == "learned":
            tables["bias"] = len(self.vocab)
        try:
            return RowwiseAdagrad(tables, self.device, saved)
        except ValueError as err:
            raise NceLmError(f"cannot resume the optimizer: {err}") from None

    def _update_path(self) -> UpdatePath:
        """The update this run uses (:func:`nce_lm.skipgram.update_path.choose_path`), built once."""
        config, state, name = self.config, self.state, self.path_name
        host_chunks = partial(
            epoch_examples, self.corpus, self.keep, config.window, config.model, config.seed, noise_per=config.noise_per
        )
        if name == "fused":
            learned = self.bias_mode == "learned"
            # the run's tables are views of the kernel's padded rows from here on: one copy of them while it trains
            tables = self._kernel_tables = KernelTables.take(state, learned)
            return FusedKernelPath(
                tables, self.classifier, self.noise, config, self._threads(), self._rate, host_chunks
            )
        batched = {
            "state": state,
            "objective": self.objective,
            "optimizer": self.optimizer,
            "train_bias": self.bias_mode == "learned",
            "config": config,
            "ctx": self.ctx,
            "rate": self._rate,
            "average_tables": self._average_tables,
        }
        from nce_lm.skipgram.device_update import DeviceUpdatePath
        from nce_lm.skipgram.torch_update import TorchUpdatePath

        if name == "device":
            return DeviceUpdatePath(self.corpus, self.keep, self.classifier, **batched)
        return TorchUpdatePath(chunks=host_chunks, **batched)

    def _threads(self) -> int:
        """The kernel's team: ``--threads``, else torch's default count capped by the CPUs this process may run on
        (the kernel's threads wait for each other at every batch, so one more thread than CPUs costs dearly)."""
        if self.config.threads is not None:
            return self.config.threads
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(default_threads(), usable))

    def _rate(self, words_done: float) -> float:
        """The learning rate after ``words_done`` corpus words: SGD's linear decay over all words of all epochs;
        row-wise Adagrad's constant rate (it decays each row's steps itself)."""
        return self.config.start_lr() if self.optimizer is not None else self.state.schedule.rate(words_done)

    def _train_epoch(
        self, epoch: int, bar: Any, words_done: float, boundary: Callable[[EpochPosition, float], None]
    ) -> tuple[float, int, float]:
        """One epoch, chunk by chunk, on this rank, from ``words_done`` corpus words into the schedule, calling
        ``boundary(position, words_done)`` after each chunk; returns its summed loss, its number of examples and the
        words done after it. An epoch a checkpoint was saved inside continues from its :class:`EpochPosition`."""
        start = self.state.position if epoch == self.state.epochs_done else None
        self.state.position = None
        if start is not None and start.chunk_tokens != windows.CHUNK_TOKENS:
            raise NceLmError(
                f"the checkpoint was saved inside epoch {epoch + 1}, in chunks of {start.chunk_tokens:,} words; this "
                f"version cuts chunks of {windows.CHUNK_TOKENS:,}: continue it with the version that saved it"
            )
        loss_sum, example_count = (start.loss_sum, start.examples_done) if start is not None else (0.0, 0)
        chunks = self.path.chunks(epoch)
        chunks_done = start.chunks_done if start is not None else 0
        for _ in itertools.islice(chunks, chunks_done):  # drawn again, so the next chunks' draws are the same
            pass
        for examples, covered in chunks:
            words = covered * self.corpus_words / max(len(self.corpus), 1)  # the chunk, in corpus words
            chunk_loss, trained = self.path.train_chunk(examples, epoch, example_count, words_done, words)
            example_count += trained
            if not math.isfinite(chunk_loss):
                raise NceLmError(
                    f"the loss became {chunk_loss} in epoch {epoch + 1}; lower --lr (also on --resume) or --batch-size"
                )
            loss_sum += chunk_loss
            words_done += words
            chunks_done += 1
            bar.update(round(words))
            bar.set_postfix(loss=f"{loss_sum / max(example_count, 1):.4f}", lr=f"{self._rate(words_done):.5f}")
            boundary(EpochPosition(chunks_done, example_count, loss_sum, windows.CHUNK_TOKENS), words_done)
        return loss_sum, example_count, words_done

    def _end_epoch(self, epoch: int, loss_sum: float, example_count: int, bar: Any, progress: bool) -> None:
        """After an epoch on every rank: average the tables and the figures across ranks, record the epoch's mean
        loss (an error when it formed no example) and report it (with ``progress``)."""
        config, ctx = self.config, self.ctx
        self._average_tables()
        loss_sum, example_count = ctx.sum(loss_sum), int(ctx.sum(example_count))
        unit = "(context, centre) pair" if config.model == "skipgram" else "CBOW example"
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

    def train(
        self,
        progress: bool = True,
        on_epoch_end: Callable[[SkipGramTrainer], None] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: preemption.CheckpointEvery | None = None,
    ) -> dict[str, Any]:
        """Run the remaining epochs, writing ``checkpoint`` (when given) and calling ``on_epoch_end(self)`` after
        each; returns the figures of this call (``words_per_s`` etc.).

        In one process, ``checkpoint`` is also written inside an epoch every ``checkpoint_every`` (chunks or
        seconds), and a SIGTERM or SIGINT stops the run at the next chunk boundary with a checkpoint of the state
        there (:mod:`nce_lm.training.preemption`; without ``checkpoint`` nothing is saved), raising
        :class:`~nce_lm.training.preemption.Stopped`. Resumed from either, the run ends bit for bit as it would have.
        """
        if self.ctx.world_size > 1 and checkpoint_every is not None:
            raise NceLmError("checkpoints inside an epoch are written in one process, not under torchrun")
        on_boundary = self._boundaries(checkpoint, checkpoint_every)
        with preemption.deferred() if self.ctx.world_size == 1 else contextlib.nullcontext():
            return self._train(progress, on_epoch_end, checkpoint, on_boundary)

    def _train(
        self,
        progress: bool,
        on_epoch_end: Callable[[SkipGramTrainer], None] | None,
        checkpoint: str | os.PathLike[str] | None,
        on_boundary: Callable[[EpochPosition, float], None],
    ) -> dict[str, Any]:
        """:meth:`train`'s epochs."""
        from tqdm import tqdm

        config = self.config
        if config.threads is not None and self.path_name != "fused":  # the kernel runs its own threads
            import torch

            torch.set_num_threads(config.threads)
        start_epoch = self.state.epochs_done
        # advanced chunk by chunk, never reset: the schedule's clock
        words_done = self.state.words_done if self.state.words_done is not None else self.corpus_words * start_epoch
        started = time.perf_counter()
        bar = tqdm(
            total=self.corpus_words * config.epochs,
            initial=words_done,
            unit="w",
            unit_scale=True,
            disable=not (progress and self.ctx.is_main),
            desc="CBOW" if config.model == "cbow" else "skip-gram",
        )
        for epoch in range(start_epoch, config.epochs):
            loss_sum, example_count, words_done = self._train_epoch(epoch, bar, words_done, on_boundary)
            self._end_epoch(epoch, loss_sum, example_count, bar, progress)
            self.state.words_done = words_done
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            if on_epoch_end is not None:
                on_epoch_end(self)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
        bar.close()
        return self._metrics(config.epochs - start_epoch, time.perf_counter() - started)

    def _boundaries(
        self, checkpoint: str | os.PathLike[str] | None, every: preemption.CheckpointEvery | None
    ) -> Callable[[EpochPosition, float], None]:
        """What :meth:`train` does after each chunk: nothing under torchrun; in one process, a checkpoint when
        ``every`` is due, and when a signal asks to stop, the checkpoint then :class:`preemption.Stopped`."""
        if self.ctx.world_size > 1:
            return lambda position, words_done: None
        boundaries = preemption.StepBoundaries(every)

        def on_boundary(position: EpochPosition, words_done: float) -> None:
            save, signum = boundaries.reached()
            if save and checkpoint is not None:
                self.state.position, self.state.words_done = position, words_done
                try:
                    self.save_checkpoint(checkpoint)
                finally:
                    self.state.position = None
            if signum is not None:
                chunks = -(-len(self.corpus) // position.chunk_tokens)
                where = f"in epoch {self.state.epochs_done + 1} after chunk {position.chunks_done:,} of {chunks:,}"
                if checkpoint is None:
                    advice = "give --checkpoint FILE to make a run resumable (docs/reliability.md)"
                    raise preemption.stop(signum, where, advice=advice)
                raise preemption.stop(signum, where, str(checkpoint))

        return on_boundary

    def _metrics(self, epochs_run: int, wall: float) -> dict[str, Any]:
        """The figures of a :meth:`train` call that ran ``epochs_run`` epochs in ``wall`` seconds."""
        config, ctx = self.config, self.ctx
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
            **info_nce_bound(config.objective, final, config.noise_samples, config.noise_power, config.sample),
            "loss_per_epoch": list(self.state.loss_per_epoch),
            "objective": config.objective,
            "device": str(self.device),
            "kernel": self.path.name,
            "optimizer": config.optimizer,
            "threads": self.path.threads,
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

    def release(self) -> None:
        """Let go of what only training needs before the result's vectors are taken: the corpus's index, the update
        path (and its chunk's examples), and the fused kernel's layout, the state's tables becoming (V, d) arrays in
        the padded rows' own memory (:meth:`KernelTables.give_back`), so that the end of a run makes no second copy
        of a table. The trainer trains no more after this."""
        del self.path, self.corpus
        if self._kernel_tables is not None:
            self._kernel_tables.give_back(self.state)
            self._kernel_tables = None

    def word_vectors(self, table: str = "input") -> WordVectors:
        """The vectors of the real words (the special tokens left out), most frequent first: the input vectors
        v, or with ``table="output"`` the output (context) vectors u (without the output bias)."""
        rows = slice(2, len(self.vocab))
        vectors = self.state.input_vectors if table == "input" else self.state.output_vectors
        rows_of = vectors[rows] if isinstance(vectors, np.ndarray) else vectors[rows].float().cpu().numpy()
        return WordVectors(self.vocab.tokens[rows], rows_of, self.vocab.counts[rows])

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Tables, schedule position, config and vocabulary in one torch file (:mod:`nce_lm.skipgram.checkpoint`);
        imports torch, even on the fused kernel's path."""
        import torch

        def saved(table: Any) -> Any:  # a CPU tensor of its own: the fused kernel's tables are views of padded rows
            return torch.from_numpy(np.ascontiguousarray(table)) if isinstance(table, np.ndarray) else table.cpu()

        state = replace(
            self.state,
            input_vectors=saved(self.state.input_vectors),
            output_vectors=saved(self.state.output_vectors),
            loss_per_epoch=list(self.state.loss_per_epoch),
            noise_rng=self.generator.get_state(),
            output_bias=saved(self.state.output_bias) if self.state.output_bias is not None else None,
            optimizer_state=self.optimizer.state() if self.optimizer is not None else None,
            corpus_counts=corpus_fingerprint(self.corpus.counts),
        )
        save_checkpoint(path, self.config, self.vocab, state)


def seeded_uniform(rows: int, columns: int, seed: int) -> np.ndarray:
    """(rows, columns) float32 uniform in [0, 1): the numbers ``torch.rand(rows, columns,
    generator=torch.Generator().manual_seed(seed))`` gives, without torch (tests/test_skipgram.py checks it).

    torch's CPU generator is MT19937 (Matsumoto & Nishimura 1998) seeded as numpy's ``RandomState(seed)`` seeds it;
    each float32 takes the low 24 bits of one 32-bit output, divided by 2^24.
    """
    bits = np.random.MT19937()
    bits.state = np.random.RandomState(seed).get_state(legacy=False)
    out = np.empty(rows * columns, dtype=np.float32)
    for start in range(0, len(out), UNIFORM_BLOCK):  # a block at a time: the 32-bit outputs come as uint64
        raw = bits.random_raw(min(UNIFORM_BLOCK, len(out) - start))
        np.multiply((raw & 0xFFFFFF).astype(np.float32), np.float32(2.0**-24), out=out[start : start + len(raw)])
    return out.reshape(rows, columns)


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
    counting: dict[str, Any] = {
        "min_count": config.min_count,
        "max_final_vocab": config.max_final_vocab,
        "tokenizer": TokenizerConfig(config.lowercase, config.split_punctuation),
        "errors": errors,
        "progress": progress,
    }
    if vocab is None and cache_dir is None:  # count and encode in one reading of the corpus
        vocab, cache = build_vocab_and_ids(paths, scratch, **counting)
        return vocab, cache.ids
    if vocab is None:
        vocab = build_vocab(paths, **counting)
    if cache_dir is None:
        return vocab, cached_token_ids(paths, vocab, scratch, errors, progress)
    return vocab, prepared_ids(cache_dir, vocab, paths, errors, progress)


def _resumed(
    resume: str | os.PathLike[str], config: SkipGramConfig, vocab: Vocab | None
) -> tuple[SkipGramConfig, Vocab, SkipGramState]:
    """The checkpoint ``resume``'s settings, vocabulary and state, once ``config`` (and ``vocab``, if given) are
    checked to continue it."""
    saved, saved_vocab, state = load_checkpoint(resume)
    refuse_changes(saved, config, f"from {resume}")
    if vocab is not None and vocab.fingerprint() != saved_vocab.fingerprint():
        raise NceLmError(f"checkpoint {resume} was trained with another vocabulary than the one given")
    if state.epochs_done >= config.epochs:
        raise NceLmError(f"checkpoint already has {state.epochs_done} epochs; ask for more with --epochs")
    return saved, saved_vocab, state


def _continue_schedule(trainer: SkipGramTrainer, saved: SkipGramConfig, state: SkipGramState) -> None:
    """Set a resumed run's learning-rate schedule (:func:`continued_schedule`) and say so when it is a new one."""
    config = trainer.config
    trainer.state.schedule = continued_schedule(saved, config, state, trainer.corpus_words)
    if trainer.state.schedule is not state.schedule and config.optimizer == "sgd" and trainer.ctx.is_main:
        source = "as asked" if config.start_lr() != saved.start_lr() else "the rate reached; --lr sets another"
        print(
            f"learning rate: from {trainer.state.schedule.lr:g} ({source}) down to {config.min_lr:g} "
            f"over epochs {state.epochs_done + 1}-{config.epochs}",
            flush=True,
        )


class EpochLog:
    """The epoch-end callback of a run with a checkpoint (which :meth:`SkipGramTrainer.train` has just rewritten):
    append the epoch's record
    ``{"epoch", "words", "loss", "words_per_s"}`` (1-based epoch, corpus words trained so far, the epoch's mean loss
    per example, corpus words per second of the epoch) to ``CHECKPOINT.log.jsonl``
    (:class:`nce_lm.training.jsonl_log.JsonLinesLog`), which a ``resumed`` run continues."""

    def __init__(self, checkpoint: str | os.PathLike[str], resumed: bool) -> None:
        self.log = JsonLinesLog(f"{os.fspath(checkpoint)}.log.jsonl", append=resumed)
        self.since = time.perf_counter()

    def __call__(self, trainer: SkipGramTrainer) -> None:
        seconds = time.perf_counter() - self.since
        epoch, words = trainer.state.epochs_done, trainer.corpus_words
        record = {"epoch": epoch, "words": words * epoch, "loss": trainer.state.loss_per_epoch[-1]}
        self.log.write({**record, "words_per_s": words / seconds})
        self.since = time.perf_counter()


def train_skipgram(
    corpus: Corpus | None,
    config: SkipGramConfig | None = None,
    vocab: Vocab | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    errors: str = "strict",
    checkpoint_every: preemption.CheckpointEvery | None = None,
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

    ``checkpoint`` is rewritten after every epoch, and inside epochs ``checkpoint_every`` and when SIGTERM or
    SIGINT stops the run (:meth:`SkipGramTrainer.train`, which raises
    :class:`~nce_lm.training.preemption.Stopped` then), and each epoch's loss is appended to
    ``CHECKPOINT.log.jsonl`` (:class:`EpochLog`); ``resume`` continues a checkpoint up to ``config.epochs``
    epochs in all with its tables, vocabulary and schedule. Only the settings of :mod:`nce_lm.training.resume` may
    differ from the checkpoint's; the learning rate continues as :func:`continued_schedule` says.
    """
    config = replace(config or SkipGramConfig(), **renamed(settings))
    config.validate()
    if checkpoint_every is not None and checkpoint is None:
        raise NceLmError("checkpoint_every needs a checkpoint file to write")
    saved = state = None
    if resume is not None:
        saved, vocab, state = _resumed(resume, config, vocab)
    ctx = DistributedContext.from_environment(config.device)
    try:
        remove_stale(Path(tempfile.gettempdir()), IDS_TEMP_PREFIX)  # left by killed runs
        scratch = tempfile.TemporaryDirectory(prefix=temp_prefix(IDS_TEMP_PREFIX))
        with preemption.signals_handled(), scratch as tmp:
            vocab, ids = _corpus_ids(
                corpus, config, vocab, None if ctx.active else cache_dir, tmp, errors, progress and ctx.is_main
            )
            trainer = SkipGramTrainer(config, vocab, ids, state, ctx)
            if state is not None and ctx.is_main:
                _warn_if_other_corpus(state, vocab, trainer.corpus.counts)
            if not len(trainer.corpus):
                raise NceLmError("the corpus holds no word of the vocabulary to train on")
            if saved is not None and state is not None:
                _continue_schedule(trainer, saved, state)
            checkpoint = checkpoint if ctx.is_main else None
            log = EpochLog(checkpoint, resume is not None) if checkpoint is not None else None
            metrics = trainer.train(progress, log, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
            ctx.barrier()  # ranks leave together, not while rank 0 still writes its checkpoint
    finally:
        ctx.close()
    trainer.release()
    return SkipGramResult(trainer.word_vectors(), vocab, metrics, trainer.word_vectors("output"), config)
