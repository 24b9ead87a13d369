"""Adam for embedding tables with row-sparse gradients that gives every row dense Adam's trajectory.

Dense Adam (Kingma & Ba 2015, Algorithm 1 with the bias corrections folded into the step) updates every row
of a (V, d) table on every step t, a row the step did not touch with g = 0:

    m_t = β1 m_{t−1} + (1 − β1) g_t,   v_t = β2 v_{t−1} + (1 − β2) g_t²,
    w_t = w_{t−1} − lr_t / (1 − β1^t) · m_t / (√v_t / √(1 − β2^t) + ε),

which costs O(V·d) per step however few rows the step touched. Lazy Adam (TensorFlow's LazyAdam, torch's
SparseAdam) skips the untouched rows: their moments stop decaying and they stop moving, so a rarely touched
row drifts far less than under dense Adam (docs/lm.md, point 6). Here a row is brought to exactly where dense
Adam would have it, but only when it is needed: when a step touches it again, and for all rows in
:meth:`CatchupAdam.flush_` (before the tables are read: evaluation, export, a checkpoint others will read).

**The catch-up.** Let a row have been touched last at step s, with moments m_s, v_s (d,). On the steps
j = s + 1 … t − 1 its gradient is 0, so m_j = β1^(j−s) m_s and v_j = β2^(j−s) v_s, and with ε = 0 dense
Adam's step j is

    lr_j · c_j · r^(j−s) · m_s / √v_s,   c_j = √(1 − β2^j) / (1 − β1^j),   r = β1 / √β2 < 1,

the same direction m_s / √v_s for every j, scaled by a number that depends on s and the step only. So the
missed steps sum to D(s) · m_s / √v_s with D(s) = Σ_j lr_j c_j r^(j−s): one scalar per past step s, shared
by every row last touched at s. When step t touches the row again, it first moves it by −D(s) · m_s / √v_s
and decays the moments by β1^(t−1−s), β2^(t−1−s) to m_{t−1}, v_{t−1}; then step t is dense Adam's own, with ε.
The learning rate of every step enters through lr_j, so a schedule (the LM divides lr per epoch) is exact.
This is the just-in-time idea of lazy regularised SGD (Carpenter 2008; Bottou's lazy weight decay) applied
to Adam's momentum; TensorFlow issue #23668 (2018) proposed scaling LazyAdam's rate by the skipped steps, an
approximation of the same sum.

**D(s) without underflow or cancellation.** Prefix sums P_k = Σ_{j≤k} lr_j c_j r^j would give D(s) as
r^(−s) (P_{t−1} − P_s), but r^j underflows after a few thousand steps and the difference cancels: P_s is
dominated by the first terms and the difference is r^s times smaller. Instead D is a per-step float64 array
(8 bytes per step) accumulated forwards: after step t, D(s) += lr_t c_t r^(t−s) for the K latest s, a
(K,) vector operation; K is the smallest count with r^K ≤ 2^−70, past which a term is below float64
rounding of the sum (K = 463 for the default betas), so D(s) is final once t − s > K. Every D(s) is a sum
of positive terms, exact to float64 rounding. Per step: O(N·d) for the N touched rows plus O(K).

**When it is exact.** With ε = 0 the result equals dense Adam's to rounding, at every step, for any
learning-rate schedule. With ε > 0 the steps of touched rows are dense Adam's exactly; in the missed steps
ε enters as m_s / (√v_s + ε √((1 − β2^j) / β2^(j−s))), which has no closed-form sum. The catch-up keeps the
ε-term of the first missed step (j = s + 1) and uses it for all of them; dense Adam's ε-term grows with j,
so each later missed step of the catch-up is at most a relative ε / √v̂ too large (v̂ the bias-corrected
second moment): nothing where ε ≪ √v̂ (ε = 10⁻⁸ against gradients of 10⁻⁴ and more: 10⁻⁴ relative), and
where √v̂ ≲ ε the row moves by at most the ε-free closed form, lr · c · m̂ / √v̂ per step, where dense Adam
moves less. No weight decay (an L2 term makes every row's gradient non-zero: nothing is sparse) and no
AMSGrad. Needs β1 < √β2, so that the missed steps decay (the defaults: r = 0.9005).

**Reads must be caught up too.** The catch-up inside :meth:`CatchupAdam.step_` comes after the forward
pass of step t has read the row, so the gradient of a row untouched since s is taken at its value at s,
not at dense Adam's value at t − 1 (up to ~10 lr per coordinate away). Dense Adam's trajectory needs the
rows a step reads brought up to date before its forward pass: :meth:`CatchupAdam.catch_up_` for the rows
known in advance (inputs, targets, noise words drawn before the forward), or :meth:`CatchupAdam.flush_`
for all. Without that the result is "dense Adam with each row's gradient taken at its last-touched value".

**Shapes and syncs.** Tables (V, d) or (V,), moments of the table's shape and dtype, ``last`` (V,) int64.
``step_`` takes the N distinct rows a step touched (a coalesced sparse gradient's) and never waits for the
host: the step counts and learning rates are Python numbers, all gathers and powers run on the device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

TRUNCATION = 2.0**-70  # a missed step weighted by r^K below this is below float64 rounding of the sum
INITIAL_STEPS = 1024  # capacity of the per-step array D, doubled when full


class _TableState:
    """One table's moments m, v (V, d), the step ``last`` (V,) each row was last brought to, the step count, and
    D (steps + 1,): D[s] the summed coefficients of the steps a row last brought to step s has missed."""

    def __init__(self, table: torch.Tensor) -> None:
        rows = table.reshape(table.shape[0], -1)
        self.m = torch.zeros_like(rows)
        self.v = torch.zeros_like(rows)
        self.last = torch.zeros(table.shape[0], dtype=torch.int64, device=table.device)
        self.steps = 0
        self.missed = torch.zeros(INITIAL_STEPS, dtype=torch.float64, device=table.device)

    def grow(self) -> None:
        """Make room for D[steps]."""
        if self.steps >= len(self.missed):
            self.missed = torch.cat([self.missed, torch.zeros_like(self.missed)])


class CatchupAdam:
    """Dense Adam's result on row-sparse steps: untouched rows catch up in closed form (module docstring).

    Args:
        tables: the tables by name, (V, d) or (V,); only their shapes, dtypes and devices are read here.
        betas: Adam's (β1, β2); β1 < √β2.
        eps: Adam's ε (torch's default).
        state: :meth:`state` of a run to continue, exactly.
    """

    def __init__(
        self,
        tables: Mapping[str, torch.Tensor],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.beta1, self.beta2 = betas
        self.eps = eps
        ratio = self.beta1 / math.sqrt(self.beta2)
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"catch-up Adam needs 0 <= beta1 < sqrt(beta2), got betas {betas}")
        window = 0 if ratio == 0.0 else math.ceil(math.log(TRUNCATION) / math.log(ratio))
        device = next(iter(tables.values())).device
        # r^K … r^1: the weights of step t in D[t − K] … D[t − 1]
        self._powers = ratio ** torch.arange(window, 0, -1, dtype=torch.float64, device=device)
        self.states = {name: _TableState(table) for name, table in tables.items()}
        if state is not None:
            self._load(state)

    def step_(self, name: str, table: torch.Tensor, ids: torch.Tensor, descent: torch.Tensor, lr: float) -> None:
        """One Adam step of ``table`` (V, d) or (V,) in place, at learning rate ``lr``.

        ``ids`` (N,) are the distinct rows the step touched and ``descent`` (N, d) or (N,) their negative
        gradients (the signature of :meth:`nce_lm.training.rowwise_adagrad.RowwiseAdagrad.step_`); every other
        row had a zero gradient. The touched rows first catch up with the steps they missed.
        """
        state = self.states[name]
        state.steps += 1
        state.grow()
        t, beta1, beta2 = state.steps, self.beta1, self.beta2
        rows = table.view(table.shape[0], -1)  # (V, d): a view, written in place
        grad = -descent.reshape(len(ids), -1)  # (N, d)
        weights = self._caught_up(state, ids, rows, t - 1)  # (N, d): the rows as of step t − 1
        m, v = state.m[ids], state.v[ids]
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(self.eps)
        weights.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))
        rows.index_copy_(0, ids, weights)
        state.m.index_copy_(0, ids, m)
        state.v.index_copy_(0, ids, v)
        state.last.index_fill_(0, ids, t)
        self._record(state, lr * math.sqrt(1 - beta2**t) / (1 - beta1**t))

    @torch.no_grad()
    def catch_up_(self, name: str, table: torch.Tensor, ids: torch.Tensor) -> None:
        """Bring rows ``ids`` (N,) of ``table`` to dense Adam's value after the last step, before a forward
        pass reads them (O(N·d), no host sync); a row already up to date is left as it is."""
        state = self.states[name]
        rows = table.view(table.shape[0], -1)
        rows.index_copy_(0, ids, self._caught_up(state, ids, rows, state.steps))

    @torch.no_grad()
    def flush_(self, tables: Mapping[str, torch.Tensor]) -> None:
        """Bring every row of every table to dense Adam's value after the last step (O(V·d)); call it before
        the tables are read. With ε = 0 the result does not depend on when or how often it is called (up to
        rounding); with ε > 0 a row's later missed steps start from the ε-term of the step after the flush
        (closer to dense Adam's, "When it is exact"), so flushing changes a run by the ε caveat's amount.
        Calling it twice in a row changes nothing."""
        for name, table in tables.items():
            state = self.states[name]
            rows = table.view(table.shape[0], -1)
            every = torch.arange(table.shape[0], device=table.device)
            rows.copy_(self._caught_up(state, every, rows, state.steps))

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly, on the CPU."""
        return {
            "betas": (self.beta1, self.beta2),
            "eps": self.eps,
            "tables": {
                name: {
                    "m": s.m.cpu(),
                    "v": s.v.cpu(),
                    "last": s.last.cpu(),
                    "steps": s.steps,
                    "missed": s.missed[: s.steps + 1].cpu(),
                }
                for name, s in self.states.items()
            },
        }

    def _caught_up(self, state: _TableState, ids: torch.Tensor, rows: torch.Tensor, now: int) -> torch.Tensor:
        """Rows ``ids`` (N,) of ``rows`` (V, d) moved by the steps they missed up to step ``now`` (N, d); their
        moments in ``state`` decayed to step ``now`` and ``last`` set to it."""
        last = state.last[ids]  # (N,)
        m, v = state.m[ids], state.v[ids]  # (N, d)
        first_missed = (last + 1).to(torch.float64)
        epsilon_term = self.eps * ((1 - self.beta2**first_missed) / self.beta2).sqrt()  # (N,)
        direction = m / (v.sqrt() + epsilon_term.to(v.dtype)[:, None]).clamp_min(torch.finfo(v.dtype).tiny)
        weights = rows[ids].sub_(state.missed[last].to(rows.dtype)[:, None] * direction)
        elapsed = (now - last).to(torch.float64)[:, None]  # (N, 1)
        state.m.index_copy_(0, ids, m * torch.pow(self.beta1, elapsed).to(m.dtype))
        state.v.index_copy_(0, ids, v * torch.pow(self.beta2, elapsed).to(v.dtype))
        state.last.index_fill_(0, ids, now)
        return weights

    def _record(self, state: _TableState, coefficient: float) -> None:
        """Add step ``state.steps``'s coefficient lr_t c_t, weighted by r^(t−s), to D[s] for the K latest s < t."""
        t = state.steps
        start = max(0, t - len(self._powers))
        if t > start:
            state.missed[start:t].add_(self._powers[len(self._powers) - (t - start) :], alpha=coefficient)

    def _load(self, state: dict[str, Any]) -> None:
        if tuple(state["betas"]) != (self.beta1, self.beta2) or state["eps"] != self.eps:
            raise ValueError("the saved catch-up Adam state has other betas or eps")
        for name, saved in state["tables"].items():
            own = self.states.get(name)
            if own is None or saved["m"].shape != own.m.shape or saved["last"].shape != own.last.shape:
                raise ValueError(f"optimizer state {name!r} does not match the tables")
            own.m.copy_(saved["m"])
            own.v.copy_(saved["v"])
            own.last.copy_(saved["last"])
            own.steps = int(saved["steps"])
            while len(own.missed) <= own.steps:
                own.missed = torch.cat([own.missed, torch.zeros_like(own.missed)])
            own.missed[: own.steps + 1].copy_(saved["missed"])
