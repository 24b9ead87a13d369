"""The skip-gram and CBOW update that keeps everything on the tables' device: examples, noise and steps, no host
round trip.

The torch path forms pairs with numpy on the host and runs a dozen small kernels around an autograd call per
batch; a GPU wants neither. Here the corpus's ids stay on the device: per chunk, :func:`chunk_examples` draws
the subsampling and shrunk windows with a device generator and forms the examples with one ``nonzero`` (the
chunk's one host sync); per batch, :func:`update_` scores each example against k noise words drawn on the
device and applies the closed-form steps of the objective's
:class:`~nce_lm.objectives.kinds.NoiseClassifier`, so the host queues batches ahead. :class:`DeviceUpdatePath`
drives them with the batch loop and the optimizer's step of the torch path (:mod:`nce_lm.skipgram.torch_update`).

The pairs and the update are those of the torch path (word2vec's procedure, Mikolov et al. 2013, batched as
docs/skipgram.md describes): given the same draws, :func:`window_examples` forms the same examples in the same
order as :func:`nce_lm.skipgram.windows.window_examples`, and :func:`update_` computes the torch path's update to
float32 rounding. The draws come from torch's generator rather than numpy's, so a run is a different sample
of the same distribution; it repeats exactly on the CPU, and resumes exactly from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from nce_lm.objectives.kinds import NoiseClassifier
from nce_lm.skipgram import windows
from nce_lm.skipgram.examples import Examples, cbow_examples, context_steps, mean_inputs, window_noise
from nce_lm.skipgram.torch_update import BatchedUpdate, add_row_steps_, descent_scale
from nce_lm.training.rowwise_adagrad import RowwiseAdagrad


def pair_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's subsampling and window draws: a function of (seed, epoch) alone, so every
    rank under torchrun forms the same pairs and a resumed run draws what it would have."""
    state = int(np.random.SeedSequence([seed, epoch, 0x70616972]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(state)


def window_examples(
    words: torch.Tensor,
    sentence: torch.Tensor,
    reach: torch.Tensor,
    window: int,
    model: str = "skipgram",
    positions: torch.Tensor | None = None,
) -> Examples:
    """The examples of the shrunk windows ``reach``, in word2vec's order, on the words' device.

    words, sentence, reach: (n,), with 1 <= reach <= window. Every j ≠ i with |i − j| <= reach[i] in the same
    sentence is a context word of i, centre by centre, then left to right: the examples of
    :func:`nce_lm.skipgram.windows.window_examples` when its generator draws ``reach``, the skip-gram pairs keyed by
    their centre's entry of ``positions`` (n,) when given. int64 tensors; sizing them is a host sync.
    """
    # Not shared with the host's numpy twin: through torch on the CPU it took 0.30 s against 0.13 s per 2M tokens.
    n = len(words)
    offsets = [*range(-window, 0), *range(1, window + 1)]  # left to right
    within = torch.zeros(n, len(offsets), dtype=torch.bool, device=words.device)  # (n, 2·window)
    for column, offset in enumerate(offsets):
        distance = abs(offset)
        if distance >= n:
            continue
        centres = slice(distance, n) if offset < 0 else slice(0, n - distance)
        contexts = slice(0, n - distance) if offset < 0 else slice(distance, n)
        within[centres, column] = (reach[centres] >= distance) & (sentence[centres] == sentence[contexts])
    centre_at, column = within.nonzero(as_tuple=True)  # (P,) each, row-major: centre order, then offset order
    shift = torch.tensor(offsets, device=words.device)[column]  # (P,)
    context = words[centre_at + shift]
    if model == "cbow":
        return cbow_examples(context, words, within.sum(dim=1))
    return Examples(context, words[centre_at], noise_key=None if positions is None else positions[centre_at])


def chunk_examples(
    words: torch.Tensor,
    sentence: torch.Tensor,
    keep: torch.Tensor,
    window: int,
    generator: torch.Generator,
    model: str = "skipgram",
    first_position: int | None = None,
) -> Examples:
    """One chunk's examples: word2vec's subsampling, then its shrunk windows, all drawn on the device.

    words, sentence: (n,) int64; keep: the keep-probability of every id (V,) (``noise.keep_probabilities``).
    Each occurrence is kept with probability keep[word], then each kept centre draws b ~ U{1..window}. With
    ``first_position`` (the chunk's first word's position in the epoch), skip-gram's pairs carry their
    centre's position as noise key (``noise_per="window"``).
    """
    kept = torch.rand(len(words), device=words.device, generator=generator) < keep[words]  # (n,)
    positions = None
    if first_position is not None:
        positions = first_position + kept.nonzero().squeeze(1)  # (n',)
    words, sentence = words[kept], sentence[kept]  # (n',): a host sync, as sizing the pairs is
    reach = torch.randint(1, window + 1, (len(words),), device=words.device, generator=generator)
    return window_examples(words, sentence, reach, window, model, positions)


def update_(
    input_vectors: torch.Tensor,
    output_vectors: torch.Tensor,
    output_bias: torch.Tensor | None,
    examples: Examples,
    noise_ids: torch.Tensor,
    classifier: NoiseClassifier,
    lr: float,
    optimizer: RowwiseAdagrad | None = None,
    train_bias: bool = False,
) -> torch.Tensor:
    """One batch's update of the tables in place; returns the batch's summed loss, a 0-d tensor on the device.

    input_vectors v, output_vectors u: (V, d); output_bias b: (V,) or None; examples: B examples, int64 on the
    tables' device; noise_ids: (B, k). Every example is scored against the tables as they stand at the call:
    s = h · u_w + b_w for the centre w_0 and the k noise words, z = s − offsets[w], with h the mean of the
    example's context vectors (:mod:`nce_lm.skipgram.examples`). The classifier gives its loss and ∂loss/∂z in
    closed form (:meth:`~nce_lm.objectives.kinds.NoiseClassifier.loss_and_gradients`); the steps of all
    examples are then summed into the rows they touch (the step for h into every context row) by SGD or row-wise
    Adagrad (``optimizer``), :func:`~nce_lm.skipgram.torch_update.add_row_steps_`. The bias is part of the
    score; it is trained only with ``train_bias``.
    """
    batch, dim = len(examples), input_vectors.shape[1]
    out_ids = torch.cat([examples.centre[:, None], noise_ids], dim=1)  # (B, 1 + k): the centre first
    h = mean_inputs(input_vectors, examples)  # (B, d)
    u = output_vectors.index_select(0, out_ids.view(-1)).view(batch, -1, dim)  # (B, 1 + k, d)
    z = torch.bmm(u, h[:, :, None]).squeeze(-1) - classifier.offsets[out_ids]  # (B, 1 + k)
    if output_bias is not None:
        z = z + output_bias[out_ids]
    loss, grad = classifier.loss_and_gradients(z)  # 0-d, (B, 1 + k)
    descent = grad * descent_scale(lr, optimizer)  # (B, 1 + k)
    step_h = torch.bmm(descent[:, None, :], u).squeeze(1)  # (B, d)
    step_u = (descent[:, :, None] * h[:, None, :]).view(-1, dim)  # (B·(1 + k), d), rows of out_ids
    rows = out_ids.view(-1)
    add_row_steps_(output_vectors, rows, step_u, lr, optimizer, "output")
    add_row_steps_(input_vectors, examples.context, context_steps(step_h, examples), lr, optimizer, "input")
    if train_bias:  # ∂s/∂b = 1: the bias steps are the score steps
        add_row_steps_(output_bias, rows, descent.view(-1), lr, optimizer, "bias")
    return loss


class DeviceUpdatePath(BatchedUpdate):
    """The device update as an update path: the corpus copied to the device once (16 bytes per word), each
    chunk's examples formed there (:func:`chunk_examples`), each batch trained by :func:`update_` on k noise words
    per example drawn there. ``corpus``: the host's words and sentences; ``keep``: the keep-probabilities (V,);
    ``classifier``: the objective's per-example form; the rest as :class:`BatchedUpdate` takes it."""

    name = "device"

    def __init__(
        self, corpus: windows.CorpusWords, keep: np.ndarray, classifier: NoiseClassifier, **batched: Any
    ) -> None:
        super().__init__(chunks=self._chunks, **batched)
        self._words = torch.from_numpy(corpus.words(0, len(corpus)).astype(np.int64)).to(self.device)
        self._sentence = torch.from_numpy(corpus.sentences(0, len(corpus))).to(self.device)
        self._keep = torch.from_numpy(keep).to(self.device)
        self._classifier = classifier

    def _chunks(self, epoch: int) -> Iterator[tuple[Examples, int]]:
        """Per chunk: its examples (int64 tensors on the device) and the number of words it covered."""
        config = self.config
        generator = pair_generator(self.device, config.seed, epoch)
        chunk, keyed = windows.CHUNK_TOKENS, config.noise_per == "window" and config.model == "skipgram"
        for start in range(0, len(self._words), chunk):
            words, sentence = self._words[start : start + chunk], self._sentence[start : start + chunk]
            examples = chunk_examples(
                words, sentence, self._keep, config.window, generator, config.model, start if keyed else None
            )
            yield examples, len(words)

    def update(self, examples: Examples, lr: float) -> torch.Tensor:
        """One batch: k noise words per example, or per window with noise keys
        (:func:`~nce_lm.skipgram.examples.window_noise`), drawn on the device, then :func:`update_`."""
        state = self.state
        noise_ids = window_noise(self.objective.sample_noise(examples.centre), examples.noise_key)  # (B, k)
        tables = (state.input_vectors, state.output_vectors, state.output_bias)
        return update_(*tables, examples, noise_ids, self._classifier, lr, self.optimizer, self.train_bias)
