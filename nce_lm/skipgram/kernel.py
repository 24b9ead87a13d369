"""The fused CPU kernel of the skip-gram and CBOW update: when it applies, and a typed call into it.

``nce_lm/skipgram/_kernel.c`` computes the same batched SGD update as the torch path of
:class:`nce_lm.skipgram.trainer.SkipGramTrainer` — every pair of a batch scored against the tables as they stood at
the batch's start, the steps then summed into the touched rows — but in one pass per example that keeps the
rows of an example in cache, instead of a dozen torch kernels that each stream (B, 1 + k, d) tensors through
memory. It draws its own noise from q with Walker's alias method and counter-based random numbers keyed by
(seed, example index), and adds into each row in example order, so the tables come out the same bit for bit for any
number of threads.

The extension is compiled when the package is installed (``setup.py``) and is optional: without a C
compiler nce_lm installs without it, and :func:`unavailable_reason` says why the trainer uses torch instead.
"""

from __future__ import annotations

import numpy as np
import torch

from nce_lm.objectives.losses import NoiseClassifier
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.skipgram.examples import Examples

try:
    from nce_lm.skipgram import _kernel
except ImportError:  # built without a C compiler
    _kernel = None


def unavailable_reason(
    device: torch.device, world_size: int, classifier: NoiseClassifier | None, optimizer: str = "sgd"
) -> str | None:
    """Why the fused kernel cannot run this training, or None when it can."""
    if _kernel is None:
        return "the C extension nce_lm.skipgram._kernel was not built (no C compiler at install time)"
    if device.type != "cpu":
        return f"it runs on the CPU, the run is on {device}"
    if world_size > 1:
        return "it trains in one process; under torchrun the torch path averages the ranks' tables"
    if classifier is None:
        return "the objective's options (shared noise, removed accidental hits) have no per-pair form"
    if optimizer != "sgd":
        return f"it applies SGD's steps; {optimizer} runs on the torch path"
    return None


def _numpy(tensor: torch.Tensor, dtype: type) -> np.ndarray:
    """A C-contiguous numpy view of a CPU tensor of the given dtype (no copy: the kernel writes through it)."""
    array = tensor.numpy()
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise ValueError(f"the kernel needs contiguous {np.dtype(dtype).name} arrays, got {array.dtype}")
    return array


def _alias_arrays(noise: NoiseDistribution) -> tuple[np.ndarray, np.ndarray]:
    """Walker's table of q as the kernel reads it: accept (V,) float32, alias (V,) int64."""
    accept, alias = noise.alias_table()
    return _numpy(accept, np.float32), _numpy(alias, np.int64)


def noise_seed(seed: int, epoch: int) -> int:
    """The kernel's 64-bit noise seed for one epoch of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, epoch, 0x6E6F6973]).generate_state(1, np.uint64)[0])


class KernelTables:
    """The tables copied into the layout the kernel runs on: rows padded to whole 64-byte cache lines, the
    output bias b_w stored in the padding of u_w's row.

    A row of d = 100 floats is 400 bytes: unpadded, most rows share a cache line with a neighbour that the
    other thread may be writing; padded to 448 bytes they do not (docs/skipgram.md). A separate bias array
    would share each line among 16 words written by different threads; inside the row, its owner alone writes it.
    :meth:`write_back` copies everything back.
    With ``train_bias`` False the bias is part of the score but not trained.
    """

    ROW_ALIGN = 16  # floats per 64-byte cache line

    def __init__(
        self,
        input_vectors: torch.Tensor,
        output_vectors: torch.Tensor,
        output_bias: torch.Tensor | None,
        train_bias: bool = True,
    ) -> None:
        vocab, self.dim = input_vectors.shape
        self.has_bias = output_bias is not None
        self.train_bias = self.has_bias and train_bias
        stride = -(-(self.dim + self.has_bias) // self.ROW_ALIGN) * self.ROW_ALIGN
        self._targets = (input_vectors, output_vectors, output_bias)
        self.input = torch.zeros(vocab, stride)  # (V, stride): v
        self.output = torch.zeros(vocab, stride)  # (V, stride): u, then b
        self.input[:, : self.dim] = input_vectors
        self.output[:, : self.dim] = output_vectors
        if output_bias is not None:
            self.output[:, self.dim] = output_bias

    def write_back(self) -> None:
        """Copy the trained rows (and bias) into the tables this was made from."""
        input_vectors, output_vectors, output_bias = self._targets
        input_vectors.copy_(self.input[:, : self.dim])
        output_vectors.copy_(self.output[:, : self.dim])
        if output_bias is not None:
            output_bias.copy_(self.output[:, self.dim])


def train_examples(
    tables: KernelTables,
    examples: Examples,
    classifier: NoiseClassifier,
    noise: NoiseDistribution,
    negatives: int,
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
    ``first_pair + i`` under ``seed``.
    """
    accept, alias = _alias_arrays(noise)
    return _kernel.train_pairs(
        input=_numpy(tables.input, np.float32),
        output=_numpy(tables.output, np.float32),
        has_bias=tables.has_bias,
        train_bias=tables.train_bias,
        dim=tables.dim,
        context=np.ascontiguousarray(examples.context, dtype=np.int32),
        centre=np.ascontiguousarray(examples.centre, dtype=np.int32),
        context_start=None if examples.starts is None else np.ascontiguousarray(examples.starts, dtype=np.int64),
        offset=np.ascontiguousarray(classifier.offsets.cpu().numpy(), dtype=np.float32),
        accept=accept,
        alias=alias,
        softmax=classifier.kind == "ranking",
        negatives=negatives,
        batch=batch_size,
        threads=threads,
        seed=seed,
        first_pair=first_pair,
        lr_begin=lr_begin,
        lr_end=lr_end,
    )


def draw_noise(noise: NoiseDistribution, seed: int, first_pair: int, pairs: int, negatives: int) -> np.ndarray:
    """The noise words (pairs, negatives) that :func:`train_examples` draws for examples ``first_pair`` onwards."""
    accept, alias = _alias_arrays(noise)
    out = np.empty((pairs, negatives), dtype=np.int64)
    _kernel.draw_noise_ids(accept, alias, out, seed, first_pair, negatives)
    return out
