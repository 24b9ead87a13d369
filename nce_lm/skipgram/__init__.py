"""Skip-gram and CBOW word vectors with word2vec's semantics, trained with any sampled objective.

``examples`` (a window as skip-gram pairs or CBOW contexts), ``trainer`` (settings, the schedule, the loop,
checkpoints), and its update paths: ``kernel`` (the fused C kernel ``_kernel.c``, CPU) and
``device_update`` (pairs and update on the device, GPU); otherwise the torch path in ``trainer``.
"""
