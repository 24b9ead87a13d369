"""A trained language model to use: load a run folder, score sentences, predict the next word, generate text.

Sentences are tokenized as the run's vocabulary was (its :class:`~nce_lm.pipeline.corpus.TokenizerConfig`),
words outside it become ``<unk>``, and each sentence is scored on its own as the trainer sees a line: from the
model's initial state with ``<eos>`` (the end of the line before) as the first input, predicting every word and
then ``<eos>`` — n + 1 log-probabilities for n words. ``lm eval`` instead reads a file as one stream, each
line's context running on from the lines before (docs/lm.md, "Scoring, sampling and plots").

Two normalizations of the score s(w, c) = h_c · u_w + b_w:

* ``exact``: log p(w | c) = s(w, c) − log Z(c), log Z over the whole vocabulary (O(V d) per token), as
  :mod:`nce_lm.lm.evaluate` computes it.
* ``self``: s(w, c) itself taken as the log-probability, Z(c) = 1 assumed (O(d) per token): the
  self-normalization that NCE teaches a model (Mnih & Teh 2012; Vaswani et al. 2013; Devlin et al. 2014).
  It is a log-probability only as far as log Z(c) ≈ 0, which ``lm eval`` measures (mean and std of log Z).

Sentences are scored in batches of similar length, padded at the end (both models are causal, so padding
never reaches a real position), on the model's device, in windows of the run's ``seq_len`` with the LSTM's
state carried across (the Transformer starts each window afresh, as in evaluation).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from nce_lm.errors import NceLmError
from nce_lm.lm.batches import windows
from nce_lm.lm.checkpoint import load_run
from nce_lm.lm.config import LMConfig
from nce_lm.lm.model import LanguageNetwork, State
from nce_lm.objectives.kinds import objective_kind
from nce_lm.objectives.partition import exact_log_z
from nce_lm.pipeline.vocab import Vocab

Sentence = str | Sequence[str]  # a text (tokenized as the run's vocabulary says) or a list of tokens
NORMALIZATIONS = ("exact", "self")
CHECKPOINTS = ("best", "last")
SCORE_BATCH = 64  # sentences per batch when scoring


class LanguageModel:
    """A trained language model with its vocabulary and settings, ready to score and to generate.

    Build it with :meth:`load` from a run folder of ``nce-lm lm train`` / :func:`nce_lm.lm.train_lm`. The network
    (:mod:`nce_lm.lm.model`) is kept in evaluation mode (no dropout) on its device.
    """

    def __init__(self, network: LanguageNetwork, vocab: Vocab, config: LMConfig) -> None:
        self.network = network.eval()
        self.vocab = vocab
        self.config = config

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike[str], checkpoint: str = "best", device: str | None = None
    ) -> LanguageModel:
        """The model of a run folder: ``best.pt`` (best validation perplexity) or ``last.pt``, on ``device``
        (default: the run's own, ``auto`` choosing CUDA when visible). Checkpoints are read with
        ``torch.load(weights_only=True)``; a missing or mismatched file is an :class:`NceLmError`."""
        if checkpoint not in CHECKPOINTS:
            raise NceLmError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
        run = load_run(Path(run_dir), which=checkpoint, device=device)
        return cls(run.model, run.vocab, run.config)

    @property
    def device(self) -> torch.device:
        return self.network.output_bias.device

    @property
    def self_normalized(self) -> bool:
        """Whether the training objective taught log Z(c) ≈ 0 (binary NCE); for the others Z(c) is free."""
        return objective_kind(self.config.objective).self_normalized

    def tokenize(self, sentence: Sentence) -> list[str]:
        """The tokens of ``sentence``: a string split as the run's vocabulary was built (its lines joined), a
        list of tokens as given."""
        if isinstance(sentence, str):
            return [token for line in self.vocab.tokenizer.tokenize_lines(sentence) for token in line]
        if not all(isinstance(token, str) for token in sentence):
            raise NceLmError("a sentence must be a string or a list of string tokens")
        return list(sentence)

    def _ids(self, sentence: Sentence) -> torch.Tensor:
        """``<eos>``, the sentence's ids, ``<eos>``: (n + 2,) int64, inputs and targets of its n + 1 tokens."""
        eos = self.vocab.eos_id
        words = self.vocab.encode(self.tokenize(sentence))
        return torch.tensor([eos, *words.tolist(), eos], dtype=torch.int64)

    @torch.no_grad()
    def log_probs(self, sentences: Sequence[Sentence], normalize: str = "exact") -> list[torch.Tensor]:
        """log p of every token of every sentence: one float64 CPU tensor (n_i + 1,) per sentence of n_i words,
        the last entry for ``<eos>``. ``normalize``: ``exact`` (log-softmax over the vocabulary) or ``self``
        (the raw score h · u + b, with no log Z: O(d) per token; see the module docstring)."""
        if normalize not in NORMALIZATIONS:
            raise NceLmError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        if isinstance(sentences, str):
            raise NceLmError("log_probs takes a list of sentences; wrap a single one in a list")
        ids = [self._ids(sentence) for sentence in sentences]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths together: little padding
        scores: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        for start in range(0, len(order), SCORE_BATCH):
            batch = order[start : start + SCORE_BATCH]
            for index, row in zip(batch, self._score_batch([ids[i] for i in batch], normalize == "exact")):
                scores[index] = row
        return scores

    def _score_batch(self, ids: list[torch.Tensor], exact: bool) -> list[torch.Tensor]:
        """Log-probabilities of the targets of each (n_i + 2,) id tensor, padded into one (B, L + 1) batch."""
        lengths = [len(row) - 1 for row in ids]  # targets per sentence
        streams = torch.full((len(ids), max(lengths) + 1), self.vocab.eos_id, dtype=torch.int64)  # (B, L + 1)
        for row, sentence in enumerate(ids):
            streams[row, : len(sentence)] = sentence
        streams = streams.to(self.device)
        real = torch.arange(max(lengths), device=self.device) < torch.tensor(lengths, device=self.device)[:, None]
        out = torch.zeros(real.shape, dtype=torch.float64, device=self.device)  # (B, L)
        weight, bias = self.network.output_weight, self.network.output_bias
        state = self.network.initial_state(len(ids), self.device)
        for position, inputs, targets in windows(streams, self.config.seq_len):
            hidden, state = self.network(inputs, state)  # (B, T, d)
            width = targets.shape[1]
            keep = real[:, position : position + width]  # (B, T): scored, not padding
            h, target = hidden[keep], targets[keep]  # (M, d), (M,)
            score = (h.double() * weight[target].double()).sum(-1) + bias[target].double()  # (M,)
            if exact:
                score = score - exact_log_z(h, weight, bias).double()
            out[:, position : position + width][keep] = score
        out = out.cpu()
        return [out[row, :length] for row, length in enumerate(lengths)]

    def perplexity(self, texts: Sequence[Sentence], normalize: str = "exact") -> float:
        """exp of the mean negative log-probability over every token of ``texts`` (each one sentence, its
        ``<eos>`` counted), as :meth:`log_probs` scores them."""
        scores = torch.cat(self.log_probs(texts, normalize))
        if scores.numel() == 0:
            raise NceLmError("no sentences to score")
        return float(torch.exp(-scores.mean()))

    def _context_hidden(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """The hidden state (d,) after reading ``ids`` (T,) and the next state: the LSTM reads all of them from
        ``state``, the Transformer the last ``seq_len`` (all it can attend to)."""
        if self.config.model == "transformer":
            ids, state = ids[-self.config.seq_len :], None
        hidden, state = self.network(ids[None].to(self.device), state)  # (1, T, d)
        return hidden[0, -1], state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The scores (V,) of every word after the hidden state (d,)."""
        return self.network.output_weight @ hidden + self.network.output_bias

    @torch.no_grad()
    def next_words(self, context: Sentence, topk: int = 10) -> list[tuple[str, float]]:
        """The ``topk`` most probable next words after ``context`` (a sentence's beginning; ``""`` for its first
        word) with their exact probabilities, softmax over the vocabulary, most probable first."""
        if topk < 1:
            raise NceLmError(f"topk must be at least 1, got {topk}")
        hidden, _ = self._context_hidden(self._ids(context)[:-1])
        probs = torch.softmax(self._logits(hidden).double(), dim=0)  # (V,)
        values, indices = probs.topk(min(topk, len(self.vocab)))
        return [(self.vocab.tokens[i], p) for i, p in zip(indices.tolist(), values.tolist())]

    @torch.no_grad()
    def generate(
        self,
        prompt: Sentence = "",
        max_new_tokens: int = 50,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
    ) -> str:
        """Sample ``max_new_tokens`` tokens after ``prompt`` (a sentence's beginning), each from the softmax of
        the scores divided by ``temperature``, restricted to the ``top_k`` best words when given. The draws come
        from a generator of their own seeded with ``seed``: the same seed gives the same text on the same
        device. Returns the new tokens joined by spaces, each ``<eos>`` as a line break."""
        if max_new_tokens < 0 or temperature <= 0 or (top_k is not None and top_k < 1):
            raise NceLmError("max_new_tokens must be at least 0, temperature positive and top_k at least 1")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        context = self._ids(prompt)[:-1]
        hidden, state = self._context_hidden(context)
        lines: list[list[str]] = [[]]
        for _ in range(max_new_tokens):
            logits = self._logits(hidden) / temperature  # (V,)
            if top_k is not None and top_k < len(logits):
                threshold = logits.topk(top_k).values[-1]
                logits = logits.masked_fill(logits < threshold, float("-inf"))
            token = torch.multinomial(torch.softmax(logits, dim=0), 1, generator=generator)  # (1,)
            word = int(token)
            if word == self.vocab.eos_id:
                lines.append([])
            else:
                lines[-1].append(self.vocab.tokens[word])
            if self.config.model == "transformer":
                context = torch.cat([context, token.cpu()])
                hidden, state = self._context_hidden(context)
            else:
                hidden, state = self._context_hidden(token, state)
        return "\n".join(" ".join(line) for line in lines)
