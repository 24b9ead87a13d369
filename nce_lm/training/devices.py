"""Which device a run uses, and its mixed precision: one code path for the CPU and CUDA.

``--device auto`` (the default of both trainers) is CUDA when torch sees a GPU, else the CPU. Mixed
precision is ``torch.autocast(device.type, dtype=torch.bfloat16, enabled=...)`` on every device, so the
lines a GPU run takes are the lines CI runs on the CPU with ``--precision bf16``; ``auto`` is bf16 on CUDA
and fp32 on the CPU (where bf16 matrix products are emulated on most machines and slower).

torch is imported only to look for a GPU: on a machine without a GPU driver, :func:`resolve_device_name` says
"cpu" without it, so a CPU run that trains without torch (skip-gram's fused kernel) never imports it.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from nce_lm.errors import NceLmError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
# CPU threads a run may ask for: more than the CPUs only wait for each other, far more exhaust the process.
MAX_THREADS = 4 * (os.cpu_count() or 1)
PRECISIONS = ("auto", "fp32", "bf16")


def default_threads() -> int:
    """torch's default count of CPU threads, known without importing it: OMP_NUM_THREADS when set, else the
    machine's physical cores (hyper-threads counted once; all CPUs where the system does not say)."""
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    cores = {path.read_text() for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/core_cpus_list")}
    return len(cores) or os.cpu_count() or 1


def check_device_name(name: str) -> None:
    """An NceLmError unless ``name`` is auto, cpu, cuda or cuda:N."""
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise NceLmError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def gpu_driver_absent() -> bool:
    """True when torch cannot see a GPU, known without importing it: no NVIDIA driver (/proc/driver/nvidia), no
    WSL GPU (/dev/dxg) and no AMD one (/dev/kfd, ROCm's "cuda" devices), or CUDA_VISIBLE_DEVICES hides every
    device ("" or "-1")."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    drivers = ("/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")
    return hidden or not any(Path(driver).exists() for driver in drivers)


def resolve_device_name(name: str) -> str:
    """The device ``name`` stands for, as torch names it: auto → "cuda" when torch sees a GPU, else "cpu"; "cpu",
    "cuda" and "cuda:N" as given. CUDA asked for but absent is an error. Imports torch only to look for a GPU."""
    check_device_name(name)
    if name == "cpu" or (name == "auto" and gpu_driver_absent()):
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    index = torch.device(name).index
    if not torch.cuda.is_available():
        raise NceLmError(f"--device {name} asked for, but torch sees no CUDA device")
    if index is not None and index >= torch.cuda.device_count():
        raise NceLmError(f"--device {name}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
    return name


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name`` (:func:`resolve_device_name`)."""
    return torch_device(resolve_device_name(name))


def torch_device(name: str) -> torch.device:
    """``torch.device(name)``, with the CPU's vector math settled first (:func:`settle_cpu_math`)."""
    import torch

    device = torch.device(name)
    if device.type == "cpu":
        settle_cpu_math()
    return device


@functools.cache
def settle_cpu_math() -> None:
    """Run one multi-threaded ``torch.exp`` that nothing reads, once per process, before any that a run reads.

    Measured (2026-12-02, torch 2.13.0+cpu, 2 threads, Intel Xeon with AVX-512, docs/reliability.md): the first
    exp of a process over a tensor large enough to be split between threads sometimes (3 processes of 20 on a
    busy machine) computes one thread's share with a less precise exp — relative error up to 1.5e-4 instead of
    6e-8 — and every later call is precise. The exp is Intel MKL's vector math (MKL_ENABLE_INSTRUCTIONS changes
    which elements differ; MKL's reproducible mode MKL_CBWR=AVX2 removes it, at 1.2-2.6x the time of products
    and exps). The full softmax's first log Z goes through that exp, so a 2-thread ``lm train`` did not repeat
    bit for bit. With this call first, 40 processes of 40 gave the precise exp on their first real call.
    """
    import torch

    torch.exp(torch.ones(2**16 * max(1, torch.get_num_threads())))


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32 or bf16 for ``name`` on ``device``: auto is bf16 on CUDA, fp32 elsewhere."""
    if name not in PRECISIONS:
        raise NceLmError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return name


@functools.cache
def cpu_bf16_lstm_problem() -> str | None:
    """Why torch cannot run an LSTM under bf16 autocast on this CPU, or None where it can.

    On the CPU such an LSTM runs in oneDNN, which builds a bf16 LSTM only for some CPUs: on a 2-core AMD EPYC
    with AVX2 and no AVX-512 (2026-12-02, torch 2.13.0+cpu) it raises "could not create a primitive descriptor
    for the LSTM forward propagation primitive". One forward pass of a tiny LSTM answers it, once a process.
    """
    import torch

    lstm = torch.nn.LSTM(8, 8)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 8))
    except RuntimeError as err:
        first_sentence = str(err).splitlines()[0].split(". ")[0]
        return f"torch's oneDNN has no bf16 LSTM for this CPU ({first_sentence})"
    return None


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """A fresh autocast context for one forward pass: bf16 matrix products when ``precision`` is bf16."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
