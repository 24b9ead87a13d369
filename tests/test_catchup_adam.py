"""Catch-up Adam equals dense torch.optim.Adam on every row, step for step, where its closed form is exact.

The reference runs torch.optim.Adam on the dense (V, d) gradient (zero on the rows a step did not touch);
catch-up Adam sees only the touched rows. With ε tiny against √v̂ the closed form is exact, so after a
flush the tables agree to float64 rounding under a changing learning rate; a run resumed from ``state()``
continues bit for bit; and an LM trained through ``train_lm`` ends where dense Adam's does.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nce_lm.lm import LMConfig, train_lm
from nce_lm.lm.checkpoint import load_payload
from nce_lm.pipeline.vocab import Vocab
from nce_lm.training.catchup_adam import CatchupAdam

V, DIM, STEPS = 20, 4, 40


def sparse_steps(steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Per step: distinct touched rows (N,), their gradients (N, DIM) in float64, and the step's lr.

    Step 0 touches every row (so that with ε = 0 the reference never divides 0 by 0); afterwards 1-5 rows
    per step, and row 19 only from step 30 on, so that the catch-up spans gaps from 1 to 30 steps. The lr
    changes every step and drops by 4 at step 25, as the LM's decay does.
    """
    generator = torch.Generator().manual_seed(seed)
    out = []
    for step in range(steps):
        count = V if step == 0 else int(torch.randint(1, 6, (), generator=generator))
        ids = torch.randperm(V - 1, generator=generator)[:count]
        if step == 0 or step >= 30:
            ids = torch.cat([ids, torch.tensor([V - 1])])
        grads = torch.randn(len(ids), DIM, generator=generator, dtype=torch.float64)
        lr = (0.01 if step < 25 else 0.0025) * (1 + 0.5 * torch.rand((), generator=generator).item())
        out.append((ids, grads, lr))
    return out


def dense_adam(start: torch.Tensor, steps, eps: float) -> list[torch.Tensor]:
    """torch.optim.Adam on dense gradients; the table after each step."""
    table = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.Adam([table], lr=1.0, eps=eps)
    history = []
    for ids, grads, lr in steps:
        optimizer.param_groups[0]["lr"] = lr
        rows = grads[:, : DIM if start.dim() == 2 else 1].reshape(len(ids), *start.shape[1:])
        table.grad = torch.zeros_like(table).index_add_(0, ids, rows)
        optimizer.step()
        history.append(table.detach().clone())
    return history


def start_table(shape=(V, DIM)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(V, DIM), (V,)], ids=["matrix", "bias"])
@pytest.mark.parametrize("eps", [0.0, 1e-30])
def test_equals_dense_adam_after_flush_at_several_steps(shape, eps) -> None:
    steps = sparse_steps(STEPS)
    start = start_table(shape)
    want = dense_adam(start, steps, eps)
    table = start.clone()
    optimizer = CatchupAdam({"w": table}, eps=eps)
    for step, (ids, grads, lr) in enumerate(steps):
        optimizer.step_("w", table, ids, -grads[:, : DIM if len(shape) == 2 else 1].reshape(len(ids), *shape[1:]), lr)
        if step in (0, 4, 11, 23, 29, STEPS - 1):  # flush at several steps, not every one
            optimizer.flush_({"w": table})
            torch.testing.assert_close(table, want[step], rtol=0, atol=1e-10)


def test_flush_moves_untouched_rows_as_dense_adam_does() -> None:
    """Without the flush the rows a step did not touch lag behind; the flush moves them, lazy Adam never."""
    steps = sparse_steps(10)
    start = start_table()
    want = dense_adam(start, steps, 1e-30)[-1]
    table = start.clone()
    optimizer = CatchupAdam({"w": table}, eps=1e-30)
    for ids, grads, lr in steps:
        optimizer.step_("w", table, ids, -grads, lr)
    stale = table.clone()
    optimizer.flush_({"w": table})
    assert (stale - want).abs().amax() > 1e-3  # the catch-up is not negligible
    torch.testing.assert_close(table, want, rtol=0, atol=1e-10)


def test_default_eps_is_dense_adam_where_eps_is_small_against_the_gradients() -> None:
    """ε = 10⁻⁸ against gradients of order 1: the ε-term the closed form approximates is 10⁻⁸ relative."""
    steps = sparse_steps(STEPS)
    start = start_table()
    want = dense_adam(start, steps, 1e-8)[-1]
    table = start.clone()
    optimizer = CatchupAdam({"w": table})
    for ids, grads, lr in steps:
        optimizer.step_("w", table, ids, -grads, lr)
    optimizer.flush_({"w": table})
    torch.testing.assert_close(table, want, rtol=0, atol=1e-7)


def test_float32_tables_agree_to_float32_rounding() -> None:
    steps = sparse_steps(STEPS)
    start = start_table()
    want = dense_adam(start.float(), [(i, g.float(), lr) for i, g, lr in steps], 1e-8)[-1]
    table = start.float()
    optimizer = CatchupAdam({"w": table})
    for ids, grads, lr in steps:
        optimizer.step_("w", table, ids, -grads.float(), lr)
    optimizer.flush_({"w": table})
    torch.testing.assert_close(table, want, rtol=0, atol=1e-6)


def test_rows_caught_up_before_a_read_are_dense_adams_and_the_run_goes_on_unchanged() -> None:
    steps = sparse_steps(STEPS)
    start = start_table()
    want = dense_adam(start, steps, 1e-8)
    table = start.clone()
    optimizer = CatchupAdam({"w": table})
    for step, (ids, grads, lr) in enumerate(steps):
        optimizer.step_("w", table, ids, -grads, lr)
        read = torch.tensor([3, 3, 7, 19])  # repeats allowed
        optimizer.catch_up_("w", table, read)
        torch.testing.assert_close(table[read], want[step][read], rtol=0, atol=1e-7)
    optimizer.flush_({"w": table})
    torch.testing.assert_close(table, want[-1], rtol=0, atol=1e-7)


def test_resumed_from_state_continues_bit_for_bit() -> None:
    steps = sparse_steps(STEPS)
    table = start_table()
    optimizer = CatchupAdam({"w": table})
    for ids, grads, lr in steps:
        optimizer.step_("w", table, ids, -grads, lr)
    optimizer.flush_({"w": table})

    resumed_table = start_table()
    first = CatchupAdam({"w": resumed_table})
    for ids, grads, lr in steps[:17]:
        first.step_("w", resumed_table, ids, -grads, lr)
    saved, saved_table = first.state(), resumed_table.clone()
    del first
    resumed_table = saved_table
    second = CatchupAdam({"w": resumed_table}, state=saved)
    for ids, grads, lr in steps[17:]:
        second.step_("w", resumed_table, ids, -grads, lr)
    second.flush_({"w": resumed_table})
    assert torch.equal(resumed_table, table)


def test_a_long_gap_is_caught_up_in_full_and_nothing_under_or_overflows() -> None:
    """Rows 1 and 2 are touched at step 0 only, then miss 2,999 steps: more than the window K (463), so the
    truncation is exercised; D grows past its first allocation and stays finite."""
    ones = torch.ones(3, 2, dtype=torch.float64)
    steps = [(torch.arange(3), -ones, 1e-3)] + [(torch.tensor([0]), -ones[:1], 1e-3)] * 2999
    table = torch.zeros(3, 2, dtype=torch.float64)
    optimizer = CatchupAdam({"w": table})
    for ids, grads, lr in steps:
        optimizer.step_("w", table, ids, -grads, lr)
    state = optimizer.states["w"]
    assert state.steps == 3000 and len(state.missed) >= 3001 and torch.isfinite(state.missed).all()
    optimizer.flush_({"w": table})
    torch.testing.assert_close(table, dense_adam(torch.zeros(3, 2, dtype=torch.float64), steps, 1e-8)[-1])


def test_with_a_large_eps_the_first_missed_step_is_exact_and_later_ones_err_towards_the_eps_free_step() -> None:
    """ε = 0.3 against gradients of 1: the closed form keeps the first missed step's ε-term, so one missed
    step is dense Adam's exactly; over 20 the catch-up lies between dense Adam and the ε-free closed form."""
    grad = torch.ones(1, 1, dtype=torch.float64)
    row = torch.tensor([0])
    for gap, exact in ((1, True), (20, False)):
        steps = [(torch.arange(2), torch.ones(2, 1, dtype=torch.float64), 0.01)] * 3
        steps += [(torch.tensor([1]), grad, 0.01)] * gap  # row 0 misses `gap` steps
        moves = {}
        for eps in (0.3, 0.0):
            table = torch.zeros(2, 1, dtype=torch.float64)
            optimizer = CatchupAdam({"w": table}, eps=eps)
            for ids, grads, lr in steps:
                optimizer.step_("w", table, ids, -grads, lr)
            before = table[row].clone()
            optimizer.flush_({"w": table})
            moves[eps] = (table[row] - before).item()
        dense = dense_adam(torch.zeros(2, 1, dtype=torch.float64), steps, 0.3)
        want = (dense[-1][row] - dense[2][row]).item()
        if exact:
            assert moves[0.3] == pytest.approx(want, rel=1e-12)
        else:
            assert want > moves[0.3] > moves[0.0]  # moves are negative: dense moves least
            assert moves[0.3] != pytest.approx(want, rel=1e-6)


def test_refuses_betas_whose_missed_steps_do_not_decay_and_foreign_state() -> None:
    table = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="beta1 < sqrt"):
        CatchupAdam({"w": table}, betas=(0.99, 0.9))
    state = CatchupAdam({"w": table}).state()
    with pytest.raises(ValueError, match="does not match"):
        CatchupAdam({"w": torch.zeros(5, 2)}, state=state)
    with pytest.raises(ValueError, match="other betas"):
        CatchupAdam({"w": table}, betas=(0.8, 0.999), state=state)


@pytest.fixture(scope="module")
def wide_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Text over 300 words drawn from a Zipf law: most rows of the tables are untouched on most steps."""
    generator = torch.Generator().manual_seed(0)
    weights = 1.0 / torch.arange(1, 301, dtype=torch.float64)
    folder = tmp_path_factory.mktemp("catchup")
    paths = {}
    for split, lines in (("train", 200), ("valid", 20)):
        ids = torch.multinomial(weights, lines * 12, replacement=True, generator=generator).view(lines, 12)
        paths[split] = str(folder / f"{split}.txt")
        Path(paths[split]).write_text("".join(" ".join(f"w{i}" for i in row.tolist()) + "\n" for row in ids))
    return paths


def lm_steps(optimizer_name: str, steps: int, read_caught_up: bool) -> dict[str, torch.Tensor]:
    """A 1 × 6 LSTM with nce (k = 7 of V = 50; inputs and targets use ids < 30 only, so many rows go
    untouched) stepped through LMOptimizer as train_step does, the lr decayed at step 4; the parameters."""
    from nce_lm.lm.model import build_model
    from nce_lm.lm.optim import LMOptimizer, sparse_tables
    from nce_lm.lm.train import TrainingModule
    from nce_lm.objectives.losses import build_objective
    from nce_lm.pipeline.noise import NoiseDistribution
    from nce_lm.training.sparse_rows import clip_grad_norm_

    sparse = sparse_tables(optimizer_name, True)
    config = LMConfig(train="x", dim=6, layers=1, dropout=0.0, optimizer=optimizer_name, noise_samples=7)
    noise = NoiseDistribution(torch.arange(1, 51).float())
    torch.manual_seed(0)
    model = build_model(config, 50, noise.log_probs)
    module = TrainingModule(model, build_objective("nce", noise, 7, seed=11, sparse_gradients=sparse))
    tables = model.tables()
    dense = [p for p in module.parameters() if all(p is not t for t in tables.values())]
    optimizer = LMOptimizer(optimizer_name, dense, tables, 0.01, sparse)
    generator = torch.Generator().manual_seed(3)
    for step in range(steps):
        optimizer.set_lr(0.01 if step < 4 else 0.0025)
        inputs, targets = (torch.randint(0, 30, (4, 5), generator=generator) for _ in range(2))
        if read_caught_up:
            optimizer.flush()
        loss, _ = module(inputs, targets, model.initial_state(4, torch.device("cpu")))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(module.parameters(), 0.25)
        optimizer.step()
    optimizer.flush()
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_lm_optimizer_reading_caught_up_rows_is_dense_adam() -> None:
    """Through LMOptimizer (sparse gradients, clipping, a changing lr), with the rows brought up to date
    before each forward pass: every parameter equals dense Adam's to float32 rounding over 10 steps. Without
    that the forward passes read stale rows and the runs part (the module docstring, "Reads")."""
    dense = lm_steps("adam", 10, False)
    caught_up = lm_steps("catchup-adam", 10, True)
    stale = lm_steps("catchup-adam", 10, False)
    for name, want in dense.items():
        torch.testing.assert_close(caught_up[name], want, rtol=0, atol=1e-6, msg=name)
    assert max((stale[n] - dense[n]).abs().amax() for n in dense) > 1e-4


def trained_tables(corpus: dict[str, str], run_dir: Path, optimizer: str, **changes) -> dict[str, torch.Tensor]:
    """Train through ``train_lm`` and return the tables of last.pt, brought up to date by the optimizer."""
    config = LMConfig(
        train=corpus["train"],
        valid=corpus["valid"],
        dim=8,
        layers=1,
        dropout=0.0,
        seq_len=10,
        batch_size=8,
        epochs=1,
        noise_samples=16,
        optimizer=optimizer,
        progress=False,
        device="cpu",  # float32 rounding of the same arithmetic: no TF32 or non-deterministic CUDA kernels
        **changes,
    )
    train_lm(config, run_dir)
    payload = load_payload(run_dir / "last.pt", Vocab.load(run_dir / "vocab.json"))
    tables = {n: payload["module"][f"model.{n}"] for n in ("embedding.weight", "output_weight", "output_bias")}
    if optimizer == "catchup-adam":  # the trainer flushed before writing last.pt: a flush here changes nothing
        flushed = {n: t.clone() for n, t in tables.items()}
        saved = payload["optimizer"]["rowwise"]
        CatchupAdam(flushed, eps=saved["eps"], state=saved).flush_(flushed)
        assert all(torch.equal(flushed[n], tables[n]) for n in tables)
    return tables


def test_lm_run_resumed_mid_epoch_ends_as_the_uninterrupted_run(wide_corpus, tmp_path: Path, monkeypatch) -> None:
    """train_lm with catchup-adam: 25 steps in one go, or 10 then 15 after --resume from last.pt. The stopped
    run flushed at its stop, the whole one did not: with ε = 10⁻³⁰ a flush changes nothing but rounding (with
    torch's ε it restarts the rows' ε-term, the module docstring's caveat: 10⁻⁴ here)."""
    monkeypatch.setattr("nce_lm.lm.optim.ADAM_EPS", 1e-30)
    whole = trained_tables(wide_corpus, tmp_path / "whole", "catchup-adam", max_tokens=2000)
    trained_tables(wide_corpus, tmp_path / "parts", "catchup-adam", max_tokens=800)
    config = LMConfig.from_dict(json.loads((tmp_path / "parts" / "config.json").read_text()))
    train_lm(replace(config, max_tokens=2000), tmp_path / "parts", resume=True)
    payload = load_payload(tmp_path / "parts" / "last.pt", Vocab.load(tmp_path / "parts" / "vocab.json"))
    tables = {n: payload["module"][f"model.{n}"] for n in whole}
    for name, want in whole.items():
        torch.testing.assert_close(tables[name], want, rtol=0, atol=1e-6, msg=name)


def run_parameters(corpus: dict[str, str], run_dir: Path, optimizer: str, resume: bool = False, **changes):
    """Train through ``train_lm`` (2 epochs unless changed) and return its history and every parameter of
    last.pt's module, as the trainer wrote them (no flush here: the trainer flushes before a checkpoint)."""
    settings = dict(train=corpus["train"], valid=corpus["valid"], dim=8, layers=1, dropout=0.0, seq_len=10)
    settings.update(batch_size=8, epochs=2, noise_samples=16, optimizer=optimizer, progress=False, device="cpu")
    metrics = train_lm(LMConfig(**{**settings, **changes}), run_dir, resume=resume)
    payload = load_payload(run_dir / "last.pt", Vocab.load(run_dir / "vocab.json"))
    return metrics["history"], payload["module"]


def test_lm_run_with_catchup_adam_is_dense_adam(wide_corpus, tmp_path: Path, monkeypatch) -> None:
    """train_lm with catchup-adam (row-sparse tables; the rows each step reads, its noise words included,
    caught up before the forward pass; a flush before each validation and checkpoint) ends where a dense adam
    run does: with ε = 10⁻³⁰ the closed form is exact, so every parameter and every validation perplexity
    agree to float32 rounding after 2 epochs (64 steps, most of V = 300 rows untouched on most steps): 10⁻⁶
    absolute plus 10⁻⁶ relative, for the output biases, which start at log q ≈ −7 (measured: 1.2·10⁻⁷ for the
    weights, 5 float32 ulps at −6.8 for a bias)."""
    monkeypatch.setattr("nce_lm.lm.optim.ADAM_EPS", 1e-30)
    dense_history, dense = run_parameters(wide_corpus, tmp_path / "adam", "adam")
    sparse_history, sparse = run_parameters(wide_corpus, tmp_path / "catchup", "catchup-adam")
    assert sparse.keys() == dense.keys()
    for name, want in dense.items():
        torch.testing.assert_close(sparse[name], want, rtol=1e-6, atol=1e-6, msg=name)
    for got, want in zip(sparse_history, dense_history, strict=True):
        assert got["valid"]["ppl"] == pytest.approx(want["valid"]["ppl"], rel=1e-6)


def test_lm_run_with_the_default_eps_and_resumed_at_an_epoch(wide_corpus, tmp_path: Path) -> None:
    """With torch's ε = 10⁻⁸ a missed step of a row whose √v̂ is not ≫ ε moves it as the ε-free step does,
    where dense Adam moves it less (the module docstring): this tiny LM's rarely read rows have gradients near
    ε, and after 64 steps the parameters differ from dense adam's by 3·10⁻⁴ at most (lazy Adam's: 5·10⁻²),
    under the 10⁻³ asserted (a third of one step's largest move, lr = 3·10⁻³); the validation perplexities agree
    to 10⁻⁵. A run resumed from last.pt at an epoch's end, where both runs flushed, repeats the uninterrupted
    one bit for bit."""
    dense_history, dense = run_parameters(wide_corpus, tmp_path / "adam", "adam")
    whole_history, whole = run_parameters(wide_corpus, tmp_path / "whole", "catchup-adam")
    for name, want in dense.items():
        torch.testing.assert_close(whole[name], want, rtol=0, atol=1e-3, msg=name)
    for got, want in zip(whole_history, dense_history, strict=True):
        assert got["valid"]["ppl"] == pytest.approx(want["valid"]["ppl"], rel=1e-5)
    run_parameters(wide_corpus, tmp_path / "parts", "catchup-adam", epochs=1)
    _, resumed = run_parameters(wide_corpus, tmp_path / "parts", "catchup-adam", resume=True)
    for name, want in whole.items():
        assert torch.equal(resumed[name], want), name
