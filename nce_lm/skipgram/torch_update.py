"""The torch path of the skip-gram and CBOW update (any device, any sampled objective), and what it shares with the
device update (:mod:`nce_lm.skipgram.device_update`): the batch loop of a chunk and the optimizer's step on rows.

A batch of B examples (Mikolov et al. 2013, batched as docs/skipgram.md describes) is scored against the tables as
they stand at its start with the objective's own :meth:`~nce_lm.objectives.losses.Objective.scores`; the
objective gives ∂loss/∂s (:meth:`~nce_lm.objectives.losses.Objective.logit_gradients`); the steps of the rows
follow by the chain rule through s = h · u_w + b_w, with no autograd graph through the tables, and
:func:`add_row_steps_` adds them into the touched rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from nce_lm.objectives.losses import Objective
from nce_lm.skipgram.checkpoint import SkipGramState
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.examples import Examples, context_steps, mean_inputs, window_noise
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.rowwise_adagrad import RowwiseAdagrad


def add_row_steps_(
    table: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor, lr: float, optimizer: RowwiseAdagrad | None, name: str
) -> None:
    """The optimizer's step on rows: add ``steps`` (N, d) or (N,) into the rows ``rows`` (N,) of ``table`` (V, d)
    or (V,) in place; ``name`` is the table's in ``optimizer``.

    The steps are descent directions: SGD's (``optimizer`` None) are −lr × gradient, added as they are with
    ``scatter_add_`` over an expanded index (on the CPU several times faster than ``index_add_``, and
    deterministic: it adds along the rows in order); row-wise Adagrad's are −gradient, which it scales by ``lr``
    and each row's accumulator (:class:`nce_lm.training.rowwise_adagrad.RowwiseAdagrad`).
    """
    if optimizer is not None:
        optimizer.step_(name, table, rows, steps, lr)
    elif steps.dim() == 1:
        table.scatter_add_(0, rows, steps)
    else:
        table.scatter_add_(0, rows[:, None].expand(-1, steps.shape[1]), steps)


def descent_scale(lr: float, optimizer: RowwiseAdagrad | None) -> float:
    """The factor that turns gradients into the steps :func:`add_row_steps_` takes: −lr for SGD, −1 for Adagrad
    (which applies its rate itself)."""
    return -lr if optimizer is None else -1.0


class BatchedUpdate:
    """An update path that trains a chunk batch by batch with torch: the torch path, and the device update.

    Subclasses give :meth:`update`, one batch. ``state``'s tables are updated in place; ``chunks(epoch)`` yields
    an epoch's examples chunk by chunk, with the corpus words each covered; ``rate(words_done)`` is the learning
    rate after that many corpus words; ``average_tables()`` averages the tables across ranks under torchrun
    (every ``sync_every`` batches).
    """

    name: str

    def __init__(
        self,
        state: SkipGramState,
        objective: Objective,
        optimizer: RowwiseAdagrad | None,
        train_bias: bool,
        config: SkipGramConfig,
        ctx: DistributedContext,
        chunks: Callable[[int], Iterator[tuple[Examples, int]]],
        rate: Callable[[float], float],
        average_tables: Callable[[], None],
    ) -> None:
        self.state, self.objective, self.optimizer, self.train_bias = state, objective, optimizer, train_bias
        self.config, self.ctx, self.chunks, self._rate, self._average_tables = config, ctx, chunks, rate, average_tables
        self.device = state.input_vectors.device

    def update(self, examples: Examples, lr: float) -> torch.Tensor:
        """One batch's update of the tables in place; returns its summed loss, a 0-d tensor on the device."""
        raise NotImplementedError

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def train_chunk(
        self, examples: Examples, epoch: int, first_example: int, words_done: float, words: float
    ) -> tuple[float, int]:
        """:meth:`train_batches`, its loss read back once: the summed loss and the number of examples trained."""
        summed, trained = self.train_batches(examples, words_done, words)
        return summed.item(), trained

    def train_batches(self, examples: Examples, words_done: float, words: float) -> tuple[torch.Tensor, int]:
        """All examples of one chunk, covering ``words`` corpus words after ``words_done``, through :meth:`update`
        batch by batch; returns the summed loss (0-d, on the device: no sync) and the number of examples trained.

        Each batch takes the rate reached at its share of the chunk's words. Under torchrun rank r takes batches
        r, r + N, ...; every rank counts every batch, so the collective calls line up whatever share each rank
        gets.
        """
        config, ctx = self.config, self.ctx
        host_starts = None if examples.starts is None else examples.starts.tolist()  # a sync, once per chunk
        examples = examples.map(self._on_device)
        count, trained = len(examples), 0
        chunk_loss = torch.zeros((), dtype=torch.float64, device=self.device)  # one sync per chunk
        for index, first in enumerate(range(0, count, config.batch_size)):
            if (index + 1) % (config.sync_every * ctx.world_size) == 0:
                self._average_tables()
            if index % ctx.world_size != ctx.rank:
                continue
            last = min(first + config.batch_size, count)
            lr = self._rate(words_done + words * (first / count))
            chunk_loss += self.update(examples.slice(first, last, host_starts), lr)
            trained += last - first
        return chunk_loss, trained

    def _on_device(self, ids: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Word ids (or offsets) as int64 on the device. From the host to a GPU they go through pinned memory, so
        that the copy is asynchronous: the host goes on queueing the chunk's batches instead of waiting for it."""
        if isinstance(ids, torch.Tensor):
            return ids
        tensor = torch.from_numpy(ids)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True).long()  # int32 over the bus, widened on the device


class TorchUpdatePath(BatchedUpdate):
    """The torch path: the host's examples (:func:`nce_lm.skipgram.windows.epoch_examples`), any objective the
    skip-gram trainer takes, shared or per-example noise."""

    name = "torch"

    def update(self, examples: Examples, lr: float) -> torch.Tensor:
        """One step on a batch of B examples; returns the summed loss as a 0-d float64 tensor on the device.

        Rows are read with one ``index_select`` of the B + K (shared noise) or B + B·k output rows. With noise
        keys, the pairs of a window share their noise words (:func:`~nce_lm.skipgram.examples.window_noise`).
        """
        v_in, u_out, bias = self.state.input_vectors, self.state.output_vectors, self.state.output_bias
        dim, centre, objective = v_in.shape[1], examples.centre, self.objective
        h = mean_inputs(v_in, examples)  # (B, d)
        noise_ids = window_noise(objective.sample_noise(centre), examples.noise_key)  # (K,) or (B, K)
        out_ids = torch.cat([centre, noise_ids.reshape(-1)])  # (B + K) or (B + B·K,)
        u_rows = u_out.index_select(0, out_ids)
        u_true, u_noise = u_rows[: len(centre)], u_rows[len(centre) :].view(*noise_ids.shape, dim)
        s_true, s_noise, hits = objective.scores(h, u_true, u_noise, centre, noise_ids)  # (B,), (B, K), (B, K)
        if bias is not None:
            s_true, s_noise = s_true + bias[centre], s_noise + bias[noise_ids]
        log_probs = objective.noise.log_probs
        loss, g_true, g_noise = objective.logit_gradients(
            s_true, s_noise, log_probs[centre], log_probs[noise_ids], hits
        )  # ∂loss/∂s: (B,), (B, K)
        with torch.no_grad():
            scale = descent_scale(lr, self.optimizer)
            g_true, g_noise = g_true * scale, g_noise * scale
            if noise_ids.dim() == 1:
                step_h = g_true[:, None] * u_true + g_noise @ u_noise  # (B, d)
                step_noise = g_noise.T @ h  # (K, d)
            else:
                step_h = g_true[:, None] * u_true + torch.bmm(g_noise[:, None, :], u_noise).squeeze(1)
                step_noise = (g_noise[:, :, None] * h[:, None, :]).reshape(-1, dim)  # (B·K, d)
            step_out = torch.cat([g_true[:, None] * h, step_noise])  # rows of out_ids
            add_row_steps_(u_out, out_ids, step_out, lr, self.optimizer, "output")
            add_row_steps_(v_in, examples.context, context_steps(step_h, examples), lr, self.optimizer, "input")
            if self.train_bias:  # ∂s/∂b = 1: the bias steps are the score steps themselves
                noise_steps = g_noise.sum(0) if noise_ids.dim() == 1 else g_noise.reshape(-1)
                add_row_steps_(bias, out_ids, torch.cat([g_true, noise_steps]), lr, self.optimizer, "bias")
        return loss.double()
