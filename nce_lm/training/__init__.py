"""What both trainers (skip-gram and the language model) share.

``devices`` (device and precision choice), ``distributed`` (torchrun process groups), ``resume`` (the
settings a resumed run may change), ``rowwise_adagrad`` and ``sparse_rows`` (updates that touch only the
rows a step used), ``memory`` (refusing settings that cannot fit before allocating), ``preemption`` (SIGTERM and
SIGINT, and periodic checkpoints).
"""
