#!/usr/bin/env bash
# Everything this project needs a GPU for, in one bounded run on a fresh machine with no network.
#
#     scripts/gpu_check.sh OUTDIR                           # on the GPU machine, from the checkout
#     CHECK_DEVICE=cpu PYTHON=.venv/bin/python scripts/gpu_check.sh /tmp/check   # the same steps, tiny, on a CPU
#
# Steps, cheapest first, each under `timeout`, its log in OUTDIR/<step>.log, its table (if any) in
# OUTDIR/<step>.md; a summary table is printed last. The whole run stays under 8 minutes: each step's limit
# is also capped by what is left of that budget. A failed smoke step stops the run (the rest would fail too).
#   smoke      imports, a few skip-gram updates (device and torch path) and LM steps (full, nce) on the device
#   pytest     python -m pytest -m cuda: the GPU update against the CPU's, no host sync inside a batch
#   objectives scripts/bench_objectives.py: forward + backward of every objective, V = 10^4 .. 10^6
#   skipgram   scripts/bench_skipgram.py: WikiText-2, 5 epochs, negative sampling, on the GPU (device and torch
#              updates, row-wise Adagrad, batch 65,536) against gensim on all CPU cores
#   lm         scripts/bench_lm.py: PTB, Zaremba's 2 x 650 LSTM, full, nce and ranking at their defaults, a fixed
#              token budget
#   scaling    scripts/bench_scaling.py --step-timing: the LM's training step at V = 10^4 and 10^6
# CHECK_DEVICE=cpu runs every step on the CPU with tiny budgets (7 minutes on 2 cores), to test this script before GPU time
# is spent (the pytest step then shows the cuda tests skipped, with the reason).
#
# What the checkout must carry (the machine has no network):
#   data:   mkdir -p .data && cp -r ../shared/data/{ptb,wikitext-2,eval} .data/     (read via NCE_LM_DATA)
#   gensim: wheels, downloaded where pip works, installed here into .deps (first step below):
#       python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl gensim==4.4.0 smart_open wrapt
#     (gensim needs smart_open, which needs wrapt; numpy and scipy come with the machine's Python.)
# .data/, .whl/ and .deps/ are in .gitignore. The package runs from the checkout: PYTHONPATH=$PWD, no install.
# Budgets are variables below, so a second run can trade one step's time for another's.

set -o pipefail
export PYTHONUNBUFFERED=1

OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
rm -f "$OUT"/{smoke,pytest,objectives,skipgram,lm,scaling}.{log,md}  # a rerun's table shows this run alone
PY=${PYTHON:-python3}
DEVICE=${CHECK_DEVICE:-cuda}
export NCE_LM_DATA=${NCE_LM_DATA:-$PWD/.data}
export PYTHONPATH=$PWD/.deps:$PWD${PYTHONPATH:+:$PYTHONPATH}
WT2_TRAIN=$NCE_LM_DATA/wikitext-2/wiki.train.tokens.gz

if [ "$DEVICE" = cpu ]; then  # tiny budgets: does every step run at all?
    OBJECTIVES_ARGS=(--device cpu --quick)
    SKIPGRAM_WORDS_LINES=3000  # the first lines of WikiText-2's training text
    SKIPGRAM_ARGS=(--device cpu --threads 1 --epochs 1 --batch-size 4096 --optimizer rowwise-adagrad
                   --objectives neg --kernels device,torch)
    LM_ARGS=(--config small --max-tokens 5000 --objectives full,nce --noise 64 --datasets wikitext-2
             --eval-lines 200 --device cpu)  # PTB is evaluated whole, minutes on 2 cores
    SCALING_ARGS=(--step-timing --vocab-sizes 1000,2000 --objectives full,nce --noise 64 --steps 5 --max-seconds 5
                  --device cpu)
    LIMITS=(smoke=120 pytest=120 objectives=120 skipgram=180 lm=240 scaling=180)
    DEFAULT_BUDGET_S=1200  # 2 shared cores: slower than the GPU run, and not its time
else
    OBJECTIVES_ARGS=(--device "$DEVICE")
    SKIPGRAM_WORDS_LINES=  # all of it: 2.1 million words, 5 epochs
    SKIPGRAM_ARGS=(--device "$DEVICE" --batch-size 65536 --optimizer rowwise-adagrad --objectives neg
                   --kernels device,torch)  # 3 rows (gensim first), each trained, then evaluated on the CPU
    LM_ARGS=(--config full --max-tokens "${LM_TOKENS:-1000000}" --objectives full,nce,ranking --datasets ptb
             --device "$DEVICE")
    SCALING_ARGS=(--step-timing --vocab-sizes 10000,1000000 --objectives full,nce,ranking --noise 1024
                  --max-seconds 8 --device "$DEVICE")
    LIMITS=(smoke=40 pytest=50 objectives=45 skipgram=120 lm=100 scaling=100)
    DEFAULT_BUDGET_S=470  # 8 minutes, less a margin for the kill grace and the summary
fi
BUDGET_S=${BUDGET_S:-$DEFAULT_BUDGET_S}  # the whole run, installation included: each limit is capped by it
DEADLINE=$((SECONDS + BUDGET_S))

limit_of() {  # the seconds step $1 may run: its own limit, capped by what is left of the budget
    local entry own left
    for entry in "${LIMITS[@]}"; do [ "${entry%%=*}" = "$1" ] && own=${entry#*=}; done
    left=$((DEADLINE - SECONDS - 5))
    echo $((own < left ? own : left))
}

ROWS=()
step() {  # step NAME COMMAND...: run it under timeout, log in $OUT/NAME.log, one row of the summary
    local name=$1 limit started rc status
    shift
    limit=$(limit_of "$name")
    if [ "$limit" -lt 5 ]; then
        ROWS+=("| $name | skipped: out of time | 0 | |")
        return 1
    fi
    echo "== $name (limit ${limit}s): $(printf '%s ' "$@" | head -c 160 | tr '\n' ' ')"
    started=$SECONDS
    timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMEOUT after ${limit}s" ;;
        *) status="FAILED (rc $rc)" ;;
    esac
    local last
    last=$(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | cut -c 1-110 | tr '|' '/')
    ROWS+=("| $name | $status | $((SECONDS - started)) | $last |")
    echo "   $status in $((SECONDS - started))s"
    return $rc
}

summary() {
    echo
    local name
    for name in objectives skipgram lm scaling; do
        [ -f "$OUT/$name.md" ] && { echo "### $name"; cat "$OUT/$name.md"; echo; }
    done
    echo "device: $DEVICE; logs and tables in $OUT; $SECONDS s in all"
    echo
    echo "| step | result | seconds | last line of its log |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
}

for dataset in ptb wikitext-2; do
    if [ ! -d "$NCE_LM_DATA/$dataset" ]; then
        echo "no $NCE_LM_DATA/$dataset: copy the corpora first (see the header of $0)" >&2
        exit 2
    fi
done
if ! "$PY" -c 'import gensim' 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gensim is neither importable nor carried as wheels in .whl/ (see the header of $0)" >&2
        exit 2
    fi
    echo "== installing gensim from .whl/ into .deps/"
    timeout 60 "$PY" -m pip install -q --no-index --no-deps --target .deps .whl/*.whl >"$OUT/install.log" 2>&1 ||
        { echo "pip install failed, see $OUT/install.log" >&2; exit 2; }
fi

SMOKE=$(cat <<'PYTHON'
import math, sys, tempfile, time
from pathlib import Path
started = time.perf_counter()
import torch
from nce_lm.lm import LMConfig, train_lm
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram

device, data = sys.argv[1], Path(sys.argv[2])
if device.startswith("cuda"):
    assert torch.cuda.is_available(), "torch sees no CUDA device"
    print("torch", torch.__version__, "on", torch.cuda.get_device_name(), flush=True)
with tempfile.TemporaryDirectory() as tmp:
    text = (data / "ptb" / "ptb.valid.txt").read_text().splitlines()
    small = Path(tmp) / "small.txt"
    small.write_text("\n".join(text[:200]) + "\n")
    for kernel in ("auto", "torch"):
        config = SkipGramConfig(epochs=1, device=device, kernel=kernel, batch_size=16384, optimizer="rowwise-adagrad")
        m = train_skipgram([data / "ptb" / "ptb.valid.txt"], config, progress=False).metrics
        print(f"skipgram kernel={kernel}: ran {m['kernel']} on {m['device']}, loss {m['final_loss']:.4f}, "
              f"{m['words_per_s']:,.0f} words/s", flush=True)
        assert math.isfinite(m["final_loss"])
        assert m["kernel"] == ("device" if kernel == "auto" and device.startswith("cuda") else "torch")
    for objective in ("full", "nce"):
        config = LMConfig(train=str(small), valid=str(small), test=str(small), objective=objective, dim=64,
                          layers=1, epochs=1, max_tokens=3000, device=device, progress=False)
        m = train_lm(config, Path(tmp) / f"lm-{objective}")
        print(f"lm {objective}: test ppl {m['test']['ppl']:.1f}, {m['tokens_per_s']:,.0f} tokens/s", flush=True)
        assert math.isfinite(m["test"]["ppl"])
print(f"smoke ok in {time.perf_counter() - started:.1f}s")
PYTHON
)

if step smoke "$PY" -c "$SMOKE" "$DEVICE" "$NCE_LM_DATA"; then
    step pytest "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/
    step objectives "$PY" scripts/bench_objectives.py "${OBJECTIVES_ARGS[@]}" --output "$OUT/objectives.md"
    corpus=$WT2_TRAIN
    if [ -n "$SKIPGRAM_WORDS_LINES" ]; then
        corpus=$OUT/wikitext-2-head.txt
        (gzip -dc "$WT2_TRAIN" | head -n "$SKIPGRAM_WORDS_LINES" >"$corpus") || true
    fi
    step skipgram "$PY" scripts/bench_skipgram.py "$corpus" "${SKIPGRAM_ARGS[@]}" --output "$OUT/skipgram.md"
    step lm "$PY" scripts/bench_lm.py "${LM_ARGS[@]}" --output "$OUT/lm.md"
    step scaling "$PY" scripts/bench_scaling.py "${SCALING_ARGS[@]}" --output "$OUT/scaling.md"
fi
summary | tee "$OUT/summary.md"
for row in "${ROWS[@]}"; do
    case $row in "| "*" | ok | "*) ;; *) exit 1 ;; esac
done
