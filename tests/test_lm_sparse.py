"""Row-sparse training of the language model's tables equals the dense computation where it should.

For SGD and row-wise Adagrad the sparse update is the dense one, on every row. Lazy Adam equals dense Adam
on its first step and afterwards leaves the rows a step did not touch where they were, as documented in
nce_lm/lm/optim.py. Gradients, clipping norms and the gathered rows are compared with the dense reference.
"""

from __future__ import annotations

import pytest
import torch

from nce_lm.lm.config import LMConfig
from nce_lm.lm.model import build_model
from nce_lm.lm.optim import ADAM_EPS, ROWWISE_TABLE_LR_SCALE, LMOptimizer
from nce_lm.lm.train import TrainingModule, build_trainer, train_step
from nce_lm.objectives.losses import build_objective
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.training.distributed import DistributedContext
from nce_lm.training.sparse_rows import clip_grad_norm_, gather_rows

V, DIM = 50, 6
SAMPLED = ("nce", "neg", "ranking", "infonce")


def batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Windows that use only ids < 30, so that rows 30..49 are touched by noise alone (or not at all)."""
    generator = torch.Generator().manual_seed(3)
    return [
        (torch.randint(0, 30, (4, 5), generator=generator), torch.randint(0, 30, (4, 5), generator=generator))
        for _ in range(steps)
    ]


def run(objective: str, optimizer: str, by_trainer: bool, steps: int, clip: float = 1e9, tie: bool = False):
    """Train a tiny LSTM for ``steps`` steps of :func:`nce_lm.lm.train.train_step`; returns its parameters before
    the first step and after each, the gradient norms and the (clipped, dense) gradients of each step.

    ``by_trainer``: the run :func:`nce_lm.lm.train.build_trainer` builds, whose tables must get row-sparse
    gradients (a sampled objective) unless dense Adam is asked for. Otherwise the dense reference, built by hand:
    the same model, objective and noise draws with dense gradients and the optimizer's dense update.
    """
    config = LMConfig(
        train="x",
        dim=DIM,
        layers=1,
        dropout=0.0,
        objective=objective,
        optimizer=optimizer,
        lr=0.05,
        tie_weights=tie,
        noise_samples=7,
        seed=0,
    ).resolved(V)
    noise = NoiseDistribution(torch.arange(1, V + 1).float())
    if by_trainer:
        model, module, _, opt, generator = build_trainer(config, noise, DistributedContext())
        generator.manual_seed(11)
    else:
        torch.manual_seed(0)
        model = build_model(config, V, noise.log_probs)
        model.embedding.sparse = False
        module = TrainingModule(model, build_objective(objective, noise, 7, seed=11))
        tables = model.tables()
        dense = [p for p in module.parameters() if all(p is not t for t in tables.values())]
        opt = LMOptimizer(optimizer, dense, tables, 0.05, False)
    snapshots = [{n: p.detach().clone() for n, p in module.named_parameters()}]
    norms, grads = [], []
    for inputs, targets in batches(steps):
        state = model.initial_state(4, torch.device("cpu"))
        _, norm, _ = train_step(module, module, opt, inputs, targets, state, clip, "fp32", DistributedContext())
        if by_trainer:
            assert all(t.grad.is_sparse == (optimizer != "adam") for t in model.tables().values())
        norms.append(norm)
        grads.append(
            {n: p.grad.to_dense() if p.grad.is_sparse else p.grad.clone() for n, p in module.named_parameters()}
        )
        snapshots.append({n: p.detach().clone() for n, p in module.named_parameters()})
    return snapshots, norms, grads


@pytest.mark.parametrize("objective", SAMPLED)
@pytest.mark.parametrize("optimizer", ["sgd", "rowwise-adagrad", "adam-rowwise"])
def test_sparse_step_equals_dense_step_on_every_row(objective: str, optimizer: str) -> None:
    sparse, sparse_norms, _ = run(objective, optimizer, True, 3, clip=0.5)
    dense, dense_norms, _ = run(objective, optimizer, False, 3, clip=0.5)
    for got, want in zip(sparse_norms, dense_norms):
        torch.testing.assert_close(got, want.float())
    for name, tensor in dense[-1].items():
        torch.testing.assert_close(sparse[-1][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_adam_rowwise_is_adam_for_the_network_and_rowwise_adagrad_for_the_tables() -> None:
    """One step from the same gradients: the LSTM's parameters move as torch's Adam moves them at the run's rate,
    every table row as row-wise Adagrad's closed form at ROWWISE_TABLE_LR_SCALE times that rate."""
    torch.manual_seed(0)
    lstm, table = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(V, DIM))
    lstm.grad, table.grad = torch.randn(4, 3), torch.randn(V, DIM)
    reference = lstm.detach().clone().requires_grad_(True)
    reference.grad = lstm.grad.clone()
    before = table.detach().clone()
    LMOptimizer("adam-rowwise", [lstm], {"weight": table}, 0.003, False).step()
    torch.optim.Adam([reference], lr=0.003, eps=ADAM_EPS).step()
    torch.testing.assert_close(lstm.detach(), reference.detach(), rtol=0, atol=0)
    accumulator = table.grad.pow(2).mean(dim=1, keepdim=True)  # G_w after one step from 0
    step = 0.003 * ROWWISE_TABLE_LR_SCALE * table.grad / (accumulator.sqrt() + 1e-10)
    torch.testing.assert_close(table.detach(), before - step, rtol=1e-6, atol=1e-7)
    assert abs(ROWWISE_TABLE_LR_SCALE * 0.003 - 0.2) < 1e-12  # DEFAULT_TABLE_LR at the default rate


def test_tied_tables_train_sparse_as_dense() -> None:
    sparse, _, _ = run("nce", "sgd", True, 2, tie=True)
    dense, _, _ = run("nce", "sgd", False, 2, tie=True)
    for name, tensor in dense[-1].items():
        torch.testing.assert_close(sparse[-1][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("objective", SAMPLED)
def test_lazy_adam_is_adam_on_touched_rows_and_leaves_the_others(objective: str) -> None:
    lazy, _, grads = run(objective, "lazy-adam", True, 2)
    adam, _, _ = run(objective, "adam", True, 2)  # the trainer gives dense Adam dense tables
    tables = ("model.embedding.weight", "model.output_weight", "model.output_bias")
    lr, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
    for name, start in lazy[0].items():
        if name not in tables:  # the LSTM: dense Adam in both runs
            torch.testing.assert_close(lazy[1][name], adam[1][name], rtol=1e-5, atol=1e-6, msg=name)
            continue
        g = grads[0][name]  # SparseAdam's first step: ε added to √v before the bias correction
        step = lr * (1 - beta2) ** 0.5 / (1 - beta1) * (1 - beta1) * g / (((1 - beta2) * g * g).sqrt() + eps)
        torch.testing.assert_close(lazy[1][name], start - step, rtol=1e-5, atol=1e-7, msg=name)
    inputs, _ = batches(2)[1]
    untouched = torch.ones(V, dtype=torch.bool)
    untouched[inputs.flatten()] = False
    first, second = lazy[1]["model.embedding.weight"], lazy[2]["model.embedding.weight"]
    assert torch.equal(second[untouched], first[untouched])  # lazy: rows the step did not touch stay put
    assert not torch.equal(second[~untouched], first[~untouched])
    moved = (adam[2]["model.embedding.weight"] - adam[1]["model.embedding.weight"])[untouched].abs().amax()
    assert moved > 0  # dense Adam keeps moving them with its first moment


@pytest.mark.parametrize("shape", [(12,), (12, 3)])
def test_gathered_rows_have_the_dense_gradient(shape) -> None:
    table = torch.randn(*shape, requires_grad=True)
    ids = torch.tensor([[3, 3], [0, 11]])
    weights = torch.randn(*ids.shape, *shape[1:])
    (gather_rows(table, ids) * weights).sum().backward()
    sparse = table.grad
    table.grad = None
    (table[ids] * weights).sum().backward()
    assert sparse.is_sparse
    torch.testing.assert_close(sparse.to_dense(), table.grad)


def test_clipping_norm_and_scale_equal_torch_on_the_dense_gradients() -> None:
    generator = torch.Generator().manual_seed(0)
    dense_param = torch.nn.Parameter(torch.randn(4, 3, generator=generator))
    table = torch.nn.Parameter(torch.randn(10, 3, generator=generator))
    ids = torch.tensor([1, 1, 7])
    rows = torch.randn(3, 3, generator=generator)
    dense_param.grad = torch.randn(4, 3, generator=generator)
    table.grad = torch.sparse_coo_tensor(ids[None], rows, (10, 3), check_invariants=True)
    reference = [torch.nn.Parameter(dense_param.detach().clone()), torch.nn.Parameter(table.detach().clone())]
    reference[0].grad = dense_param.grad.clone()
    reference[1].grad = table.grad.to_dense()
    want = torch.nn.utils.clip_grad_norm_(reference, 0.3)
    got = clip_grad_norm_([dense_param, table], 0.3)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(dense_param.grad, reference[0].grad)
    torch.testing.assert_close(table.grad.to_dense(), reference[1].grad)


def test_table_lr_sets_the_tables_rate_and_decays_with_the_network() -> None:
    """adam-rowwise with table_lr: the tables move as row-wise Adagrad's closed form at table_lr, the network as
    Adam at lr; after set_lr(lr / 4) the tables' rate is table_lr / 4. Any other optimizer refuses table_lr."""
    torch.manual_seed(0)
    lstm, table = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(V, DIM))
    optimizer = LMOptimizer("adam-rowwise", [lstm], {"weight": table}, 0.003, False, table_lr=0.5)
    optimizer.set_lr(0.003 / 4)
    table.grad = torch.randn(V, DIM)
    before = table.detach().clone()
    optimizer.step()
    accumulator = table.grad.pow(2).mean(dim=1, keepdim=True)
    torch.testing.assert_close(
        table.detach(), before - 0.125 * table.grad / (accumulator.sqrt() + 1e-10), rtol=1e-6, atol=1e-7
    )
    with pytest.raises(ValueError, match="adam-rowwise's"):
        LMOptimizer("rowwise-adagrad", [lstm], {"weight": table}, 0.1, False, table_lr=0.5)


def test_table_lr_reaches_the_trainers_optimizer() -> None:
    """LMConfig.table_lr is the rate build_trainer's optimizer gives the tables; left None it is lr × the scale."""
    noise = NoiseDistribution(torch.arange(1, V + 1).float())
    config = LMConfig(train="x", dim=DIM, layers=1, objective="nce", noise_samples=4)  # adam-rowwise by default
    for table_lr, rate in ((None, 0.2), (0.05, 0.05), (0.1, 0.1)):
        resolved = config.with_changes(table_lr=table_lr).resolved(V)
        optimizer = build_trainer(resolved, noise, DistributedContext()).optimizer
        assert optimizer.lr == 0.003
        assert optimizer.lr * optimizer.table_lr_scale == pytest.approx(rate, rel=1e-12)
