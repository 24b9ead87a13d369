"""The skip-gram and CBOW update that keeps everything on the tables' device: examples, noise and steps, no host
round trip.

The torch path forms pairs with numpy on the host and runs a dozen small kernels around an autograd call per
batch; a GPU wants neither. Here the corpus's ids stay on the device: per chunk, :func:`chunk_examples` draws
the subsampling and shrunk windows with a device generator and forms the examples with one ``nonzero`` (the
chunk's one host sync); per batch, :func:`update_` scores each example against k noise words drawn on the
device and applies the closed-form steps of the objective's
:class:`~nce_lm.objectives.losses.NoiseClassifier` with ``index_add_``, so the host queues batches ahead.

The pairs and the update are those of the torch path (word2vec's procedure, Mikolov et al. 2013, batched as
docs/skipgram.md describes): given the same draws, :func:`window_examples` forms the same examples in the same
order as :func:`nce_lm.skipgram.windows.window_examples`, and :func:`update_` computes the torch path's update to
float32 rounding. The draws come from torch's generator rather than numpy's, so a run is a different sample
of the same distribution; it repeats exactly on the CPU, and resumes exactly from a checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from nce_lm.objectives.losses import NoiseClassifier
from nce_lm.skipgram.examples import Examples, cbow_examples, context_steps, mean_inputs
from nce_lm.training.rowwise_adagrad import RowwiseAdagrad


def unavailable_reason(classifier: NoiseClassifier | None) -> str | None:
    """Why the device update cannot run this training, or None when it can (any device, any ranks)."""
    if classifier is None:
        return "the objective's options (shared noise, removed accidental hits) have no per-pair form"
    return None


def pair_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's subsampling and window draws: a function of (seed, epoch) alone, so every
    rank under torchrun forms the same pairs and a resumed run draws what it would have."""
    state = int(np.random.SeedSequence([seed, epoch, 0x70616972]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(state)


def window_examples(
    words: torch.Tensor, sentence: torch.Tensor, reach: torch.Tensor, window: int, model: str = "skipgram"
) -> Examples:
    """The examples of the shrunk windows ``reach``, in word2vec's order, on the words' device.

    words, sentence, reach: (n,), with 1 <= reach <= window. Every j ≠ i with |i − j| <= reach[i] in the same
    sentence is a context word of i, centre by centre, then left to right: the examples of
    :func:`nce_lm.skipgram.windows.window_examples` when its generator draws ``reach``. int64 tensors; sizing them is
    a host sync.
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
    return Examples(context, words[centre_at])


def chunk_examples(
    words: torch.Tensor,
    sentence: torch.Tensor,
    keep: torch.Tensor,
    window: int,
    generator: torch.Generator,
    model: str = "skipgram",
) -> Examples:
    """One chunk's examples: word2vec's subsampling, then its shrunk windows, all drawn on the device.

    words, sentence: (n,) int64; keep: the keep-probability of every id (V,) (``noise.keep_probabilities``).
    Each occurrence is kept with probability keep[word], then each kept centre draws b ~ U{1..window}.
    """
    kept = torch.rand(len(words), device=words.device, generator=generator) < keep[words]  # (n,)
    words, sentence = words[kept], sentence[kept]  # (n',): a host sync, as sizing the pairs is
    reach = torch.randint(1, window + 1, (len(words),), device=words.device, generator=generator)
    return window_examples(words, sentence, reach, window, model)


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
    example's context vectors (:mod:`nce_lm.skipgram.examples`). The classifier's loss (binary: softplus(−z_0) +
    Σ_j softplus(z_j); ranking: logsumexp(z) − z_0) gives ∂loss/∂z in closed form; the steps of all examples
    are then summed into the rows they touch (the step for h into every context row), SGD's (−lr × gradient) with
    ``index_add_``, or row-wise Adagrad's (``optimizer``). The bias is part of the score; it is trained only
    with ``train_bias``.
    """
    batch, dim = len(examples), input_vectors.shape[1]
    out_ids = torch.cat([examples.centre[:, None], noise_ids], dim=1)  # (B, 1 + k): the centre first
    h = mean_inputs(input_vectors, examples)  # (B, d)
    u = output_vectors.index_select(0, out_ids.view(-1)).view(batch, -1, dim)  # (B, 1 + k, d)
    z = torch.bmm(u, h[:, :, None]).squeeze(-1) - classifier.offsets[out_ids]  # (B, 1 + k)
    if output_bias is not None:
        z = z + output_bias[out_ids]
    if classifier.kind == "binary":
        # loss Σ softplus(sign · z), sign −1 for the data word, +1 for the noise: ∂/∂z = sign · σ(sign · z)
        sign = torch.ones(z.shape[1], device=z.device)  # (1 + k,)
        sign.narrow(0, 0, 1).fill_(-1.0)  # a fill kernel: no value crosses from the host
        loss = torch.nn.functional.softplus(sign * z).sum()
        grad = sign * torch.sigmoid(sign * z)  # (B, 1 + k)
    else:
        loss = (torch.logsumexp(z, dim=1) - z[:, 0]).sum()
        grad = torch.softmax(z, dim=1)
        grad[:, 0] -= 1.0  # ∂/∂z = softmax(z) − one-hot(data word)
    # Steps applied as additions: SGD's are −lr × gradient; Adagrad scales the descent direction itself.
    descent = grad * (-lr if optimizer is None else -1.0)  # (B, 1 + k)
    step_h = torch.bmm(descent[:, None, :], u).squeeze(1)  # (B, d)
    step_u = (descent[:, :, None] * h[:, None, :]).view(-1, dim)  # (B·(1 + k), d), rows of out_ids
    rows = out_ids.view(-1)
    if optimizer is None:
        output_vectors.index_add_(0, rows, step_u)
        input_vectors.index_add_(0, examples.context, context_steps(step_h, examples))
        if train_bias:
            output_bias.index_add_(0, rows, descent.view(-1))  # ∂s/∂b = 1: the bias steps are the score steps
    else:
        optimizer.step_("output", output_vectors, rows, step_u, lr)
        optimizer.step_("input", input_vectors, examples.context, context_steps(step_h, examples), lr)
        if train_bias:
            optimizer.step_("bias", output_bias, rows, descent.view(-1), lr)
    return loss
