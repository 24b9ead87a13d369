"""Training examples of skip-gram and CBOW: a centre word and the context words whose input predicts it.

Both models of word2vec (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space")
score a centre word w against an input h: s(w) = h · u_w (+ b_w). Skip-gram's h is the input vector v_c of one
context word c, one example per (context, centre) pair; CBOW's ("continuous bag of words", word2vec ``-cbow 1``,
gensim ``sg=0, cbow_mean=1``) is the mean of the input vectors of the whole window, one example per centre word.
So a CBOW example is a skip-gram example whose input is a mean: everything after h (the noise words, the
objective, the steps of the output rows) is the same code for both. Only two things differ, and they live here:

* the input: h_e = (1 / n_e) Σ_{c ∈ window(e)} v_c, shape (E, d) (:func:`mean_inputs`);
* the input step: word2vec.c and gensim's ``word2vec_inner`` (with ``cbow_mean=1``) add the step for h,
  −lr · ∂loss/∂h, to every context word's row, not divided by n_e (the exact gradient of the loss with
  respect to v_c would be divided by n_e); so do we (:func:`context_steps`).

:class:`Examples` holds a batch in compressed form: the context words of all examples one after the other,
and where each example's run starts. Skip-gram's examples leave ``starts`` out (one context word each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

MODELS = ("skipgram", "cbow")


@dataclass
class Examples:
    """Examples with their context words, as numpy arrays or torch tensors.

    context: (W,) the context words, example after example; centre: (E,) the centre word of each example;
    starts: (E + 1,) int64, example e's context words are ``context[starts[e]:starts[e + 1]]``, or None
    when every example has exactly one (skip-gram: W = E); noise_key: (E,) int64, the window of each
    skip-gram pair (its centre's position in the epoch's words) when the pairs of a window share one draw of
    noise words (``noise_per="window"``, :func:`window_noise`), else None.
    """

    context: Any
    centre: Any
    starts: Any = None
    noise_key: Any = None

    def __len__(self) -> int:
        return len(self.centre)

    @property
    def context_words(self) -> int:
        """W, the number of context words of all examples."""
        return len(self.context)

    def slice(self, first: int, last: int, host_starts: list[int] | None = None) -> Examples:
        """Examples ``first`` to ``last`` − 1, their starts counted from their own first context word.

        ``host_starts``: ``starts`` as a list, where reading it would wait for a device (one read per chunk,
        not one per batch).
        """
        noise_key = None if self.noise_key is None else self.noise_key[first:last]
        if self.starts is None:
            return Examples(self.context[first:last], self.centre[first:last], None, noise_key)
        host_starts = self.starts if host_starts is None else host_starts
        begin, end = int(host_starts[first]), int(host_starts[last])
        starts = self.starts[first : last + 1] - begin
        return Examples(self.context[begin:end], self.centre[first:last], starts, noise_key)

    def map(self, convert: Callable[[Any], Any]) -> Examples:
        """The same examples with ``convert`` applied to every array (to move them, or change their type)."""
        starts = None if self.starts is None else convert(self.starts)
        noise_key = None if self.noise_key is None else convert(self.noise_key)
        return Examples(convert(self.context), convert(self.centre), starts, noise_key)


def cbow_examples(context: Any, centre: Any, counts: Any) -> Examples:
    """CBOW's examples from a window's pairs: the pairs of each centre position become one example.

    context: (P,) the context words of the pairs, centre by centre; centre: (n,) the word at each centre
    position; counts: (n,) how many pairs each position has (a position without any gives no example).
    numpy arrays or torch tensors, and the examples the same.
    """
    has_context = counts > 0
    running = counts[has_context].cumsum(0)  # (E,) where each example's run ends
    if isinstance(running, np.ndarray):
        starts = np.concatenate([[0], running]).astype(np.int64)
    else:  # a tensor (the device update's)
        import torch

        starts = torch.cat([running.new_zeros(1), running])
    return Examples(context, centre[has_context], starts)


def window_noise(draws: torch.Tensor, noise_key: torch.Tensor | None) -> torch.Tensor:
    """The noise words of a batch's examples when the pairs of a window share one draw (Ji et al. 2016,
    "Parallelizing Word2Vec in Shared and Distributed Memory", arXiv 1604.04661).

    draws: (B, k) independent draws from q; noise_key: (B,) int64, the examples' windows, each window's pairs
    consecutive. The batch's r-th window takes row r of ``draws`` for all its pairs (rows past the number of
    windows go unused: sizing them would wait for the device). Returns (B, k); ``draws`` unchanged when
    ``noise_key`` is None or the noise is already shared by the batch (``draws`` (K,)).
    """
    import torch

    if noise_key is None or draws.dim() == 1:
        return draws
    new_window = noise_key[1:] != noise_key[:-1]  # (B − 1,)
    window = torch.cat([new_window.new_zeros(1, dtype=torch.long), new_window.long().cumsum(0)])  # (B,)
    return draws.index_select(0, window)


def _example_of_words(examples: Examples) -> torch.Tensor:
    """(W,) the example each context word belongs to."""
    import torch  # here, not above: the fused kernel's path forms examples without torch

    counts = examples.starts[1:] - examples.starts[:-1]  # (E,)
    examples_index = torch.arange(len(examples), device=counts.device)
    return torch.repeat_interleave(examples_index, counts, output_size=examples.context_words)  # no device sync


def mean_inputs(input_vectors: torch.Tensor, examples: Examples) -> torch.Tensor:
    """h (E, d): the mean input vector of each example's context words (skip-gram: that word's vector).

    input_vectors (V, d); the examples' arrays are int64 tensors on its device. The sum is taken in order
    and scaled by 1 / n_e, as the fused kernel does.
    """
    import torch

    rows = input_vectors.index_select(0, examples.context)  # (W, d)
    if examples.starts is None:
        return rows
    counts = (examples.starts[1:] - examples.starts[:-1]).to(rows.dtype)  # (E,)
    sums = torch.zeros(len(examples), rows.shape[1], dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, _example_of_words(examples), rows)
    return sums * (1.0 / counts)[:, None]


def context_steps(input_step: torch.Tensor, examples: Examples) -> torch.Tensor:
    """The step of every context word's input row (W, d): its example's step for h (E, d), undivided."""
    if examples.starts is None:
        return input_step
    return input_step.index_select(0, _example_of_words(examples))
