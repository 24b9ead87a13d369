"""The noise-contrastive family of objectives behind one interface, next to the full softmax.

A model scores a word w in a context c with s(w, c) = h_c · u_w + b_w; each objective compares the observed
word with k words drawn from a noise distribution q instead of summing Z(c) over the vocabulary:

* ``nce`` — binary NCE (Gutmann & Hyvärinen 2012; Mnih & Teh 2012), self-normalized: optimum s = log p(w | c).
* ``neg`` — negative sampling (Mikolov et al. 2013): optimum s = log p(w | c) − log(k q(w)) (Dyer 2014).
* ``ranking`` (also ``sampled``) — ranking NCE (Jozefowicz et al. 2016; Ma & Collins 2018), the
  importance-sampled softmax (Bengio & Senécal 2008; Jean et al. 2015): optimum s = log p(w | c) + const(c).
* ``infonce`` — InfoNCE (van den Oord et al. 2018; bound: Poole et al. 2019): optimum
  s = log p(w | c) − log q(w) + const(c).
* ``full`` — the exact softmax cross-entropy log Z(c) − s(w_0, c), the reference all others approximate.

docs/objectives.md derives each optimum and has the table :mod:`nce_lm.objectives.theory` checks exactly.
:meth:`Objective.loss` is a small pure function of ``s_true`` (B,), ``s_noise`` (B, K) and their log
noise-probabilities; noise is shared by the batch by default, one (B, d) × (d, K) product. As classifiers the
four sampled objectives are two, binary (nce, neg) and (k + 1)-way (ranking, infonce), their
``classifier_kind``: :meth:`Objective.classifier` returns that form, all the fused kernel
(``nce_lm/skipgram/_kernel.c``) needs, and :meth:`NoiseClassifier.loss_and_gradients` its closed-form gradient.
:meth:`Objective.scores` and :meth:`Objective.logit_gradients` are :meth:`Objective.forward`'s two halves, for a
trainer that steps its rows by hand (skip-gram).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nce_lm.errors import NceLmError
from nce_lm.objectives.chunked_softmax import DEFAULT_CHUNK_SIZE, chunked_cross_entropy
from nce_lm.objectives.kinds import OBJECTIVE_KINDS, NoiseClassifier, ObjectiveKind, objective_kind
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.training.sparse_rows import gather_rows


class Objective(nn.Module):
    """Base class: noise sampling and scoring; subclasses define :meth:`loss`.

    Args:
        noise: the noise distribution q (None only for objectives that draw no noise).
        num_noise: k, the number of noise samples per example.
        shared_noise: draw one set of k samples for the whole batch (K,) instead of k per example (B, K).
        generator: the random generator for the noise; it must live on the device of the targets.
        seed: instead of ``generator``, a seed for one made on the targets' device at the first draw.
        sparse_gradients: gather the rows of ``weight`` and ``bias`` so that their gradients are row-sparse
            (:func:`nce_lm.training.sparse_rows.gather_rows`): only the targets' and noise words' rows, not (V, d).
    """

    kind: ClassVar[ObjectiveKind]  # the traits below, from the one registry (nce_lm.objectives.kinds)
    name: ClassVar[str]
    needs_noise: ClassVar[bool]  # draws noise words (not the full softmax, nor InfoNCE's in-batch negatives)
    classifier_kind: ClassVar[Literal["binary", "ranking"] | None]  # NoiseClassifier.kind, None: no per-pair form
    self_normalized: ClassVar[bool]
    bounds_mutual_information: ClassVar[bool]
    models_log_probability: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each objective's class attributes are its :attr:`kind`'s traits, so ``OBJECTIVES[name].needs_noise``
        and the like say what it is before one is built."""
        super().__init_subclass__(**kwargs)
        traits = ("name", "needs_noise", "classifier_kind", "self_normalized", "bounds_mutual_information")
        for trait in (*traits, "models_log_probability"):
            setattr(cls, trait, getattr(cls.kind, trait))

    def __init__(
        self,
        noise: NoiseDistribution | None,
        num_noise: int,
        shared_noise: bool = True,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        sparse_gradients: bool = False,
    ) -> None:
        super().__init__()
        if generator is not None and seed is not None:
            raise NceLmError(f"objective {self.name!r} takes a generator or a seed, not both")
        if self.needs_noise:
            if noise is None:
                raise NceLmError(f"objective {self.name!r} needs a noise distribution")
            if num_noise < 1:
                raise NceLmError(f"objective {self.name!r} needs at least one noise sample, got {num_noise}")
        self.noise = noise
        self.num_noise = int(num_noise)
        self.shared_noise = shared_noise
        self.generator = generator
        self.seed = seed
        self.sparse_gradients = sparse_gradients

    def _noise_on(self, device: torch.device) -> NoiseDistribution:
        if self.noise is None:
            raise NceLmError(f"objective {self.name!r} was built without a noise distribution: it draws no noise")
        if self.noise.device != device:
            self.noise = self.noise.to(device)
        return self.noise

    def sample_noise(self, targets: torch.Tensor) -> torch.Tensor:
        """Noise ids for a batch of targets (B,): (K,) when shared, else (B, K)."""
        noise = self._noise_on(targets.device)
        if self.generator is None and self.seed is not None:
            self.generator = torch.Generator(device=targets.device).manual_seed(self.seed)
        shape = (self.num_noise,) if self.shared_noise else (targets.shape[0], self.num_noise)
        return noise.sample(shape, self.generator)

    def loss(
        self, s_true: Tensor, s_noise: Tensor, logq_true: Tensor, logq_noise: Tensor, hits: Tensor | None = None
    ) -> Tensor:
        """Loss per example (B,) from s_true (B,), s_noise (B, K), logq_true (B,), logq_noise (K,) or (B, K).

        ``hits`` (B, K) marks noise samples equal to the example's target.
        """
        raise NotImplementedError

    def classifier(self, log_probs: torch.Tensor) -> NoiseClassifier | None:
        """This objective as a :class:`NoiseClassifier` over words with log q = ``log_probs`` (V,), its offsets a
        tensor of ``log_probs``'s dtype and device (:meth:`ObjectiveKind.classifier`).

        None where it has no such per-example form: the full softmax, shared or in-batch negatives, removed
        accidental hits.
        """
        if not self._per_pair():
            return None
        host = self.kind.classifier(log_probs.detach().cpu().numpy(), self.num_noise)
        return None if host is None else NoiseClassifier(host.kind, torch.from_numpy(host.offsets).to(log_probs.device))

    def _per_pair(self) -> bool:
        """Whether each example draws its own noise words, as :meth:`classifier`'s form needs."""
        return not self.shared_noise and self.needs_noise

    def _logits(self, s: Tensor, logq: Tensor) -> Tensor:
        """z = s − offset, the scores ``s`` with what this objective subtracts (:meth:`ObjectiveKind.logit_offset`);
        ``logq`` of their shape (or broadcastable)."""
        offset = self.kind.logit_offset(logq, self.num_noise)
        return s if offset is None else s - offset

    def scores(
        self, hidden: Tensor, true_rows: Tensor, noise_rows: Tensor, targets: Tensor, noise_ids: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """s_true (B,), s_noise (B, K) and the accidental hits (B, K) of hidden (B, d) against the targets' rows
        true_rows (B, d) and the noise rows: (K, d) for shared noise_ids (K,), one (B, d) × (d, K) product, else
        (B, K, d) for noise_ids (B, K), a batched product. No bias: the caller adds it."""
        s_true = (hidden * true_rows).sum(-1)  # (B,)
        if noise_ids.dim() == 1:
            return s_true, hidden @ noise_rows.T, targets[:, None] == noise_ids[None, :]
        return s_true, torch.bmm(noise_rows, hidden[:, :, None]).squeeze(-1), targets[:, None] == noise_ids

    def logit_gradients(
        self, s_true: Tensor, s_noise: Tensor, logq_true: Tensor, logq_noise: Tensor, hits: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The summed :meth:`loss` (0-d) and its gradients with respect to the scores, ∂loss/∂s_true (B,) and
        ∂loss/∂s_noise (B, K), for every option (shared noise, removed hits), by autograd through :meth:`loss`
        alone: no graph reaches the tables the scores came from. Shapes as :meth:`loss` takes them."""
        s_true, s_noise = s_true.detach().requires_grad_(True), s_noise.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(s_true, s_noise, logq_true, logq_noise, hits).sum()
            g_true, g_noise = torch.autograd.grad(loss, (s_true, s_noise))
        return loss.detach(), g_true, g_noise

    def _rows(self, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``table[ids]``, with a row-sparse gradient when the objective was asked for sparse gradients."""
        return gather_rows(table, ids, self.sparse_gradients)

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        noise_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score the targets and noise words with ``hidden @ weight.T + bias`` and return the loss (B,).

        hidden (B, d), weight (V, d), bias (V,) or None, targets (B,). ``noise_ids`` are :meth:`sample_noise`'s
        draw for these targets, (K,) or (B, K), when the caller drew them first (a trainer that must know
        which rows the step reads before it reads them); None draws them here. Shared noise is scored with one
        matrix product (B, d) × (d, K); per-example noise with a batched product over gathered rows.
        """
        if noise_ids is None:
            noise_ids = self.sample_noise(targets)
        rows = self._rows
        s_true, s_noise, hits = self.scores(hidden, rows(weight, targets), rows(weight, noise_ids), targets, noise_ids)
        if bias is not None:
            s_true = s_true + rows(bias, targets)
            s_noise = s_noise + rows(bias, noise_ids)
        log_probs = self._noise_on(targets.device).log_probs
        return self.loss(s_true.float(), s_noise.float(), log_probs[targets], log_probs[noise_ids], hits)


def _expand(logq_noise: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast shared log-probabilities (K,) to the (B, K) shape of ``like``."""
    return logq_noise.expand_as(like) if logq_noise.dim() == 1 else logq_noise


class BinaryNCE(Objective):
    """Binary ("local") NCE, Gutmann & Hyvärinen (2012), Mnih & Teh (2012), self-normalized.

    Δ(w) = s(w, c) − log(k q(w)); loss = softplus(−Δ(w_0)) + Σ_j softplus(Δ(w_j)); log Z(c) is fixed at 0, so
    the optimum is s = log p(w | c). ``normalizer`` is accepted for old callers and must be "self": the shared
    learned scalar log Z ("learned") was removed, because for a model with an output bias it is one constant
    the bias absorbs, not an estimate of any Z(c) (docs/objectives.md, "The normalizer").
    """

    kind = OBJECTIVE_KINDS["nce"]

    def __init__(
        self, noise: NoiseDistribution | None, num_noise: int, normalizer: str = "self", **kwargs: Any
    ) -> None:
        super().__init__(noise, num_noise, **kwargs)
        if normalizer == "learned":
            raise NceLmError(
                "nce's learned scalar log Z was removed (it only shifts every score, which the output "
                "bias already does); drop normalizer='learned': nce is self-normalized, see "
                "docs/objectives.md"
            )
        if normalizer != "self":
            raise NceLmError(f"nce normalizer must be 'self', got {normalizer!r}")

    def loss(
        self, s_true: Tensor, s_noise: Tensor, logq_true: Tensor, logq_noise: Tensor, hits: Tensor | None = None
    ) -> Tensor:
        delta_true = self._logits(s_true, logq_true)  # (B,)
        delta_noise = self._logits(s_noise, _expand(logq_noise, s_noise))  # (B, K)
        return F.softplus(-delta_true) + F.softplus(delta_noise).sum(-1)


class NegativeSampling(BinaryNCE):
    """Negative sampling, Mikolov et al. (2013): binary NCE with Δ(w) = s(w, c), no log(k q) correction."""

    kind = OBJECTIVE_KINDS["neg"]


class RankingNCE(Objective):
    """Ranking ("global") NCE = importance-sampled softmax (Jean et al. 2015; Ma & Collins 2018).

    loss = −log softmax_0([s(w_0) − log q(w_0), s(w_j) − log q(w_j) for j = 1..k]). With
    ``remove_accidental_hits`` a noise sample equal to the target is dropped from the softmax, as
    TensorFlow's sampled softmax does by default. It is off by default here because it makes the estimator
    inconsistent: noise copies of the target push its score down in the softmax, a push the derivation
    counts on; without it, words with a large k q(w) end up overestimated and the rest, through the
    normalization, underestimated (tests/test_objective_theory.py measures it). On a large vocabulary with
    small k q(w) the difference is negligible.
    """

    kind = OBJECTIVE_KINDS["ranking"]

    def __init__(
        self, noise: NoiseDistribution | None, num_noise: int, remove_accidental_hits: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(noise, num_noise, **kwargs)
        self.remove_accidental_hits = remove_accidental_hits

    def _per_pair(self) -> bool:
        return super()._per_pair() and not self.remove_accidental_hits

    def loss(
        self, s_true: Tensor, s_noise: Tensor, logq_true: Tensor, logq_noise: Tensor, hits: Tensor | None = None
    ) -> Tensor:
        true_logit = self._logits(s_true, logq_true)  # (B,)
        # A target q cannot draw (log q = −inf) has logit +inf and the loss inf − inf; its limit as q → 0 is 0,
        # with no gradient. A finite stand-in logit keeps the NaN out of the forward and the backward pass.
        undrawable = torch.isposinf(true_logit)  # (B,); never true for InfoNCE, which has no −log q
        true_logit = torch.where(undrawable, 0.0, true_logit)
        noise_logits = self._logits(s_noise, _expand(logq_noise, s_noise))  # (B, K)
        if self.remove_accidental_hits and hits is not None:
            noise_logits = noise_logits.masked_fill(hits, float("-inf"))
        logits = torch.cat([true_logit[:, None], noise_logits], dim=1)  # (B, 1 + K)
        return torch.where(undrawable, 0.0, torch.logsumexp(logits, dim=1) - true_logit)


class InfoNCE(RankingNCE):
    """InfoNCE, van den Oord et al. (2018): −log softmax_0([s(w_0), s(w_1), …, s(w_k)]), no −log q correction.

    ``negatives="noise"`` draws the k negatives from q; ``negatives="batch"`` uses the targets of the other
    examples of the batch: K = B − 1, only the example's own position removed. Another example with the same
    target stays a negative: it is an independent draw from the marginal, and dropping it would bias the
    estimate as removing accidental hits biases ranking NCE (on data with no mutual information, masking
    equal targets made the scores of frequent and rare words differ by nats).
    """

    kind = OBJECTIVE_KINDS["infonce"]

    def __init__(
        self,
        noise: NoiseDistribution | None,
        num_noise: int = 1,
        negatives: str = "noise",
        remove_accidental_hits: bool = False,
        **kwargs: Any,
    ) -> None:
        if negatives not in ("noise", "batch"):
            raise NceLmError(f"infonce negatives must be 'noise' or 'batch', got {negatives!r}")
        self.needs_noise = negatives == "noise"
        # In-batch negatives drop the example's own position (the diagonal), so hits are always removed there.
        super().__init__(noise, num_noise, remove_accidental_hits or negatives == "batch", **kwargs)
        self.negatives = negatives

    def sample_noise(self, targets: torch.Tensor) -> torch.Tensor:
        if self.negatives == "batch":
            return targets  # (B,) shared: every other example's target is a negative
        return super().sample_noise(targets)

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        noise_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.negatives == "noise":
            return super().forward(hidden, weight, bias, targets, noise_ids)
        s_all = hidden @ self._rows(weight, targets).T  # (B, B): example i scored against every target of the batch
        if bias is not None:
            s_all = s_all + self._rows(bias, targets)[None, :]
        s_all = s_all.float()
        hits = torch.eye(len(targets), dtype=torch.bool, device=targets.device)  # (B, B): own position only
        zeros = torch.zeros_like(s_all)
        return self.loss(s_all.diagonal(), s_all, zeros.diagonal(), zeros, hits)


class FullSoftmax(Objective):
    """The exact softmax cross-entropy: log Σ_w exp(s(w, c)) − s(w_0, c). No noise.

    :meth:`forward` never forms the (B, V) logits: :func:`nce_lm.objectives.chunked_softmax.chunked_cross_entropy`
    streams the vocabulary ``chunk_size`` rows at a time in forward and backward, in float32 (float64 for
    float64 inputs) even under autocast, so memory is O(B · chunk_size) beyond the output layer and its
    gradient. :meth:`loss` takes the scores over the whole vocabulary (B, V) in place of ``s_noise``.
    """

    kind = OBJECTIVE_KINDS["full"]

    def __init__(
        self,
        noise: NoiseDistribution | None = None,
        num_noise: int = 0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(noise, num_noise, **kwargs)
        if chunk_size < 1:
            raise NceLmError(f"full softmax chunk_size must be positive, got {chunk_size}")
        self.chunk_size = int(chunk_size)

    def loss(
        self,
        s_true: torch.Tensor,
        s_noise: torch.Tensor,
        logq_true: torch.Tensor | None = None,
        logq_noise: torch.Tensor | None = None,
        hits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return torch.logsumexp(s_noise, dim=-1) - s_true

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        noise_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The exact loss (B,); ``noise_ids`` is accepted for the common interface and must be None."""
        if noise_ids is not None:
            raise NceLmError("the full softmax draws no noise: noise_ids must be None")
        return chunked_cross_entropy(hidden, weight, bias, targets, self.chunk_size)  # (B,)


_CLASSES: dict[ObjectiveKind, type[Objective]] = {
    cls.kind: cls for cls in (BinaryNCE, NegativeSampling, RankingNCE, InfoNCE, FullSoftmax)
}
OBJECTIVES: dict[str, type[Objective]] = {name: _CLASSES[kind] for name, kind in OBJECTIVE_KINDS.items()}


def objective_class(name: str) -> type[Objective]:
    """The class registered as ``name`` in :data:`OBJECTIVES`, whose class attributes say what it is before one is
    built; an unknown name is an :class:`NceLmError` that lists the accepted ones."""
    return _CLASSES[objective_kind(name)]


def build_objective(name: str, noise: NoiseDistribution | None, num_noise: int, **options: Any) -> Objective:
    """The objective registered as ``name`` (see :data:`OBJECTIVES`), with its options.

    Unknown names and options are an :class:`NceLmError` that lists what is accepted.
    """
    cls = objective_class(name)
    try:
        return cls(noise, num_noise, **options)
    except TypeError as err:
        raise NceLmError(f"bad option for objective {name!r}: {err}") from None
