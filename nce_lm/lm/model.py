"""Language models that end in hidden states; the output layer (weight (V, d), bias (V,)) is scored by an objective.

* :class:`LSTMNetwork` — Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network
  Regularization": embedding, stacked LSTM, dropout on the non-recurrent connections, optionally the
  output weight tied to the embedding (Press & Wolf 2017; Inan et al. 2017).
* :class:`TransformerNetwork` — a small causal pre-norm Transformer (Vaswani et al. 2017; Radford et
  al. 2019) with learned positions and ``F.scaled_dot_product_attention``; it sees the current window only.

The output bias starts at the log noise-probabilities log q(w) (as Zoph et al. 2016 and Pytorch-NCE do):
with small initial weights s(w, c) ≈ log q(w), so Z(c) ≈ Σ q = 1 and a self-normalized objective starts
where it should end, at log Z(c) ≈ 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nce_lm.lm.config import LMConfig

LOG_Q_FLOOR = -30.0  # bias for words the noise never draws (log q = −inf)
State = tuple[torch.Tensor, torch.Tensor] | None  # the LSTM's (h, c), each (layers, B, d); None for a Transformer


class LanguageNetwork(nn.Module):
    """The network the trainer trains, up to its hidden states: embedding, body, output layer, and the interface
    the trainer uses. The public :class:`nce_lm.lm.language_model.LanguageModel` wraps a trained one with its
    vocabulary to score and generate text."""

    def __init__(self, vocab_size: int, config: LMConfig, log_q: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.dim, sparse=config.sparse_tables)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.drop = nn.Dropout(config.dropout)
        if config.tie_weights:
            self.output_weight = self.embedding.weight  # (V, d), shared
        else:
            self.output_weight = nn.Parameter(torch.empty(vocab_size, config.dim).uniform_(-0.1, 0.1))
        self.output_bias = nn.Parameter(log_q.detach().float().clamp(min=LOG_Q_FLOOR).clone())  # (V,)

    def tables(self) -> dict[str, nn.Parameter]:
        """The (V, ·) parameters by name: input embedding, output weight (unless tied to it), output bias."""
        tables = {"embedding.weight": self.embedding.weight, "output_bias": self.output_bias}
        if self.output_weight is not self.embedding.weight:
            tables["output_weight"] = self.output_weight
        return tables

    def initial_state(self, batch_size: int, device: torch.device) -> State:
        return None

    def detach_state(self, state: State) -> State:
        return state

    def forward(self, inputs: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """inputs (B, T) → (hidden (B, T, d), next state)."""
        raise NotImplementedError


class LSTMNetwork(LanguageNetwork):
    def __init__(self, vocab_size: int, config: LMConfig, log_q: torch.Tensor) -> None:
        super().__init__(vocab_size, config, log_q)
        self.lstm = nn.LSTM(
            config.dim,
            config.dim,
            config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        for name, parameter in self.lstm.named_parameters():
            nn.init.uniform_(parameter, -0.1, 0.1) if "weight" in name else nn.init.zeros_(parameter)
        self.layers, self.dim = config.layers, config.dim

    def initial_state(self, batch_size: int, device: torch.device) -> State:
        zeros = torch.zeros(self.layers, batch_size, self.dim, device=device)
        return zeros, zeros.clone()

    def detach_state(self, state: State) -> State:
        return None if state is None else (state[0].detach(), state[1].detach())

    def forward(self, inputs: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        output, state = self.lstm(self.drop(self.embedding(inputs)), state)
        return self.drop(output), state


class _Block(nn.Module):
    """Pre-norm Transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, dim // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            is_causal=True,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, heads, T, d / heads)
        x = x + self.drop(self.proj(attended.transpose(1, 2).reshape(batch, length, dim)))
        return x + self.drop(self.mlp(self.norm2(x)))


class TransformerNetwork(LanguageNetwork):
    def __init__(self, vocab_size: int, config: LMConfig, log_q: torch.Tensor) -> None:
        super().__init__(vocab_size, config, log_q)
        self.positions = nn.Parameter(torch.zeros(config.seq_len, config.dim))
        self.blocks = nn.ModuleList(_Block(config.dim, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, inputs: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        x = self.drop(self.embedding(inputs) + self.positions[: inputs.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.norm(x), None


def build_model(config: LMConfig, vocab_size: int, log_q: torch.Tensor) -> LanguageNetwork:
    """The model ``config`` names, for V = ``vocab_size`` words with noise log-probabilities ``log_q`` (V,);
    ``config`` is resolved (:meth:`LMConfig.resolved`): whether the tables are row-sparse depends on its optimizer."""
    cls = LSTMNetwork if config.model == "lstm" else TransformerNetwork
    return cls(vocab_size, config, log_q)
