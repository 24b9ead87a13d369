"""The three implementations of the skip-gram and CBOW update behind one interface, and which one a run uses.

Every path computes the same batched update (docs/skipgram.md, "How an update is computed"):

* ``fused``: the C kernel (:class:`nce_lm.skipgram.kernel.FusedKernelPath`), CPU, one process, SGD;
* ``device``: examples, noise and steps on the tables' device (:class:`nce_lm.skipgram.device_update.DeviceUpdatePath`),
  made for a GPU;
* ``torch``: the torch path (:class:`nce_lm.skipgram.torch_update.TorchUpdatePath`), any device, any option.

The trainer chooses one with :func:`choose_path` when it is built and then only calls the interface below.
This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from nce_lm.errors import NceLmError
from nce_lm.skipgram import kernel as fused_kernel

if TYPE_CHECKING:
    from nce_lm.objectives.kinds import NoiseClassifier
    from nce_lm.skipgram.examples import Examples

PATH_NAMES = {"fused": "fused kernel", "device": "device update", "torch": "torch path"}


class UpdatePath(Protocol):
    """What the trainer's epoch loop asks of an update path."""

    name: str  # "fused", "device" or "torch" (SkipGramConfig.kernel)
    threads: int  # the CPU threads it trains with

    def chunks(self, epoch: int) -> Iterator[tuple[Examples, int]]:
        """The epoch's examples, chunk by chunk, each with the number of (subsampled-away included) words it
        covered; a function of (seed, epoch) alone."""
        ...

    def train_chunk(
        self, examples: Examples, epoch: int, first_example: int, words_done: float, words: float
    ) -> tuple[float, int]:
        """Train one chunk's examples, the ``first_example``-th of the epoch onwards, over ``words`` corpus words
        after ``words_done`` (the schedule's clock); returns the summed loss and the number of examples trained
        by this rank."""
        ...


def device_reason(classifier: NoiseClassifier | None) -> str | None:
    """Why the device update cannot run this training, or None when it can (any device, any ranks)."""
    if classifier is None:
        return "the objective's options (shared noise, removed accidental hits) have no per-pair form"
    return None


def choose_path(kernel: str, device: str, world_size: int, classifier: NoiseClassifier | None, optimizer: str) -> str:
    """The update a run uses: ``kernel`` (SkipGramConfig.kernel), or for "auto" the fused kernel where it applies,
    else the device update on CUDA where it applies, else the torch path; asking for one that cannot run is an
    :class:`NceLmError`. ``device``: the run's ("cpu", "cuda:0"...)."""
    reasons = {
        "fused": fused_kernel.unavailable_reason(device, world_size, classifier, optimizer),
        "device": device_reason(classifier),
        "torch": None,
    }
    if kernel == "auto":
        usable = ["fused", "device", "torch"] if device.startswith("cuda") else ["fused", "torch"]
        return next(name for name in usable if reasons[name] is None)
    if reasons[kernel] is not None:
        raise NceLmError(f"the {PATH_NAMES[kernel]} cannot run this training: {reasons[kernel]}")
    return kernel
