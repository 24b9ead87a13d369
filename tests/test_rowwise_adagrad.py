"""Row-wise Adagrad against a loop over rows in float64."""

from __future__ import annotations

import pytest
import torch

from nce_lm.training.rowwise_adagrad import EPSILON, RowwiseAdagrad


def reference(table, accumulator, ids, descent, lr):
    """Sum each row's entries, add mean(g²) to its accumulator, step by lr · g / (√G + ε); float64 loops."""
    table, accumulator = table.double().clone(), accumulator.double().clone()
    for row in sorted(set(ids.tolist())):
        g = sum(descent[i].double() for i in range(len(ids)) if ids[i] == row)
        accumulator[row] += (g * g).mean() if g.dim() else g * g
        table[row] += lr * g / (accumulator[row].sqrt() + EPSILON)
    return table, accumulator


@pytest.mark.parametrize("shape", [(7, 3), (7,)])
def test_steps_match_a_loop_over_rows(shape) -> None:
    g = torch.Generator().manual_seed(0)
    table = torch.randn(shape, generator=g)
    optimizer = RowwiseAdagrad({"t": shape[0]}, torch.device("cpu"))
    expected, accumulator = table.clone(), torch.zeros(shape[0])
    for _ in range(3):  # the accumulator carries over
        ids = torch.tensor([4, 1, 4, 4, 0, 6])  # row 4 three times
        descent = torch.randn((len(ids), *shape[1:]), generator=g)
        expected, accumulator = reference(expected, accumulator, ids, descent, 0.1)
        optimizer.step_("t", table, ids, descent, 0.1)
    torch.testing.assert_close(table.double(), expected)
    torch.testing.assert_close(optimizer.accumulators["t"].double(), accumulator)
    assert torch.equal(table[[2, 3, 5]], torch.randn(shape, generator=torch.Generator().manual_seed(0))[[2, 3, 5]])


def test_state_round_trips_and_must_fit() -> None:
    optimizer = RowwiseAdagrad({"a": 4}, torch.device("cpu"))
    optimizer.step_("a", torch.zeros(4, 2), torch.tensor([1]), torch.ones(1, 2), 0.5)
    again = RowwiseAdagrad({"a": 4}, torch.device("cpu"), optimizer.state())
    assert torch.equal(again.accumulators["a"], optimizer.accumulators["a"])
    with pytest.raises(ValueError, match="does not match"):
        RowwiseAdagrad({"a": 5}, torch.device("cpu"), optimizer.state())
