"""nce_lm: noise-contrastive estimation for word embeddings and language models.

Data flows one way: text -> corpus -> vocab -> token ids -> batches -> model + objective -> metrics / exports.
Nothing here runs on import; heavy optional imports (gensim) stay inside the functions that need them.
"""

__version__ = "0.1.0"
