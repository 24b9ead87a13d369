"""Which device a run uses, and its mixed precision: one code path for the CPU and CUDA.

``--device auto`` (the default of both trainers) is CUDA when torch sees a GPU, else the CPU. Mixed
precision is ``torch.autocast(device.type, dtype=torch.bfloat16, enabled=...)`` on every device, so the
lines a GPU run takes are the lines CI runs on the CPU with ``--precision bf16``; ``auto`` is bf16 on CUDA
and fp32 on the CPU (where bf16 matrix products are emulated on most machines and slower).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import torch

from nce_lm.errors import NceLmError

DEVICES = ("auto", "cpu", "cuda")
# CPU threads a run may ask for: more than the CPUs only wait for each other, far more exhaust the process.
MAX_THREADS = 4 * (os.cpu_count() or 1)
PRECISIONS = ("auto", "fp32", "bf16")


def check_device_name(name: str) -> None:
    """An NceLmError unless ``name`` is auto, cpu, cuda or cuda:N."""
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise NceLmError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``: auto → cuda when available, else cpu. CUDA asked for but absent is an error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NceLmError(f"--device {name} asked for, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NceLmError(f"--device {name}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32 or bf16 for ``name`` on ``device``: auto is bf16 on CUDA, fp32 elsewhere."""
    if name not in PRECISIONS:
        raise NceLmError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return name


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """A fresh autocast context for one forward pass: bf16 matrix products when ``precision`` is bf16."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
