"""The fused CPU kernel of the skip-gram and CBOW update: when it applies, a typed call into it, and
:class:`FusedKernelPath`, the trainer's :class:`~nce_lm.skipgram.update_path.UpdatePath` through it.

``nce_lm/skipgram/_kernel.c`` computes the same batched SGD update as the torch path
(:mod:`nce_lm.skipgram.torch_update`) — every pair of a batch scored against the tables as they stood at
the batch's start, the steps then summed into the touched rows — but in one pass per example that keeps the
rows of an example in cache, instead of a dozen torch kernels that each stream (B, 1 + k, d) tensors through
memory. It draws its own noise from q with Walker's alias method and counter-based random numbers keyed by
(seed, example index) or, for the pairs of one skip-gram window sharing a draw, (seed, window), and adds into
each row in example order, so the tables come out the same bit for bit for any number of threads.

The extension is compiled when the package is installed (``setup.py``) and is optional: without a C
compiler nce_lm installs without it, and :func:`unavailable_reason` says why the trainer uses torch instead.
This module does not import torch: the tables, q's alias table and the classifier's offsets it is handed are
numpy arrays (:class:`~nce_lm.objectives.kinds.NoiseClassifier`'s offsets may also be a CPU tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from nce_lm.skipgram.examples import Examples

if TYPE_CHECKING:
    from nce_lm.objectives.kinds import NoiseClassifier
    from nce_lm.pipeline.noise import NoiseDistribution
    from nce_lm.skipgram.checkpoint import SkipGramState
    from nce_lm.skipgram.config import SkipGramConfig

try:
    from nce_lm.skipgram import _kernel
except ImportError:  # built without a C compiler
    _kernel = None


def unavailable_reason(
    device: str, world_size: int, classifier: NoiseClassifier | None, optimizer: str = "sgd"
) -> str | None:
    """Why the fused kernel cannot run this training on ``device`` ("cpu", "cuda:0"...), or None when it can."""
    if _kernel is None:
        return "the C extension nce_lm.skipgram._kernel was not built (no C compiler at install time)"
    if device != "cpu":
        return f"it runs on the CPU, the run is on {device}"
    if world_size > 1:
        return "it trains in one process; under torchrun the torch path averages the ranks' tables"
    if classifier is None:
        return "the objective's options (shared noise, removed accidental hits) have no per-pair form"
    if optimizer != "sgd":
        return f"it applies SGD's steps; {optimizer} runs on the torch path"
    return None


def _alias_arrays(noise: NoiseDistribution) -> tuple[np.ndarray, np.ndarray]:
    """Walker's table of q as the kernel reads it: accept (V,) float32, alias (V,) int64."""
    accept, alias = noise.alias_table()
    return np.ascontiguousarray(accept, dtype=np.float32), np.ascontiguousarray(alias, dtype=np.int64)


def noise_seed(seed: int, epoch: int) -> int:
    """The kernel's 64-bit noise seed for one epoch of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, epoch, 0x6E6F6973]).generate_state(1, np.uint64)[0])


class KernelTables:
    """The tables in the layout the kernel runs on: rows padded to whole 64-byte cache lines, the output bias b_w
    stored in the padding of u_w's row.

    A row of d = 100 floats is 400 bytes: unpadded, most rows share a cache line with a neighbour that the
    other thread may be writing; padded to 448 bytes they do not (docs/skipgram.md). A separate bias array
    would share each line among 16 words written by different threads; inside the row, its owner alone writes it.
    The tables given are copied in; :attr:`input_vectors`, :attr:`output_vectors` and :attr:`output_bias` are
    views of the padded rows, which a run keeps as its tables (:meth:`take`), so that one copy of them exists
    while it trains. With ``train_bias`` False the bias is part of the score but not trained.
    """

    ROW_ALIGN = 16  # floats per 64-byte cache line

    def __init__(
        self,
        input_vectors: np.ndarray,
        output_vectors: np.ndarray | None,
        output_bias: np.ndarray | None,
        train_bias: bool = True,
    ) -> None:
        """Copy the tables in; with ``output_vectors`` None, only the input table (:meth:`take` adds the other)."""
        self.dim = input_vectors.shape[1]
        self.has_bias = output_bias is not None
        self.train_bias = self.has_bias and train_bias
        self.input = self._padded(input_vectors)  # (V, stride): v
        if output_vectors is not None:
            self.output = self._padded(output_vectors, output_bias)  # (V, stride): u, then b

    def _padded(self, vectors: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """(V, stride): ``vectors`` (V, d) in padded rows, with ``bias`` (V,) after them when given."""
        stride = -(-(self.dim + self.has_bias) // self.ROW_ALIGN) * self.ROW_ALIGN
        rows = np.zeros((len(vectors), stride), dtype=np.float32)
        rows[:, : self.dim] = vectors
        if bias is not None:
            rows[:, self.dim] = bias
        return rows

    @classmethod
    def take(cls, state: SkipGramState, train_bias: bool) -> KernelTables:
        """The tables of ``state`` (numpy (V, d) arrays) in the kernel's layout, moved in one at a time: each
        table of ``state`` becomes a view of its padded rows before the next is copied, so that, unless the
        caller holds them too, the arrays before the move are freed as it goes (a table's copy at a time, not two)."""
        tables = cls(state.input_vectors, None, state.output_bias, train_bias)
        state.input_vectors = tables.input_vectors
        tables.output = tables._padded(state.output_vectors, state.output_bias)
        state.output_vectors, state.output_bias = tables.output_vectors, tables.output_bias
        return tables

    def give_back(self, state: SkipGramState) -> None:
        """The reverse of :meth:`take`, once training is over: each table of ``state`` becomes a C-contiguous
        (V, d) array, its rows moved to the front of the padded rows' own memory (:meth:`_compacted`), so that no
        second copy of a table is made; the bias is copied out first. These tables train no more."""
        bias = None if state.output_bias is None else np.array(self.output_bias)
        state.input_vectors = self._compacted(self.input)
        state.output_vectors = self._compacted(self.output)
        state.output_bias = bias
        del self.input, self.output

    def _compacted(self, rows: np.ndarray) -> np.ndarray:
        """(V, d): the first d floats of every padded row of ``rows`` (V, stride), moved in place to the front of
        its memory, a block of rows at a time in ascending order (a row's new place never reaches a row not yet
        moved, as d <= stride), so that only one block is copied aside at a time."""
        flat, block = rows.reshape(-1), 1 << 12
        for first in range(0, len(rows), block):
            last = min(first + block, len(rows))
            flat[first * self.dim : last * self.dim] = rows[first:last, : self.dim].reshape(-1)
        return flat[: len(rows) * self.dim].reshape(len(rows), self.dim)

    @property
    def input_vectors(self) -> np.ndarray:
        """(V, d): the input vectors v, a view of the padded rows."""
        return self.input[:, : self.dim]

    @property
    def output_vectors(self) -> np.ndarray:
        """(V, d): the output vectors u, a view of the padded rows."""
        return self.output[:, : self.dim]

    @property
    def output_bias(self) -> np.ndarray | None:
        """(V,): the output bias b, a view of the padding of u's rows; None without one."""
        return self.output[:, self.dim] if self.has_bias else None


def train_examples(
    tables: KernelTables,
    examples: Examples,
    classifier: NoiseClassifier,
    noise: NoiseDistribution,
    noise_samples: int,
    batch_size: int,
    threads: int,
    seed: int,
    first_pair: int,
    lr_begin: float,
    lr_end: float,
) -> float:
    """SGD on the ``examples`` (numpy arrays) in batches of ``batch_size``; returns the summed loss.

    The tables are updated in place. The learning rate falls linearly from ``lr_begin`` at the first example
    to ``lr_end`` after the last, constant within a batch. Example i draws its k noise words from counter
    ``first_pair + i`` under ``seed``, or, when the examples carry noise keys (``noise_per="window"``), from
    counter ``noise_key[i]``: the pairs of one window share one draw.
    """
    accept, alias = _alias_arrays(noise)
    return _kernel.train_pairs(
        input=tables.input,
        output=tables.output,
        has_bias=tables.has_bias,
        train_bias=tables.train_bias,
        dim=tables.dim,
        context=np.ascontiguousarray(examples.context, dtype=np.int32),
        centre=np.ascontiguousarray(examples.centre, dtype=np.int32),
        context_start=None if examples.starts is None else np.ascontiguousarray(examples.starts, dtype=np.int64),
        offset=np.ascontiguousarray(classifier.offsets, dtype=np.float32),
        accept=accept,
        alias=alias,
        softmax=classifier.kind == "ranking",
        negatives=noise_samples,
        batch=batch_size,
        threads=threads,
        seed=seed,
        first_pair=first_pair,
        lr_begin=lr_begin,
        lr_end=lr_end,
        noise_key=None if examples.noise_key is None else np.ascontiguousarray(examples.noise_key, dtype=np.int64),
    )


def draw_noise(noise: NoiseDistribution, seed: int, first_pair: int, pairs: int, noise_samples: int) -> np.ndarray:
    """The noise words (pairs, k) that :func:`train_examples` draws for examples ``first_pair`` onwards."""
    accept, alias = _alias_arrays(noise)
    out = np.empty((pairs, noise_samples), dtype=np.int64)
    _kernel.draw_noise_ids(accept, alias, out, seed, first_pair, noise_samples)
    return out


def draw_keyed_noise(noise: NoiseDistribution, seed: int, keys: np.ndarray, noise_samples: int) -> np.ndarray:
    """The noise words (len(keys), k) that :func:`train_examples` draws for examples with these noise keys."""
    accept, alias = _alias_arrays(noise)
    out = np.empty((len(keys), noise_samples), dtype=np.int64)
    _kernel.draw_noise_ids(accept, alias, out, seed, 0, noise_samples, np.ascontiguousarray(keys, dtype=np.int64))
    return out


class FusedKernelPath:
    """The update path of the fused kernel: the host's examples (:func:`nce_lm.skipgram.windows.epoch_examples`),
    trained a chunk at a time by :func:`train_examples` in place on ``tables``, the run's tables in the kernel's
    layout (the trainer keeps their views as its state); ``rate(words_done)``: the learning rate after that many
    corpus words.
    """

    name = "fused"

    def __init__(
        self,
        tables: KernelTables,
        classifier: NoiseClassifier,
        noise: NoiseDistribution,
        settings: SkipGramConfig,
        threads: int,
        rate: Callable[[float], float],
        chunks: Callable[[int], Iterator[tuple[Examples, int]]],
    ) -> None:
        self._tables = tables
        self._classifier, self._noise, self._rate, self.chunks = classifier, noise, rate, chunks
        self._noise_samples, self._batch_size, self._seed = settings.noise_samples, settings.batch_size, settings.seed
        self.threads = threads

    def train_chunk(
        self, examples: Examples, epoch: int, first_example: int, words_done: float, words: float
    ) -> tuple[float, int]:
        """SGD on one chunk's ``examples`` (numpy), the ``first_example``-th of the epoch onwards, the rate falling
        linearly over the chunk's ``words`` corpus words after ``words_done``; returns the summed loss and the
        number of examples."""
        loss = train_examples(
            self._tables,
            examples,
            self._classifier,
            self._noise,
            self._noise_samples,
            self._batch_size,
            self.threads,
            noise_seed(self._seed, epoch),
            first_example,
            self._rate(words_done),
            self._rate(words_done + words),
        )
        return loss, len(examples)
