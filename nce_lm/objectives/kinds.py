"""What each objective is, readable without torch: its names, its traits and its per-pair classifier form.

The objectives themselves (:mod:`nce_lm.objectives.losses`) are torch modules; a run that never builds one (the
fused CPU kernel of skip-gram, ``nce_lm/skipgram/_kernel.c``) still needs to know what it trains: whether the
objective has a per-pair form, whether its optimal score is log p (so the model gets an output bias), and what
each logit subtracts from a score. :data:`OBJECTIVE_KINDS` is the one registry of objective names; the torch
classes take their traits from it (:class:`~nce_lm.objectives.losses.Objective`).

As classifiers the four sampled objectives are two (docs/objectives.md): binary (nce, neg) and (k + 1)-way
(ranking, infonce). Each compares logits z(w) = s(w, c) − offset(w) with

* ``nce``: offset = log q(w) + log k (Gutmann & Hyvärinen 2012; Mnih & Teh 2012);
* ``neg``: offset = 0 (Mikolov et al. 2013);
* ``ranking``: offset = log q(w) (Jozefowicz et al. 2016; Ma & Collins 2018);
* ``infonce``: offset = 0 (van den Oord et al. 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nce_lm.errors import NceLmError


@dataclass(frozen=True)
class NoiseClassifier:
    """A sampled objective as a classification of the data word against k noise words.

    ``kind`` "binary": loss = softplus(−z(w_0)) + Σ_j softplus(z(w_j)), each word classified as data or noise
    (binary NCE, negative sampling). ``kind`` "ranking": loss = logsumexp(z) − z(w_0), which of the k + 1
    candidates is the data (ranking NCE, InfoNCE). In both, z(w) = s(w, c) − offsets[w]; offsets (V,), a numpy
    array for the fused kernel, a tensor on the run's device for the torch and device paths.
    """

    kind: Literal["binary", "ranking"]
    offsets: Any

    def loss_and_gradients(self, z: Any) -> tuple[Any, Any]:
        """The summed loss (0-d) and ∂loss/∂z (B, 1 + k) in closed form, for a tensor z (B, 1 + k), the data word
        first.

        Binary: loss Σ softplus(sign · z), sign −1 for the data word, +1 for the noise: ∂/∂z = sign · σ(sign · z).
        Ranking: loss logsumexp(z) − z_0: ∂/∂z = softmax(z) − one-hot(data word).
        """
        import torch
        import torch.nn.functional as F

        if self.kind == "binary":
            sign = torch.ones(z.shape[1], dtype=z.dtype, device=z.device)  # (1 + k,)
            sign.narrow(0, 0, 1).fill_(-1.0)  # a fill kernel: no value crosses from the host
            return F.softplus(sign * z).sum(), sign * torch.sigmoid(sign * z)
        grad = torch.softmax(z, dim=1)
        grad[:, 0] -= 1.0
        return (torch.logsumexp(z, dim=1) - z[:, 0]).sum(), grad


@dataclass(frozen=True)
class ObjectiveKind:
    """The traits of one objective, known before one is built."""

    name: str
    classifier_kind: Literal["binary", "ranking"] | None  # NoiseClassifier.kind; None: no per-pair form
    subtracts_log_q: bool = False  # the logit is s − log q(w) (nce, ranking)
    subtracts_log_k: bool = False  # ... − log k as well (nce)
    needs_noise: bool = True  # draws noise words (not the full softmax)
    self_normalized: bool = False  # exp(s(w, c)) is p(w | c) at the optimum, with no Z computed
    bounds_mutual_information: bool = False  # a (k + 1)-way loss: log(k + 1) − L is InfoNCE's bound on I
    # True when the optimal score is log p(w | c) up to a constant, not a ratio to q (log p − log(k q) for neg,
    # log p − log q + const for infonce): such a score needs a per-word bias to carry the unigram part, which
    # trainers without one (skip-gram) then add.
    models_log_probability: bool = True

    def logit_offset(self, log_q: Any, num_noise: int) -> Any | None:
        """What the logit subtracts from a score s(w): log q + log k, log q, or None (nothing), for log q(w) a numpy
        array or a tensor of any shape (the result is of its type and dtype)."""
        if not self.subtracts_log_q:
            return None
        return log_q + math.log(num_noise) if self.subtracts_log_k else log_q

    def classifier(self, log_probs: np.ndarray, num_noise: int) -> NoiseClassifier | None:
        """The per-pair :class:`NoiseClassifier` with numpy offsets (V,) of ``log_probs``'s dtype, over words with
        log q = ``log_probs`` (V,) and k = ``num_noise``; None for an objective without one (the full softmax)."""
        if self.classifier_kind is None:
            return None
        offset = self.logit_offset(log_probs, num_noise)
        return NoiseClassifier(self.classifier_kind, np.zeros_like(log_probs) if offset is None else offset)


_RANKING = ObjectiveKind("ranking", "ranking", subtracts_log_q=True, bounds_mutual_information=True)
OBJECTIVE_KINDS: dict[str, ObjectiveKind] = {
    "nce": ObjectiveKind("nce", "binary", subtracts_log_q=True, subtracts_log_k=True, self_normalized=True),
    "neg": ObjectiveKind("neg", "binary", models_log_probability=False),
    "ranking": _RANKING,
    "sampled": _RANKING,  # the importance-sampled softmax (Bengio & Senécal 2008; Jean et al. 2015) is ranking NCE
    "infonce": ObjectiveKind("infonce", "ranking", bounds_mutual_information=True, models_log_probability=False),
    "full": ObjectiveKind("full", None, needs_noise=False),
}


def objective_kind(name: str) -> ObjectiveKind:
    """The traits of the objective registered as ``name``; an unknown name is an :class:`NceLmError` that lists the
    accepted ones."""
    try:
        return OBJECTIVE_KINDS[name]
    except KeyError:
        raise NceLmError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVE_KINDS)}") from None
