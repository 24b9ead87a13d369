"""Skip-gram and CBOW word vectors with word2vec's semantics, trained with any sampled objective.

In reading order: ``config`` (settings and their defaults), ``windows`` (sentences and shrunk windows of a
token stream), ``examples`` (a window's examples: skip-gram pairs or CBOW contexts), ``trainer`` (the
schedule, the loop, :func:`~nce_lm.skipgram.trainer.train_skipgram`), ``checkpoint`` (the state a run
continues from), and the update paths besides the torch one in ``trainer``: ``kernel`` (the fused C kernel
``_kernel.c``, CPU) and ``device_update`` (examples and update on the device, GPU).
"""
