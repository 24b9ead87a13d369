"""The optimizer of a language-model run: one rule for the dense parameters, one for the embedding tables.

With a sampled objective the input embedding and the output weight and bias receive row-sparse gradients
(:mod:`nce_lm.training.sparse_rows`). ``sgd`` and ``rowwise-adagrad``
(:class:`nce_lm.training.rowwise_adagrad.RowwiseAdagrad`) leave an untouched row alone, exactly as their dense
update does; ``catchup-adam`` (:class:`nce_lm.training.catchup_adam.CatchupAdam`) moves a row by the steps it
missed when it is touched again or at :meth:`LMOptimizer.flush`, ending where dense Adam would; ``lazy-adam``
(``torch.optim.SparseAdam``) advances a row's moments only on the steps that touch it, unlike dense Adam;
``adam`` gives the tables dense (V, d) gradients at O(V·d) per step. ``adam-rowwise``, the default for every
objective, trains the dense parameters with Adam and the tables with row-wise Adagrad at
:data:`ROWWISE_TABLE_LR_SCALE` times the run's rate (by default Adam's 3e-3 for the network,
:data:`DEFAULT_TABLE_LR` for the tables), or at the tables' own starting rate ``table_lr`` when one is given,
decayed with the network's; ``rowwise-adagrad`` trains the network with Adagrad too. The full softmax touches every
row, so its tables are always dense. docs/lm.md, "Row-sparse tables", has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nce_lm.training.catchup_adam import CatchupAdam
from nce_lm.training.rowwise_adagrad import RowwiseAdagrad

LM_OPTIMIZERS = ("sgd", "adam", "lazy-adam", "rowwise-adagrad", "catchup-adam", "adam-rowwise")
DEFAULT_LR = {
    "sgd": 20.0,
    "adam": 3e-3,
    "lazy-adam": 3e-3,
    "rowwise-adagrad": 0.1,
    "catchup-adam": 3e-3,
    "adam-rowwise": 3e-3,
}
# adam-rowwise: the tables' starting rate by default (chosen on PTB's validation perplexity among 0.05 ... 0.8,
# BENCHMARKS.md), and its ratio to the network's, which a run keeps through its decays and a --lr of its own
DEFAULT_TABLE_LR = 0.2
ROWWISE_TABLE_LR_SCALE = DEFAULT_TABLE_LR / DEFAULT_LR["adam-rowwise"]
ADAM_EPS = 1e-8  # Adam's ε (torch's default) in adam and catchup-adam, read when an LMOptimizer is built


def sparse_tables(optimizer: str, sampled: bool) -> bool:
    """Whether the tables get row-sparse gradients: for a sampled objective, unless dense Adam is asked for."""
    return sampled and optimizer != "adam"


def dense_parameters(module: nn.Module, tables: Mapping[str, nn.Parameter]) -> list[nn.Parameter]:
    """The parameters of ``module`` that are not among ``tables``, in ``module``'s order: what :class:`LMOptimizer`
    takes as its dense ones."""
    table_ids = {id(table) for table in tables.values()}
    return [p for p in module.parameters() if id(p) not in table_ids]


class LMOptimizer:
    """Steps, learning rate and state of a run's parameters, split into dense ones and tables.

    Args:
        name: one of :data:`LM_OPTIMIZERS`.
        dense: the parameters with dense gradients (the LSTM or Transformer).
        tables: the embedding tables by name (input embedding, output weight, output bias); their gradients
            are sparse when ``sparse`` is true, dense otherwise.
        lr: the learning rate.
        table_lr: adam-rowwise only: the tables' starting rate (default ``lr`` × :data:`ROWWISE_TABLE_LR_SCALE`);
            it is decayed with ``lr`` (:meth:`set_lr`), keeping their ratio.
    """

    def __init__(
        self,
        name: str,
        dense: list[nn.Parameter],
        tables: dict[str, nn.Parameter],
        lr: float,
        sparse: bool,
        table_lr: float | None = None,
    ) -> None:
        self.name, self.tables, self.sparse = name, tables, sparse
        self.table_optimizer: RowwiseAdagrad | CatchupAdam | None = None  # the tables' own rule, if not torch's
        if table_lr is not None and name != "adam-rowwise":
            raise ValueError(f"a rate of its own for the tables is adam-rowwise's, not {name!r}'s")
        self.table_lr_scale = 1.0
        if name == "adam-rowwise":
            self.table_lr_scale = ROWWISE_TABLE_LR_SCALE if table_lr is None else table_lr / lr
        table_list = list(tables.values())
        self.lr = lr
        if name == "sgd":
            self.optimizers = [torch.optim.SGD(dense + table_list, lr=lr)]
        elif name == "adam" or (name in ("lazy-adam", "catchup-adam") and not sparse):
            self.optimizers = [torch.optim.Adam(dense + table_list, lr=lr, eps=ADAM_EPS)]
        elif name == "lazy-adam":
            self.optimizers = [torch.optim.Adam(dense, lr=lr), torch.optim.SparseAdam(table_list, lr=lr)]
        elif name == "rowwise-adagrad":
            self.optimizers = [torch.optim.Adagrad(dense, lr=lr)] if dense else []
            self.table_optimizer = self._rowwise_adagrad()
        elif name == "adam-rowwise":
            self.optimizers = [torch.optim.Adam(dense, lr=lr, eps=ADAM_EPS)] if dense else []
            self.table_optimizer = self._rowwise_adagrad()
        elif name == "catchup-adam":
            self.optimizers = [torch.optim.Adam(dense, lr=lr, eps=ADAM_EPS)]
            self.table_optimizer = CatchupAdam(tables, eps=ADAM_EPS)
        else:
            raise ValueError(f"unknown optimizer {name!r}")

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    @property
    def catches_up(self) -> bool:
        """Whether rows lag behind until caught up (catch-up Adam): a step must call :meth:`catch_up` first."""
        return isinstance(self.table_optimizer, CatchupAdam)

    @torch.no_grad()
    def catch_up(self, reads: Mapping[str, torch.Tensor]) -> None:
        """Bring the rows a forward pass is about to read up to date: ``reads`` maps a table's name to the ids
        (any shape, repeats allowed) it reads; O(ids · d), no host sync. A no-op unless :attr:`catches_up`."""
        if isinstance(self.table_optimizer, CatchupAdam):
            for name, ids in reads.items():
                self.table_optimizer.catch_up_(name, self.tables[name].data, ids.reshape(-1))

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row of the tables up to date: catch-up Adam's untouched rows lag until this is called
        (O(V·d)); call it before the tables are read (evaluation, checkpoints, export). A no-op otherwise."""
        if isinstance(self.table_optimizer, CatchupAdam):
            self.table_optimizer.flush_(self.tables)

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        for parameter in self.tables.values():
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()
        if self.table_optimizer is not None:
            for name, table in self.tables.items():
                grad = table.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    grad = grad.coalesce()
                    ids, rows = grad._indices()[0], grad._values()
                else:
                    ids, rows = torch.arange(table.shape[0], device=table.device), grad
                self.table_optimizer.step_(name, table.data, ids, -rows, self.lr * self.table_lr_scale)

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "rowwise": self.table_optimizer.state() if self.table_optimizer is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; a mismatch raises ValueError (or KeyError for a foreign state)."""
        if state["name"] != self.name or len(state["optimizers"]) != len(self.optimizers):
            raise ValueError(f"the saved optimizer state is not {self.name!r}'s")
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        if isinstance(self.table_optimizer, CatchupAdam):
            self.table_optimizer = CatchupAdam(self.tables, eps=self.table_optimizer.eps, state=state["rowwise"])
        elif self.table_optimizer is not None:
            self.table_optimizer = self._rowwise_adagrad(state["rowwise"])

    def _rowwise_adagrad(self, state: dict[str, torch.Tensor] | None = None) -> RowwiseAdagrad:
        """One accumulator per row of every table, on the tables' device (from a checkpoint's ``state``)."""
        device = next(iter(self.tables.values())).device
        return RowwiseAdagrad({n: p.shape[0] for n, p in self.tables.items()}, device, state)
