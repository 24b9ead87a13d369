"""CBOW: the fused kernel's update is the gradient of the objective's loss (word2vec's rule for the context
rows), the torch and device paths compute the kernel's update, and CBOW learns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import nce_lm.skipgram.device_update as skipgram_device
import nce_lm.skipgram.kernel as skipgram_kernel
import nce_lm.skipgram.windows as skipgram_windows
from nce_lm.objectives.losses import build_objective
from nce_lm.pipeline.noise import NoiseDistribution
from nce_lm.pipeline.token_cache import cached_token_ids
from nce_lm.pipeline.vocab import build_vocab
from nce_lm.skipgram.config import SkipGramConfig
from nce_lm.skipgram.examples import Examples, cbow_examples
from nce_lm.skipgram.trainer import SkipGramTrainer, train_skipgram
from nce_lm.skipgram.windows import window_examples

needs_kernel = pytest.mark.skipif(
    skipgram_kernel._kernel is None, reason="the C extension was not built (no compiler at install time)"
)

CONFIG = SkipGramConfig(model="cbow", dim=16, epochs=1, min_count=1, sample=0.0, batch_size=64, lr=0.05, threads=1)
OBJECTIVES = [("neg", None), ("nce", None), ("nce", "learned"), ("ranking", "learned"), ("infonce", None)]


def make_trainer(corpus: Path, config: SkipGramConfig, tmp_path: Path) -> SkipGramTrainer:
    vocab = build_vocab([corpus], min_count=1)
    return SkipGramTrainer(config, vocab, np.asarray(cached_token_ids([corpus], vocab, tmp_path / "ids")))


def test_cbow_examples_are_the_windows_of_each_centre() -> None:
    """Every centre with a context word becomes one example holding exactly its skip-gram pairs' context
    words, in their order; a centre alone in its sentence gives none."""
    words = np.arange(100, 120)
    sentence = np.repeat([0, 1, 2], [8, 1, 11])  # the 9th word is a sentence of its own
    pairs = window_examples(words, sentence, 3, np.random.default_rng(4))
    cbow = window_examples(words, sentence, 3, np.random.default_rng(4), "cbow")
    assert len(cbow) == len(words) - 1 and 108 not in cbow.centre.tolist()
    for e, centre in enumerate(cbow.centre.tolist()):
        run = cbow.context[cbow.starts[e] : cbow.starts[e + 1]].tolist()
        assert run == pairs.context[pairs.centre == centre].tolist()
    sliced = cbow.slice(3, 7)
    assert sliced.starts[0] == 0 and sliced.centre.tolist() == cbow.centre[3:7].tolist()
    assert sliced.context.tolist() == cbow.context[cbow.starts[3] : cbow.starts[7]].tolist()


def reference_update(
    tables: dict[str, torch.Tensor], examples: Examples, noise_ids: torch.Tensor, objective, lr: float, train_bias: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """One batch's SGD by autograd on the objective's own loss, in float64: h_e the mean of the context rows,
    s = h · u + b. The output rows and the bias take −lr × their gradient; every context row takes −lr × the
    gradient with respect to its example's h (word2vec.c's and gensim's rule, n_e times autograd's own
    gradient for that row)."""
    v, u, b = (tables[name].double().clone().requires_grad_(True) for name in ("input", "output", "bias"))
    counts = examples.starts.diff()
    example = torch.repeat_interleave(torch.arange(len(examples)), counts)
    h = torch.zeros(len(examples), v.shape[1], dtype=torch.float64).index_add(0, example, v[examples.context])
    h = h / counts[:, None]
    h.retain_grad()
    s_true = (h * u[examples.centre]).sum(-1) + b[examples.centre]
    s_noise = torch.einsum("bd,bkd->bk", h, u[noise_ids]) + b[noise_ids]
    log_q = objective.noise.log_probs.double()
    loss = objective.loss(s_true, s_noise, log_q[examples.centre], log_q[noise_ids]).sum()
    loss.backward()
    assert torch.allclose(
        v.grad, torch.zeros_like(v).index_add(0, examples.context, (h.grad / counts[:, None])[example])
    )
    expected = {
        "input": v.detach().index_add(0, examples.context, -lr * h.grad[example]),
        "output": u.detach() - lr * u.grad,
        "bias": b.detach() - lr * b.grad if train_bias else b.detach(),
    }
    return expected, loss.item()


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("objective_name, bias", OBJECTIVES)
def test_kernel_update_is_the_gradient_of_the_loss(objective_name: str, bias: str | None, threads: int) -> None:
    """A tiny case, computed exactly: 5 words, windows of 1 to 4 words with repeats across and within examples,
    one batch. Catches h summed instead of averaged, the step for h divided by n_e (or not given to every
    context word), a row updated once per example instead of per occurrence, a wrong sign or offset."""
    g = torch.Generator().manual_seed(5)
    vocab, dim, negatives, lr = 5, 6, 3, 0.3
    counts = np.array([40, 30, 20, 10, 5])
    noise = NoiseDistribution(counts, 0.75)
    objective = build_objective(objective_name, noise, negatives, shared_noise=False)
    classifier = objective.classifier(noise.log_probs)
    tables = {
        "input": torch.randn(vocab, dim, generator=g),
        "output": torch.randn(vocab, dim, generator=g),
        "bias": noise.log_probs.clone() if bias else torch.zeros(vocab),
    }
    examples = Examples(
        context=np.array([1, 2, 0, 3, 3, 4, 1, 1, 2, 0], dtype=np.int32),
        centre=np.array([0, 4, 2, 3], dtype=np.int32),
        starts=np.array([0, 2, 6, 7, 10], dtype=np.int64),
    )
    kernel_tables = skipgram_kernel.KernelTables(
        tables["input"].clone().numpy(),
        tables["output"].clone().numpy(),
        tables["bias"].clone().numpy() if bias else None,
        train_bias=bias == "learned",
    )
    seed = 99
    loss = skipgram_kernel.train_examples(
        kernel_tables,
        examples,
        classifier,
        noise,
        negatives,
        batch_size=len(examples),
        threads=threads,
        seed=seed,
        first_pair=0,
        lr_begin=lr,
        lr_end=lr,
    )
    noise_ids = torch.from_numpy(skipgram_kernel.draw_noise(noise, seed, 0, len(examples), negatives))
    expected, expected_loss = reference_update(
        tables, examples.map(lambda a: torch.from_numpy(a).long()), noise_ids, objective, lr, bias == "learned"
    )
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    got = {
        "input": torch.from_numpy(kernel_tables.input_vectors),
        "output": torch.from_numpy(kernel_tables.output_vectors),
    }
    if bias:
        got["bias"] = torch.from_numpy(kernel_tables.output_bias)
    for name, table in got.items():
        torch.testing.assert_close(table.double(), expected[name], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got["input"], tables["input"])


def test_kernel_rejects_an_example_without_context_words() -> None:
    if skipgram_kernel._kernel is None:
        pytest.skip("the C extension was not built")
    noise = NoiseDistribution(np.arange(1, 11))
    tables = skipgram_kernel.KernelTables(np.zeros((10, 4), np.float32), np.zeros((10, 4), np.float32), None)
    classifier = build_objective("neg", noise, 2, shared_noise=False).classifier(noise.log_probs)
    empty = Examples(np.array([3], np.int32), np.array([1, 2], np.int32), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="at least one context word"):
        skipgram_kernel.train_examples(tables, empty, classifier, noise, 2, 4, 1, 0, 0, 0.1, 0.1)


@needs_kernel
@pytest.mark.parametrize("objective, bias", OBJECTIVES)
def test_torch_path_trains_what_the_kernel_trains(
    topic_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    feed_kernel_noise,
    objective: str,
    bias: str | None,
) -> None:
    """One epoch over several chunks and many batches, the torch path fed the kernel's noise words: the same
    tables to float32 rounding."""
    monkeypatch.setattr(skipgram_windows, "CHUNK_TOKENS", 1000)
    config = replace(CONFIG, objective=objective, output_bias=bias)
    fused = make_trainer(topic_corpus, replace(config, kernel="fused"), tmp_path)
    reference = make_trainer(topic_corpus, replace(config, kernel="torch"), tmp_path)
    drawn = feed_kernel_noise(reference, config)
    fused_metrics, reference_metrics = fused.train(progress=False), reference.train(progress=False)
    assert drawn() == 7200  # one example per word: every word of the topic corpus has a neighbour
    for name in ("input_vectors", "output_vectors", "output_bias"):
        ours, theirs = getattr(fused.state, name), getattr(reference.state, name)
        if theirs is None:
            assert ours is None
            continue
        torch.testing.assert_close(torch.as_tensor(ours), theirs, rtol=1e-4, atol=1e-5)  # the kernel trains numpy
    assert fused_metrics["final_loss"] == pytest.approx(reference_metrics["final_loss"], rel=1e-5)


@pytest.mark.parametrize("objective, bias", OBJECTIVES)
def test_device_update_equals_the_torch_paths(
    topic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objective: str, bias: str | None
) -> None:
    """A batch of 300 CBOW examples over 20 words (rows repeated within and across examples), the same noise."""
    config = replace(CONFIG, objective=objective, output_bias=bias, kernel="torch")
    torch_path = make_trainer(topic_corpus, config, tmp_path)
    device = make_trainer(topic_corpus, replace(config, kernel="device"), tmp_path)
    g = torch.Generator().manual_seed(2)
    for trainer in (torch_path, device):
        trainer.state.input_vectors.copy_(
            torch.randn(trainer.state.input_vectors.shape, generator=torch.Generator().manual_seed(0))
        )
        trainer.state.output_vectors.copy_(
            torch.randn(trainer.state.output_vectors.shape, generator=torch.Generator().manual_seed(1)) * 0.1
        )
    counts = torch.randint(1, 9, (300,), generator=g)
    examples = Examples(
        torch.randint(2, 22, (int(counts.sum()),), generator=g),
        torch.randint(2, 22, (300,), generator=g),
        torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
    )
    noise = torch_path.noise.sample((300, config.noise_samples), g)
    monkeypatch.setattr(torch_path.objective, "sample_noise", lambda targets: noise)
    monkeypatch.setattr(device.objective, "sample_noise", lambda targets: noise)
    expected = torch_path.path.update(examples, 0.05)
    loss = device.path.update(examples, 0.05)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for name in ("input_vectors", "output_vectors", "output_bias"):
        ours, theirs = getattr(device.state, name), getattr(torch_path.state, name)
        if theirs is not None:
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_device_examples_are_the_hosts() -> None:
    """The device's CBOW examples equal the host's given the same window draws."""
    n, window = 300, 5
    words = np.random.default_rng(0).integers(0, 40, size=n)
    sentence = np.sort(np.random.default_rng(1).integers(0, 30, size=n))
    reach = np.random.default_rng(7).integers(1, window + 1, size=n)
    expected = window_examples(words, sentence, window, np.random.default_rng(7), "cbow")
    ours = skipgram_device.window_examples(
        torch.from_numpy(words), torch.from_numpy(sentence), torch.from_numpy(reach), window, "cbow"
    )
    for got, want in [(ours.context, expected.context), (ours.centre, expected.centre), (ours.starts, expected.starts)]:
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("kernel", ["auto", "torch"])
@pytest.mark.parametrize("objective", ["neg", "nce", "ranking", "infonce"])
def test_cbow_learns_the_topics(topic_corpus: Path, kernel: str, objective: str) -> None:
    """Words of a topic end up closer to each other than to the other topic's, with every objective."""
    config = replace(CONFIG, epochs=3, batch_size=16, objective=objective, kernel=kernel)
    result = train_skipgram([topic_corpus], config, progress=False)
    unit = result.vectors.unit_vectors()
    index = {w: i for i, w in enumerate(result.vectors.words)}
    a = unit[[index[f"a{i}"] for i in range(10)]]
    b = unit[[index[f"b{i}"] for i in range(10)]]
    within = (a @ a.T)[~np.eye(10, dtype=bool)].mean()
    assert within > (a @ b.T).mean() + 0.3
    assert result.metrics["loss_per_epoch"][-1] < result.metrics["loss_per_epoch"][0]


@needs_kernel
def test_thread_count_does_not_change_cbows_vectors(topic_corpus: Path) -> None:
    config = replace(CONFIG, epochs=2, objective="nce", kernel="fused", output_bias="learned")
    one = train_skipgram([topic_corpus], replace(config, threads=1), progress=False)
    three = train_skipgram([topic_corpus], replace(config, threads=3), progress=False)
    np.testing.assert_array_equal(one.vectors.vectors, three.vectors.vectors)


def test_cbow_examples_from_counts_skip_lonely_centres() -> None:
    examples = cbow_examples(np.array([7, 8, 9]), np.array([1, 2, 3, 4]), np.array([2, 0, 1, 0]))
    assert examples.centre.tolist() == [1, 3] and examples.starts.tolist() == [0, 2, 3]


def test_cbow_starts_at_word2vecs_rate_unless_told() -> None:
    """word2vec.c's default -alpha is 0.05 with -cbow 1 and 0.025 without; row-wise Adagrad keeps its 0.1."""
    assert SkipGramConfig(model="cbow").start_lr() == 0.05
    assert SkipGramConfig(model="skipgram").start_lr() == 0.025
    assert SkipGramConfig(model="cbow", lr=0.01).start_lr() == 0.01
    assert SkipGramConfig(model="cbow", optimizer="rowwise-adagrad").start_lr() == 0.1
