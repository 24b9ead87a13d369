"""nce_lm: noise-contrastive estimation for word embeddings and language models.

Data flows one way: text -> corpus -> vocab -> token ids -> batches -> model + objective -> metrics / exports.
The Python API, in gensim's shape::

    from nce_lm import train_skipgram, SkipGramConfig, WordVectors, train_lm, LMConfig, LanguageModel

Nothing here runs on import: each name is imported from its module at its first use (:func:`__getattr__`), so
``import nce_lm`` loads neither torch nor gensim. This file is the package's front door, above every layer.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train_skipgram": "nce_lm.skipgram.trainer",
    "SkipGramConfig": "nce_lm.skipgram.config",
    "WordVectors": "nce_lm.vectors.word_vectors",
    "train_lm": "nce_lm.lm.train",
    "LMConfig": "nce_lm.lm.config",
    "LanguageModel": "nce_lm.lm.language_model",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """The exported ``name``, imported from its module at the first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nce_lm' has no attribute {name!r}")
    try:
        module = importlib.import_module(_EXPORTS[name])
    except ModuleNotFoundError as err:
        if err.name != _EXPORTS[name]:
            raise
        raise AttributeError(f"nce_lm.{name} needs {_EXPORTS[name]}, which this version does not have") from None
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
