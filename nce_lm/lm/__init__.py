"""Neural language models whose output layer is trained with any objective and evaluated exactly.

``config`` (settings), ``data`` (a run's split files and their token ids), ``batches`` (contiguous streams),
``model`` (LSTM, Transformer), ``checkpoint`` (run folders), ``evaluate`` (exact perplexity and
self-normalization), ``train`` (the loop; data-parallel under torchrun through :mod:`nce_lm.training.distributed`),
``language_model`` (a trained run in use: scoring, next words, generation), ``run_log`` and ``plots`` (pictures
of runs).
"""

from nce_lm.lm.config import LMConfig
from nce_lm.lm.evaluate import evaluate_lm
from nce_lm.lm.language_model import LanguageModel
from nce_lm.lm.train import train_lm

__all__ = ["LMConfig", "LanguageModel", "evaluate_lm", "train_lm"]
