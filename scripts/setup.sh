#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install nce_lm into it.
#
# On a machine without an NVIDIA GPU it installs the CPU build of torch: the local CPU wheel of
# torch 2.13.0 where pip's find-links has one (our build machines), else the newest release from
# PyTorch's CPU-only index; never the multi-GB CUDA build. TORCH_INDEX_URL overrides the index.
# The install compiles the optional C kernel of the CPU skip-gram trainer (setup.py) where a C compiler is
# found. Re-running is cheap: nothing is reinstalled unless pyproject.toml, setup.py or the kernel changed.
# It prints one line per step (pip itself stays quiet) and, at the end, how to put `nce-lm` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
step() { echo "setup: $*"; }
on_path() { step "done. To use nce-lm in this shell: source $VENV/bin/activate  (or run $VENV/bin/nce-lm)"; }
if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtual environment $VENV ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.nce_lm-installed"
want=$(cat pyproject.toml setup.py nce_lm/skipgram/_kernel.c | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "$VENV is up to date"
    on_path
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
        step "installing torch from $TORCH_INDEX_URL (TORCH_INDEX_URL; a few minutes)"
        "${pip[@]}" --index-url "$TORCH_INDEX_URL" torch
    elif command -v nvidia-smi >/dev/null 2>&1; then
        step "installing torch (CUDA build, an NVIDIA GPU is present; several minutes)"
        "${pip[@]}" torch
    elif local_cpu_wheel; then
        step "installing torch 2.13.0 (CPU build, from the local wheel in pip's find-links)"
        "${pip[@]}" "torch==2.13.0"
    else
        step "installing torch (CPU build from https://download.pytorch.org/whl/cpu; a few minutes)"
        "${pip[@]}" --index-url https://download.pytorch.org/whl/cpu torch
    fi
else
    step "torch is already installed: $("$VENV/bin/python" -c "import torch; print(torch.__version__)")"
fi
step "installing nce_lm and its dependencies (numpy, gensim, tokenizers...; compiling the C kernel of the CPU skip-gram trainer)"
"${pip[@]}" --no-build-isolation -e ".[dev]"
if "$VENV/bin/python" -c "import nce_lm.skipgram._kernel" 2>/dev/null; then
    step "compiled the C kernel: CPU skip-gram trains in it"
else
    step "no C kernel (no C compiler found?): CPU skip-gram then trains with the slower torch update"
fi
echo "$want" > "$stamp"
on_path
