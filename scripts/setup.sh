#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install nce_lm into it.
#
# On a machine without an NVIDIA GPU it installs the CPU build of torch: the local CPU wheel of
# torch 2.13.0 where pip's find-links has one (our build machines), else the newest release from
# PyTorch's CPU-only index; never the multi-GB CUDA build. TORCH_INDEX_URL overrides the index.
# The install compiles the optional C kernel of the CPU skip-gram trainer (setup.py) where a C compiler is
# found. Re-running is cheap: nothing is reinstalled unless pyproject.toml, setup.py or the kernel changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.nce_lm-installed"
want=$(cat pyproject.toml setup.py nce_lm/skipgram/_kernel.c | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# True when one of pip's find-links folders holds the CPU wheel of torch 2.13.0 for this machine.
local_cpu_wheel() {
    local links="${PIP_FIND_LINKS:-$("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true)}"
    local folder
    for folder in $links; do
        compgen -G "${folder#file://}/torch-2.13.0+cpu-*.whl" >/dev/null && return 0
    done
    return 1
}
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "${pip[@]}" --index-url "$TORCH_INDEX_URL" torch
    elif command -v nvidia-smi >/dev/null 2>&1; then
        "${pip[@]}" torch
    elif local_cpu_wheel; then
        "${pip[@]}" "torch==2.13.0"
    else
        "${pip[@]}" --index-url https://download.pytorch.org/whl/cpu torch
    fi
fi
"${pip[@]}" --no-build-isolation -e ".[dev]"
echo "$want" > "$stamp"
