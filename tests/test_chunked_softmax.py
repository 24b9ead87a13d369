"""The chunked full softmax against ``F.cross_entropy(F.linear(h, W, b), t)``: loss and all three gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nce_lm.objectives.chunked_softmax as chunked_softmax
import nce_lm.objectives.partition as partition
from nce_lm.errors import NceLmError
from nce_lm.objectives.chunked_softmax import chunked_cross_entropy
from nce_lm.objectives.losses import build_objective


def inputs(n: int, vocab: int, dim: int, seed: int, dtype: torch.dtype = torch.float32, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(n, dim, generator=g, dtype=dtype) * scale).requires_grad_()
    weight = torch.randn(vocab, dim, generator=g, dtype=dtype).requires_grad_()
    bias = torch.randn(vocab, generator=g, dtype=dtype).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    targets[0] = targets[1] = vocab - 1  # a repeated target (index_add) and the last row of the last chunk
    upstream = torch.rand(n, generator=g, dtype=dtype)  # a non-uniform incoming gradient, as a weighted mean gives
    return hidden, weight, bias, targets, upstream


def loss_and_grads(loss_fn, hidden, weight, bias, targets, upstream):
    params = (hidden, weight) if bias is None else (hidden, weight, bias)
    loss = loss_fn(hidden, weight, bias, targets)
    return (loss, *torch.autograd.grad((loss * upstream).sum(), params))


def reference(hidden, weight, bias, targets):
    return F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="none")


@pytest.mark.parametrize(
    ("vocab", "chunk_size"),
    [(50, 50), (50, 7), (50, 1), (50, 64), (1000, 256), (1001, 256)],
    ids=["one-chunk", "ragged", "chunk-1", "chunk>V", "divisible", "V-not-divisible"],
)
@pytest.mark.parametrize("with_bias", [True, False])
def test_loss_and_gradients_equal_cross_entropy(vocab: int, chunk_size: int, with_bias: bool) -> None:
    """Catches a chunk left out or counted twice, a wrong target term, or a gradient written to the wrong rows."""
    hidden, weight, bias, targets, upstream = inputs(24, vocab, 16, seed=vocab + chunk_size)
    bias = bias if with_bias else None
    got = loss_and_grads(
        lambda *a: chunked_cross_entropy(*a, chunk_size=chunk_size), hidden, weight, bias, targets, upstream
    )
    expected = loss_and_grads(reference, hidden, weight, bias, targets, upstream)
    for name, g, e in zip(("loss", "hidden", "weight", "bias"), got, expected):
        assert g.dtype == e.dtype == torch.float32, name
        torch.testing.assert_close(g, e, msg=name)


def test_gradcheck_in_float64() -> None:
    """Finite differences, independent of any formula: catches a sign or a softmax weight that is off."""
    hidden, weight, bias, targets, _ = inputs(5, 11, 3, seed=1, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h, w, b: chunked_cross_entropy(h, w, b, targets, 4), (hidden, weight, bias))
    assert torch.autograd.gradcheck(lambda h, w: chunked_cross_entropy(h, w, None, targets, 3), (hidden, weight))


def test_only_the_gradients_asked_for_are_computed() -> None:
    hidden, weight, bias, targets, upstream = inputs(6, 20, 4, seed=2)
    frozen = weight.detach()
    loss = chunked_cross_entropy(hidden, frozen, bias, targets, 8)
    grad_hidden, grad_bias = torch.autograd.grad((loss * upstream).sum(), (hidden, bias))
    _, ref_hidden, _, ref_bias = loss_and_grads(reference, hidden, weight, bias, targets, upstream)
    torch.testing.assert_close(grad_hidden, ref_hidden)
    torch.testing.assert_close(grad_bias, ref_bias)


def test_large_scores_stay_finite_and_exact() -> None:
    """Scores in the hundreds overflow exp: log Z must go through log-sum-exp in forward and backward."""
    hidden, weight, bias, targets, upstream = inputs(8, 300, 8, seed=3, scale=40.0)
    got = loss_and_grads(lambda *a: chunked_cross_entropy(*a, chunk_size=64), hidden, weight, bias, targets, upstream)
    expected = loss_and_grads(reference, hidden, weight, bias, targets, upstream)
    assert all(torch.isfinite(g).all() for g in got)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-3)


def test_bf16_hidden_under_autocast() -> None:
    """A bf16 hidden state from an autocast model: scores are float32 of the bf16 values; grads come back bf16."""
    hidden, weight, bias, targets, upstream = inputs(16, 300, 32, seed=4)
    hidden_bf16 = hidden.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_cross_entropy(hidden_bf16, weight, bias, targets, 64)
        mixed_reference = F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="none")
    grads = torch.autograd.grad((loss * upstream).sum(), (hidden_bf16, weight, bias))
    assert loss.dtype == torch.float32 and grads[0].dtype == torch.bfloat16 and grads[1].dtype == torch.float32
    # Exact up to float32 rounding for the bf16 values it was given: autocast did not lower the scores to bf16.
    upcast = hidden_bf16.detach().float().requires_grad_()
    expected = loss_and_grads(reference, upcast, weight, bias, targets, upstream)
    torch.testing.assert_close(loss, expected[0])
    torch.testing.assert_close(grads[0], expected[1].bfloat16())
    torch.testing.assert_close(grads[1], expected[2])
    torch.testing.assert_close(grads[2], expected[3])
    # And within bf16 tolerance of the float32 computation, closer than autocast's own bf16 logits.
    exact = reference(hidden, weight, bias, targets)
    torch.testing.assert_close(loss, exact, rtol=0.02, atol=0.1)
    assert (loss - exact).abs().max() <= (mixed_reference - exact).abs().max()


def test_float32_inputs_under_autocast_are_not_rounded_to_bf16() -> None:
    hidden, weight, bias, targets, upstream = inputs(16, 300, 32, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_and_grads(
            lambda *a: chunked_cross_entropy(*a, chunk_size=100), hidden, weight, bias, targets, upstream
        )
    expected = loss_and_grads(reference, hidden, weight, bias, targets, upstream)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_no_score_block_is_wider_than_a_chunk(monkeypatch) -> None:
    """Memory is O(N · chunk): every score matrix formed, forward and backward, has at most chunk columns."""
    widths = []
    scores = partition.scores

    def recording(hidden, weight, bias, dtype=torch.float32):
        widths.append(weight.shape[0])
        return scores(hidden, weight, bias, dtype)

    monkeypatch.setattr(chunked_softmax, "scores", recording)
    monkeypatch.setattr(partition, "scores", recording)
    hidden, weight, bias, targets, upstream = inputs(10, 1000, 8, seed=6)
    (chunked_cross_entropy(hidden, weight, bias, targets, 128) * upstream).sum().backward()
    assert sum(widths) == 2 * 1000 and max(widths) == 128  # the vocabulary once in forward, once in backward


def test_full_softmax_objective_uses_it_with_its_chunk_size() -> None:
    hidden, weight, bias, targets, upstream = inputs(12, 90, 8, seed=7)
    objective = build_objective("full", None, 0, chunk_size=16)
    got = loss_and_grads(objective, hidden, weight, bias, targets, upstream)
    expected = loss_and_grads(reference, hidden, weight, bias, targets, upstream)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    with pytest.raises(NceLmError, match="chunk_size"):
        build_objective("full", None, 0, chunk_size=0)
    with pytest.raises(NceLmError, match="chunk_size"):
        chunked_cross_entropy(hidden, weight, bias, targets, 0)
