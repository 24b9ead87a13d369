"""The noise distribution q(w) ∝ count(w)^α, its O(1) sampler, and word2vec's frequent-word subsampling.

Every noise-contrastive objective compares the data with samples from a known distribution q. Following
Mikolov et al. (2013, "Distributed Representations of Words and Phrases and their Compositionality"), q is
the unigram distribution raised to the power α = 0.75: α = 1 is the unigram, α = 0 the uniform
distribution. Samples are drawn with Walker's alias method (Walker 1977; Vose 1991): one uniform integer
and one uniform real per sample, whatever the vocabulary size, vectorised in torch on any device. q and its
alias table are computed once, in numpy (what the fused skip-gram kernel reads); the tensors are made from them
when a torch caller first asks, so a run that needs no torch does not import it.

Subsampling (same paper, section 2.3) drops each occurrence of word w with a probability that grows with
its frequency f(w) = count(w) / total. We use the formula of the released word2vec code (and gensim),
keep(w) = (sqrt(f / t) + 1) · t / f, capped at 1, with threshold t = 1e-3 by default; the paper's
1 − sqrt(t / f) is its high-frequency approximation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nce_lm.errors import NceLmError

if TYPE_CHECKING:
    import torch

DEFAULT_POWER = 0.75
DEFAULT_SUBSAMPLE_THRESHOLD = 1e-3


def build_alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table for ``probs`` (V,), which sums to 1 (also the sampler of :mod:`nce_lm.pipeline.synth`).

    Returns ``(accept, alias)``: draw a column i uniformly, keep i with probability ``accept[i]``, else take
    ``alias[i]``. Built in float64 in O(V) with the small/large work lists.
    """
    size = len(probs)
    scaled = probs * size
    accept = np.ones(size, dtype=np.float64)
    alias = np.arange(size, dtype=np.int64)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    # What is left is 1 up to rounding: keep it whole.
    return accept, alias


class NoiseDistribution:
    """q(w) ∝ count(w)^power over V ids, as numpy arrays on the host and as tensors on one device, with an alias
    sampler.

    Attributes:
        host_log_probs: log q(w), float32 numpy (V,); −inf for excluded ids and zero counts.
        probs: q(w), float32 tensor (V,) on :attr:`device` (made, and torch imported, at first use).
        log_probs: log q(w), float32 tensor (V,) on :attr:`device`, the values of ``host_log_probs``.
        power: the exponent α.
    """

    def __init__(
        self,
        counts: Sequence[int] | np.ndarray | torch.Tensor,
        power: float = DEFAULT_POWER,
        exclude: Iterable[int] = (),
        device: torch.device | str = "cpu",
    ) -> None:
        """Build q from raw counts (V,). ``exclude`` ids (e.g. ``<unk>``) get probability 0.

        With ``power == 0`` every id with a positive count (not excluded) is equally likely.
        """
        counts64 = np.asarray(counts.cpu() if hasattr(counts, "cpu") else counts, dtype=np.float64)  # a tensor too
        if counts64.ndim != 1 or counts64.size == 0:
            raise NceLmError("noise counts must be a non-empty vector")
        if not np.isfinite(counts64).all() or (counts64 < 0).any():
            raise NceLmError("noise counts must be finite and non-negative")
        if not (np.isfinite(power) and 0.0 <= power <= 1.0):
            raise NceLmError(f"noise power must be between 0 and 1, got {power}")
        support = counts64 > 0
        excluded = list(exclude)
        if excluded:
            if min(excluded) < 0 or max(excluded) >= len(counts64):
                raise NceLmError(f"excluded noise ids must lie in [0, {len(counts64)})")
            support[excluded] = False
        if not support.any():
            raise NceLmError("the noise distribution has no word with a positive count")
        weights = np.where(support, np.power(counts64, power, where=support, out=np.zeros_like(counts64)), 0.0)
        probs64 = weights / weights.sum()
        self.power = float(power)
        accept, alias = build_alias_table(probs64)
        with np.errstate(divide="ignore"):
            self.host_log_probs = np.log(probs64).astype(np.float32)  # (V,)
        # (V,) each: q, log q, Walker's accept (float32) and alias (int64), the arrays the tensors are made from
        self._host = (probs64.astype(np.float32), self.host_log_probs, accept.astype(np.float32), alias)
        self._device = str(device)
        self._tensors: tuple[Any, ...] | None = None

    def _on_device(self) -> tuple[torch.Tensor, ...]:
        """The host arrays as tensors on this distribution's device, made once."""
        if self._tensors is None:
            import torch

            self._tensors = tuple(torch.from_numpy(array).to(self._device) for array in self._host)
        return self._tensors

    @property
    def probs(self) -> torch.Tensor:
        return self._on_device()[0]

    @property
    def log_probs(self) -> torch.Tensor:
        return self._on_device()[1]

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(self._device)

    def __len__(self) -> int:
        return len(self.host_log_probs)

    def to(self, device: torch.device | str) -> NoiseDistribution:
        """A copy of this distribution with its tensors on ``device`` (the same object if already there)."""
        import torch

        if torch.device(device) == self.device:
            return self
        moved = object.__new__(NoiseDistribution)
        moved.power, moved.host_log_probs, moved._host = self.power, self.host_log_probs, self._host
        moved._device, moved._tensors = str(device), None
        return moved

    def alias_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Walker's table as numpy arrays: ``(accept, alias)``, float32 and int64 (V,), as :meth:`sample` uses
        them (and the fused kernel reads them)."""
        return self._host[2], self._host[3]

    def sample(self, shape: Sequence[int] | torch.Size, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ids from q, int64 of ``shape``, on this distribution's device, in O(1) each.

        ``generator`` must live on the same device; None uses torch's default generator.
        """
        import torch

        _, _, accept, alias = self._on_device()
        size = tuple(shape)
        column = torch.randint(len(self), size, device=self.device, generator=generator)
        coin = torch.rand(size, device=self.device, generator=generator)
        return torch.where(coin < accept[column], column, alias[column])


def keep_probabilities(
    counts: Sequence[int] | np.ndarray, threshold: float = DEFAULT_SUBSAMPLE_THRESHOLD
) -> np.ndarray:
    """word2vec's subsampling keep-probability per id, float64 (V,).

    keep(w) = min(1, (sqrt(f(w) / t) + 1) · t / f(w)) with f(w) = count(w) / Σ count. ``threshold`` t = 0
    disables subsampling (every keep-probability is 1). Ids with count 0 get 1 (they never occur).
    """
    counts64 = np.asarray(counts, dtype=np.float64)
    if not (np.isfinite(threshold) and threshold >= 0):
        raise NceLmError(f"subsampling threshold must be non-negative, got {threshold}")
    total = counts64.sum()
    keep = np.ones_like(counts64)
    if threshold == 0 or total <= 0:
        return keep
    seen = counts64 > 0
    ratio = counts64[seen] / (threshold * total)  # f / t
    keep[seen] = np.minimum(1.0, (np.sqrt(ratio) + 1.0) / ratio)
    return keep
