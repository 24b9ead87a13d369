"""Each objective's loss and gradient against an independent float64 formula; the interface's invariants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nce_lm.errors import NceLmError
from nce_lm.objectives.losses import OBJECTIVES, build_objective
from nce_lm.pipeline.noise import NoiseDistribution


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


V, D, B, K = 40, 8, 6, 5


def reference_loss(name: str, s_true, s_noise, logq_true, logq_noise, k: int, hits=None):
    """The textbook formula, written element by element in float64 (B,)."""
    out = []
    for i in range(s_true.shape[0]):
        st, lqt = float(s_true[i]), float(logq_true[i])
        sn = [float(x) for x in s_noise[i]]
        lqn = [float(x) for x in (logq_noise if logq_noise.dim() == 1 else logq_noise[i])]
        hit = [bool(x) for x in hits[i]] if hits is not None else [False] * len(sn)
        if name in ("nce", "neg"):
            shift = (lambda lq: math.log(k) + lq) if name == "nce" else (lambda lq: 0.0)
            value = -math.log(sig(st - shift(lqt))) - sum(math.log(1 - sig(s - shift(lq))) for s, lq in zip(sn, lqn))
        else:
            correct = (lambda s, lq: s - lq) if name == "ranking" else (lambda s, lq: s)
            terms = [correct(st, lqt)] + [correct(s, lq) for s, lq, h in zip(sn, lqn, hit) if not h]
            value = math.log(sum(math.exp(x) for x in terms)) - correct(st, lqt)
        out.append(value)
    return torch.tensor(out, dtype=torch.float64)


def random_inputs(seed: int, shared: bool):
    g = torch.Generator().manual_seed(seed)
    s_true = torch.randn(B, generator=g, dtype=torch.float64) * 2
    s_noise = torch.randn(B, K, generator=g, dtype=torch.float64) * 2
    logq_true = -torch.rand(B, generator=g, dtype=torch.float64) * 5 - 1
    logq_noise = -torch.rand((K,) if shared else (B, K), generator=g, dtype=torch.float64) * 5 - 1
    hits = torch.rand(B, K, generator=g) < 0.2
    return s_true, s_noise, logq_true, logq_noise, hits


@pytest.fixture(scope="module")
def noise() -> NoiseDistribution:
    return NoiseDistribution(torch.arange(1, V + 1) ** 2)


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
@pytest.mark.parametrize("shared", [True, False])
def test_loss_and_gradient_match_the_formula(noise, name: str, shared: bool) -> None:
    options = {"remove_accidental_hits": True} if name in ("ranking", "infonce") else {}
    objective = build_objective(name, noise, K, **options).double()
    s_true, s_noise, logq_true, logq_noise, hits = random_inputs(1, shared)
    s_true.requires_grad_(True)
    s_noise.requires_grad_(True)
    loss = objective.loss(s_true, s_noise, logq_true, logq_noise, hits)
    use_hits = hits if name in ("ranking", "infonce") else None
    expected = reference_loss(name, s_true.detach(), s_noise.detach(), logq_true, logq_noise, K, hits=use_hits)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(loss.sum(), [s_true, s_noise])
    # The analytic gradients of the reference: binary NCE gives σ-residuals, the softmax ones softmax − one-hot.
    if name in ("nce", "neg"):
        shift_t = math.log(K) + logq_true if name == "nce" else 0.0
        shift_n = math.log(K) + logq_noise if name == "nce" else 0.0
        torch.testing.assert_close(grads[0], torch.sigmoid(s_true - shift_t) - 1)
        torch.testing.assert_close(grads[1], torch.sigmoid(s_noise - shift_n).expand_as(s_noise))
    else:
        correction = name == "ranking"
        logits = torch.cat(
            [(s_true - logq_true * correction)[:, None], s_noise - logq_noise.expand_as(s_noise) * correction], 1
        ).detach()
        logits[:, 1:] = logits[:, 1:].masked_fill(hits, float("-inf"))
        p = logits.softmax(1)
        torch.testing.assert_close(grads[0], p[:, 0] - 1)
        torch.testing.assert_close(grads[1], p[:, 1:])


def test_the_removed_learned_normalizer_is_a_clear_error(noise) -> None:
    with pytest.raises(NceLmError, match="learned scalar log Z was removed"):
        build_objective("nce", noise, K, normalizer="learned")
    assert not list(build_objective("nce", noise, K, normalizer="self").parameters())


@pytest.mark.parametrize("name", ["nce", "ranking", "infonce"])
def test_a_target_q_cannot_draw_gets_the_limit_of_its_loss(name: str) -> None:
    """log q(w_0) = −inf: ranking's inf − inf becomes its q → 0 limit, 0, with no gradient; the other rows are
    untouched. Binary NCE reaches its limit by itself: the data term is 0, the noise terms stay; InfoNCE, with
    no −log q, is unaffected."""
    s_true, s_noise, logq_true, logq_noise, _ = random_inputs(4, True)
    s_true.requires_grad_(True)
    s_noise.requires_grad_(True)
    excluded = logq_true.clone()
    excluded[2] = float("-inf")
    objective = build_objective(name, NoiseDistribution(torch.ones(V)), K).double()
    loss = objective.loss(s_true, s_noise, excluded, logq_noise)
    reference = objective.loss(s_true, s_noise, logq_true, logq_noise)
    assert torch.isfinite(loss).all()
    keep = torch.arange(B) != 2
    torch.testing.assert_close(loss[keep], reference[keep], rtol=0, atol=0)
    grad_true, grad_noise = torch.autograd.grad(loss.sum(), [s_true, s_noise])
    assert torch.isfinite(grad_true).all() and torch.isfinite(grad_noise).all()
    if name == "infonce":
        assert loss[2] == reference[2]
    elif name == "nce":
        torch.testing.assert_close(loss[2], F.softplus(s_noise[2] - math.log(K) - logq_noise).sum())
        assert grad_true[2] == 0
    else:
        assert loss[2] == 0 and grad_true[2] == 0 and (grad_noise[2] == 0).all()


def test_full_softmax_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(3)
    hidden, weight, bias = torch.randn(B, D, generator=g), torch.randn(V, D, generator=g), torch.randn(V, generator=g)
    targets = torch.randint(0, V, (B,), generator=g)
    objective = build_objective("full", None, 0)
    logits = hidden @ weight.T + bias
    torch.testing.assert_close(
        objective(hidden, weight, bias, targets), F.cross_entropy(logits, targets, reduction="none")
    )
    s_true = logits.gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(
        objective.loss(s_true, logits, None, None), F.cross_entropy(logits, targets, reduction="none")
    )


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_forward_scores_shared_and_per_example_noise_like_the_loss(noise, name: str) -> None:
    """forward = loss(scores computed by hand) for the noise ids it drew (same generator seed)."""
    g = torch.Generator().manual_seed(4)
    hidden, weight, bias = torch.randn(B, D, generator=g), torch.randn(V, D, generator=g), torch.randn(V, generator=g)
    targets = torch.randint(0, V, (B,), generator=g)
    for shared in (True, False):
        objective = build_objective(name, noise, K, shared_noise=shared, generator=torch.Generator().manual_seed(9))
        got = objective(hidden, weight, bias, targets)
        ids = noise.sample((K,) if shared else (B, K), torch.Generator().manual_seed(9))
        ids_bk = ids.expand(B, K) if shared else ids
        scores = hidden @ weight.T + bias  # (B, V)
        s_noise = scores.gather(1, ids_bk)
        s_true = scores.gather(1, targets[:, None]).squeeze(1)
        expected = objective.loss(
            s_true, s_noise, noise.log_probs[targets], noise.log_probs[ids], targets[:, None] == ids_bk
        )
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_accidental_hits_are_removed_only_when_asked(noise) -> None:
    s_true, s_noise, logq_true, logq_noise, hits = random_inputs(5, True)
    hits[:] = False
    hits[0, 0] = True
    kept = build_objective("ranking", noise, K, remove_accidental_hits=False).loss(
        s_true, s_noise, logq_true, logq_noise, hits
    )
    removed = build_objective("ranking", noise, K, remove_accidental_hits=True).loss(
        s_true, s_noise, logq_true, logq_noise, hits
    )
    assert removed[0] < kept[0] and torch.equal(removed[1:], kept[1:])


def test_in_batch_infonce_uses_the_other_targets_as_negatives() -> None:
    g = torch.Generator().manual_seed(6)
    hidden, weight = torch.randn(B, D, generator=g), torch.randn(V, D, generator=g)
    targets = torch.tensor([3, 7, 3, 11, 20, 5])
    loss = build_objective("infonce", None, 0, negatives="batch")(hidden, weight, None, targets)
    scores = hidden @ weight[targets].T  # (B, B)
    for i in range(B):
        negatives = [j for j in range(B) if j != i]  # an equal target elsewhere is a negative too
        expected = torch.logsumexp(torch.cat([scores[i, i : i + 1], scores[i, negatives]]), 0) - scores[i, i]
        torch.testing.assert_close(loss[i], expected)


def test_ranking_nce_and_infonce_coincide_under_uniform_noise() -> None:
    """With q uniform, −log q is the same constant for every candidate: it cancels in the softmax."""
    uniform = NoiseDistribution(torch.ones(V), power=0.0)
    g = torch.Generator().manual_seed(7)
    hidden = torch.randn(B, D, generator=g, requires_grad=True)
    weight = torch.randn(V, D, generator=g, requires_grad=True)
    targets = torch.randint(0, V, (B,), generator=g)
    results = []
    for name in ("ranking", "infonce"):
        objective = build_objective(name, uniform, K, generator=torch.Generator().manual_seed(8))
        loss = objective(hidden, weight, None, targets)
        results.append((loss.detach(), torch.autograd.grad(loss.sum(), [hidden, weight])))
    (loss_r, grads_r), (loss_i, grads_i) = results
    torch.testing.assert_close(loss_r, loss_i)  # here the constant is exactly 0
    for a, b in zip(grads_r, grads_i):
        torch.testing.assert_close(a, b)


def test_registry_and_option_errors(noise) -> None:
    assert set(OBJECTIVES) == {"nce", "neg", "ranking", "sampled", "infonce", "full"}
    with pytest.raises(NceLmError, match="unknown objective 'nec'; choose one of nce"):
        build_objective("nec", noise, 5)
    with pytest.raises(NceLmError, match="at least one noise sample"):
        build_objective("nce", noise, 0)
    with pytest.raises(NceLmError, match="needs a noise distribution"):
        build_objective("ranking", None, 5)
    with pytest.raises(NceLmError, match="normalizer must be 'self'"):
        build_objective("nce", noise, 5, normalizer="per-context")
    with pytest.raises(NceLmError, match="bad option"):
        build_objective("neg", noise, 5, temperature=2.0)


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_shared_noise_path_equals_per_example_path_on_the_same_samples(noise, name: str) -> None:
    """One (B, d) × (d, K) product for shared noise gives what B gathered rows give for the same ids."""
    g = torch.Generator().manual_seed(10)
    hidden, weight, bias = torch.randn(B, D, generator=g), torch.randn(V, D, generator=g), torch.randn(V, generator=g)
    targets = torch.randint(0, V, (B,), generator=g)
    ids = noise.sample((K,), torch.Generator().manual_seed(11))  # (K,)
    shared = build_objective(name, noise, K, shared_noise=True)
    per_example = build_objective(name, noise, K, shared_noise=False)
    shared.sample_noise = lambda t: ids
    per_example.sample_noise = lambda t: ids.expand(t.shape[0], K)  # (B, K), every row the same
    torch.testing.assert_close(shared(hidden, weight, bias, targets), per_example(hidden, weight, bias, targets))


def test_seed_makes_the_noise_reproducible(noise) -> None:
    targets = torch.arange(B)
    draws = [build_objective("nce", noise, K, seed=3).sample_noise(targets) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    expected = noise.sample((K,), torch.Generator().manual_seed(3))
    assert torch.equal(draws[0], expected)
    with pytest.raises(NceLmError, match="generator or a seed"):
        build_objective("nce", noise, K, seed=3, generator=torch.Generator())


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    return math.exp(-_softplus(-x))


def _log_softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    lse = top + math.log(sum(math.exp(z - top) for z in logits))
    return [z - lse for z in logits]


def _reference(name: str, s_true: float, s_noise: list[float], logq_true: float, logq_noise: list[float]):
    """The loss of one example and its gradients with respect to s_true and s_noise, from the closed forms in
    float64 (docs/objectives.md): binary on z = s − log(k q) (nce) or z = s (neg), loss = softplus(−z_0) +
    Σ softplus(z_j), ∂/∂s = −σ(−z_0), σ(z_j); ranking on l = s − log q (ranking) or l = s (infonce), loss =
    −log softmax_0(l), ∂/∂l = softmax(l) − e_0; full: s_noise is the whole row, loss = logsumexp(s_noise) − s_true."""
    k = len(s_noise)
    if name in ("nce", "neg"):
        shift = (lambda lq: lq + math.log(k)) if name == "nce" else (lambda lq: 0.0)
        z_true, z_noise = s_true - shift(logq_true), [s - shift(lq) for s, lq in zip(s_noise, logq_noise)]
        loss = _softplus(-z_true) + sum(_softplus(z) for z in z_noise)
        return loss, -_sigmoid(-z_true), [_sigmoid(z) for z in z_noise]
    if name == "full":
        log_p = _log_softmax(s_noise)
        return -(s_true - (s_noise[0] - log_p[0])), -1.0, [math.exp(lp) for lp in log_p]
    shift = (lambda lq: lq) if name == "ranking" else (lambda lq: 0.0)
    log_p = _log_softmax([s_true - shift(logq_true)] + [s - shift(lq) for s, lq in zip(s_noise, logq_noise)])
    p = [math.exp(lp) for lp in log_p]
    return -log_p[0], p[0] - 1.0, p[1:]


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce", "full"])
def test_extreme_scores_give_the_exact_losses_and_gradients(noise, name: str) -> None:
    """Scores of ±1000 overflow exp in any precision: the losses go through logsigmoid / logsumexp and give the
    closed forms' values and gradients (computed in float64 with math), not merely finite ones."""
    s_true = torch.tensor([1000.0, -1000.0, 0.0, 3.0], requires_grad=True)
    s_noise = torch.tensor([[-1000.0, 1000.0], [1000.0, 0.0], [-1000.0, -1000.0], [1.5, -0.5]], requires_grad=True)
    logq_true, logq_noise = torch.tensor([-3.0, -3.0, -3.0, -1.0]), torch.tensor([-2.0, -0.5])
    loss = build_objective(name, noise if name != "full" else None, 2).loss(s_true, s_noise, logq_true, logq_noise)
    loss.sum().backward()
    for b in range(4):
        want, grad_true, grad_noise = _reference(
            name, s_true[b].item(), s_noise[b].tolist(), logq_true[b].item(), logq_noise.tolist()
        )
        # float32 holds a logit near 1000 to 6e-5: the loss (a difference of two such values) and the gradient
        # (exp of one) carry that error
        assert loss[b].item() == pytest.approx(want, rel=1e-6, abs=2e-4), b
        assert s_true.grad[b].item() == pytest.approx(grad_true, abs=1e-4), b
        assert s_noise.grad[b].tolist() == pytest.approx(grad_noise, abs=1e-4), b


@pytest.mark.parametrize("name", ["nce", "ranking", "full"])
def test_bf16_autocast_computes_the_loss_in_float32(noise, name: str) -> None:
    g = torch.Generator().manual_seed(12)
    hidden, weight, bias = torch.randn(B, D, generator=g), torch.randn(V, D, generator=g), torch.randn(V, generator=g)
    targets = torch.randint(0, V, (B,), generator=g)
    objective = build_objective(name, noise if name != "full" else None, K, seed=13)
    exact = objective(hidden, weight, bias, targets)
    objective = build_objective(name, noise if name != "full" else None, K, seed=13)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = objective(hidden, weight, bias, targets)
    assert mixed.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: scores of size ~3 are off by ~0.02, and so is the loss.
    torch.testing.assert_close(mixed, exact, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_classifier_form_gives_the_same_loss(noise, name: str) -> None:
    """z = s − offset classified binary (nce, neg) or (k + 1)-way (ranking, infonce) reproduces loss()."""
    objective = build_objective(name, noise, K, shared_noise=False).double()
    classifier = objective.classifier(noise.log_probs.double())
    assert classifier.kind == ("binary" if name in ("nce", "neg") else "ranking")
    g = torch.Generator().manual_seed(3)
    targets, noise_ids = torch.randint(V, (B,), generator=g), torch.randint(V, (B, K), generator=g)
    s_true = torch.randn(B, generator=g, dtype=torch.float64)
    s_noise = torch.randn(B, K, generator=g, dtype=torch.float64)
    z_true = s_true - classifier.offsets[targets]  # (B,)
    z_noise = s_noise - classifier.offsets[noise_ids]  # (B, K)
    if classifier.kind == "binary":
        expected = F.softplus(-z_true) + F.softplus(z_noise).sum(-1)
    else:
        expected = torch.logsumexp(torch.cat([z_true[:, None], z_noise], 1), 1) - z_true
    log_probs = noise.log_probs.double()
    actual = objective.loss(s_true, s_noise, log_probs[targets], log_probs[noise_ids])
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_classifier_gradients_are_the_autograd_of_the_objectives_loss(noise, name: str) -> None:
    """NoiseClassifier.loss_and_gradients (the device update's closed form) against autograd of loss(), float64."""
    objective = build_objective(name, noise, K, shared_noise=False).double()
    classifier = objective.classifier(noise.log_probs.double())
    assert classifier.kind == type(objective).classifier_kind
    g = torch.Generator().manual_seed(4)
    targets, noise_ids = torch.randint(V, (B,), generator=g), torch.randint(V, (B, K), generator=g)
    s_true = (3 * torch.randn(B, generator=g, dtype=torch.float64)).requires_grad_(True)
    s_noise = (3 * torch.randn(B, K, generator=g, dtype=torch.float64)).requires_grad_(True)
    log_probs = noise.log_probs.double()
    loss = objective.loss(s_true, s_noise, log_probs[targets], log_probs[noise_ids]).sum()
    g_true, g_noise = torch.autograd.grad(loss, (s_true, s_noise))
    candidates = torch.cat([targets[:, None], noise_ids], 1)  # (B, 1 + K), the data word first
    z = torch.cat([s_true[:, None], s_noise], 1).detach() - classifier.offsets[candidates]
    closed_loss, grad = classifier.loss_and_gradients(z)  # ∂loss/∂z = ∂loss/∂s: z = s − a constant
    torch.testing.assert_close(closed_loss, loss.detach())
    torch.testing.assert_close(grad, torch.cat([g_true[:, None], g_noise], 1))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("name", ["nce", "neg", "ranking", "infonce"])
def test_scores_and_logit_gradients_are_forwards_two_halves(noise, name: str, shared: bool) -> None:
    """Objective.scores then logit_gradients, chained by hand through s = h · u_w + b_w (as the skip-gram torch path
    steps its rows), give forward()'s loss and its autograd gradients for h, the rows and the bias (forward scores
    in float32, so to float32 rounding)."""
    g = torch.Generator().manual_seed(6)
    hidden = torch.randn(B, D, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, D, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(V, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(V, (B,), generator=g)
    options = {"shared_noise": shared, **({"remove_accidental_hits": True} if name == "ranking" else {})}
    loss = build_objective(name, noise, K, seed=8, **options)(hidden, weight, bias, targets).sum()
    loss.backward()
    objective = build_objective(name, noise, K, seed=8, **options)
    noise_ids = objective.sample_noise(targets)  # the same draws: the same seed
    with torch.no_grad():
        h, u_true, u_noise = hidden.detach(), weight[targets], weight[noise_ids]
        s_true, s_noise, hits = objective.scores(h, u_true, u_noise, targets, noise_ids)
        log_probs = noise.log_probs.double()
        summed, g_true, g_noise = objective.logit_gradients(
            s_true + bias[targets], s_noise + bias[noise_ids], log_probs[targets], log_probs[noise_ids], hits
        )
        noise_h = g_noise @ u_noise if shared else torch.bmm(g_noise[:, None], u_noise)[:, 0]  # (B, D)
        grad_h = g_true[:, None] * u_true + noise_h
        grad_w, grad_b = torch.zeros_like(weight), torch.zeros_like(bias)
        grad_w.index_add_(0, targets, g_true[:, None] * h)
        grad_b.index_add_(0, targets, g_true)
        if shared:
            grad_w.index_add_(0, noise_ids, g_noise.T @ h)
            grad_b.index_add_(0, noise_ids, g_noise.sum(0))
        else:
            grad_w.index_add_(0, noise_ids.reshape(-1), (g_noise[:, :, None] * h[:, None]).reshape(-1, D))
            grad_b.index_add_(0, noise_ids.reshape(-1), g_noise.reshape(-1))
    close = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(summed.float(), loss.detach(), **close)
    torch.testing.assert_close(grad_h, hidden.grad, **close)
    torch.testing.assert_close(grad_w, weight.grad, **close)
    torch.testing.assert_close(grad_b, bias.grad, **close)


def test_no_classifier_form_where_the_options_forbid_one(noise) -> None:
    log_probs = noise.log_probs
    assert build_objective("nce", noise, K, shared_noise=True).classifier(log_probs) is None
    assert (
        build_objective("ranking", noise, K, shared_noise=False, remove_accidental_hits=True).classifier(log_probs)
        is None
    )
    assert build_objective("infonce", noise, K, negatives="batch", shared_noise=False).classifier(log_probs) is None
    assert build_objective("full", None, 0).classifier(log_probs) is None


def test_in_batch_infonce_with_a_constant_critic_reports_no_information() -> None:
    """A critic that scores every (context, word) alike carries no information: log B − loss must be 0 exactly,
    however often the batch repeats a target (masking equal targets reported log B − log(B − repeats) > 0)."""
    hidden, weight = torch.zeros(B, D), torch.zeros(V, D)
    targets = torch.tensor([3, 3, 3, 3, 20, 5])  # frequent words repeat in a batch
    loss = build_objective("infonce", None, 0, negatives="batch")(hidden, weight, None, targets)
    torch.testing.assert_close(loss, torch.full((B,), math.log(B)))
