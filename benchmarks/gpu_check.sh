#!/usr/bin/env bash
# benchmarks/gpu_check.sh: everything the GPU part of LatentLab still owes, in one run of under 8 minutes on a CUDA
# machine (an H100 or H200). From the repository root, with the venv's python:
#
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh [--out DIR] [--quick] [--dry-run]
#
# Steps, each with its own timeout (they add up to less than 8 minutes, and no step is given more than what is left):
#   1 gpu         nvidia-smi and PyTorch's view of the GPU
#   2 cuda-tests  pytest on tests/test_fast_path.py, tests/test_compile_graphs.py and every test file gated on
#                 torch.cuda.is_available(); here a CUDA test that skips is a failure
#   3 throughput  benchmarks/train_throughput.py --device cuda --presets standard --epoch: the eager fp32 batch-64
#                 step, then each speed-up, then the trainer end to end on a CelebA-sized uint8 cache (162,770
#                 images), one epoch of it timed, the torch.compile graph count and the peak GPU memory
#                 (torch.cuda.max_memory_allocated); the targets are printed as met / NOT met:
#                 >= 100,000 images/s end to end, >= 10x the eager fp32 batch-64 step, a CelebA epoch <= 2 s
#   4 nccl        torchrun --nproc_per_node=1 benchmarks/nccl_check.py: an NCCL all-reduce and one DDP step
#   5 torchrun    torchrun --nproc_per_node=1 -m core train --dataset synthfaces --device cuda for a few steps into
#                 DIR/runs; its status.json must say finished
# Logs: DIR/NN-step.log per step and DIR/summary.txt. Exit status: 0 when every step passed, 1 when one failed or
# timed out (missed targets are reported, not failures), 2 for a bad option or when no CUDA GPU is visible.
set -euo pipefail

PYTHON=${PYTHON:-python}
BIG_BATCH=${BIG_BATCH:-1024}  # the larger batch train_throughput.py tries after the speed-ups
BUDGET=460                    # seconds for all steps together: under 8 minutes with the start-up checks
OUT="" QUICK=0 DRY=0

usage() {
    cat <<EOF
usage: bash benchmarks/gpu_check.sh [--out DIR] [--quick] [--dry-run] [--help]

Runs the GPU checks LatentLab still owes on a CUDA machine (H100/H200) in under 8 minutes: the CUDA tests, the
training throughput table (eager fp32 batch-64 step, each speed-up, end to end on a CelebA-sized uint8 cache,
one epoch timed, torch.compile graph count, peak GPU memory), an NCCL check and a 1-process torchrun training run.

  --out DIR    where the logs go (default: \${TMPDIR:-/tmp}/latentlab-gpu-check-<date>-<time>)
  --quick      fewer timed steps and shorter timeouts (about 6 minutes at most)
  --dry-run    print the commands it would run and exit 0 (no GPU needed)
  --help       this text

Environment: PYTHON (default: python; use the venv's, e.g. PYTHON=.venv/bin/python), BIG_BATCH (default 1024).
Exit status: 0 all steps passed; 1 a step failed or timed out; 2 a bad option, or no CUDA GPU visible.
EOF
}

die() { echo "gpu_check.sh: $*" >&2; exit 2; }

while (($#)); do
    case "$1" in
        --out) (($# >= 2)) || die "--out needs a folder (see --help)"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --quick) QUICK=1; shift ;;
        --dry-run) DRY=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ -n $OUT ]] || OUT=${TMPDIR:-/tmp}/latentlab-gpu-check-$(date +%Y%m%d-%H%M%S)
[[ $OUT == /* ]] || OUT=$PWD/$OUT
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if ((!DRY)); then
    command -v "$PYTHON" >/dev/null || die "no python at '$PYTHON': set PYTHON to the venv's (PYTHON=.venv/bin/python)"
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        die "no CUDA GPU is visible (torch.cuda.is_available() is False for $PYTHON): this script measures the GPU" \
            "(an H100/H200); run it on a CUDA machine, or pass --dry-run to list its steps"
    fi
fi

PY=$(printf %q "$PYTHON")
RUN_NAME=gpu-check-torchrun-$(date +%H%M%S)
RUNS=$(printf %q "$OUT/runs")
mapfile -t GATED < <(grep -l 'cuda.is_available()' tests/test_*.py || true)
CUDA_TESTS=$(printf '%s\n' tests/test_fast_path.py tests/test_compile_graphs.py "${GATED[@]}" | awk '!seen[$0]++' |
             paste -sd ' ')
if ((QUICK)); then
    TIMED="--steps 5 --warmup 3"
    LIMITS=(20 80 160 35 55)
else
    TIMED=""
    LIMITS=(20 100 240 35 65)
fi

NAMES=(gpu cuda-tests throughput nccl torchrun)
COMMANDS=(
    "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; $PY -c 'import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"on\", torch.cuda.get_device_name(0), \"x\", torch.cuda.device_count())'"
    "$PY -m pytest -q -rs $CUDA_TESTS"
    "$PY benchmarks/train_throughput.py --device cuda --presets standard --big-batch $BIG_BATCH --no-synthfaces --epoch $TIMED"
    "$PY -m torch.distributed.run --standalone --nproc_per_node=1 benchmarks/nccl_check.py"
    "$PY -m torch.distributed.run --standalone --nproc_per_node=1 -m core --runs-dir $RUNS train --dataset synthfaces --device cuda --name $RUN_NAME --steps 30 --batch-size 256 --log-every 10 --val-every 30 --val-images 256 --checkpoint-every 30 --sample-every 30 && $PY -c 'import json, sys; s = json.load(open(sys.argv[1])); print(\"status.json:\", {k: s.get(k) for k in (\"state\", \"step\", \"total_steps\", \"device\")}); sys.exit(s[\"state\"] != \"finished\")' $RUNS/$RUN_NAME/status.json"
)

if ((DRY)); then
    echo "gpu_check.sh --dry-run: from $ROOT, logs to $OUT; would run (timeout in seconds):"
    for i in "${!NAMES[@]}"; do
        printf '%d %s (%ss): %s\n' $((i + 1)) "${NAMES[$i]}" "${LIMITS[$i]}" "${COMMANDS[$i]}"
    done
    exit 0
fi

mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$SECONDS
RESULTS=()
FAILED=0
for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]} limit=${LIMITS[$i]} command=${COMMANDS[$i]}
    left=$((BUDGET - (SECONDS - START)))
    ((limit <= left)) || limit=$left
    if ((limit < 10)); then
        RESULTS+=("$name: SKIPPED (the 8-minute budget is spent)")
        FAILED=1
        continue
    fi
    log=$OUT/$(printf %02d $((i + 1)))-$name.log
    echo "== $((i + 1)) $name (timeout ${limit}s): $command"
    t0=$SECONDS
    set +e
    timeout -k 10 "$limit" bash -c "$command" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    if ((rc == 0)) && [[ $name == cuda-tests ]] && grep -q 'NO CUDA GPU HERE' "$log"; then
        rc=3  # a CUDA test skipped on a CUDA machine
    fi
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMED OUT after ${limit}s" ;;
        3) status="FAILED (CUDA tests skipped)" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    ((rc == 0)) || FAILED=1
    RESULTS+=("$name: $status in $((SECONDS - t0)) s (log: $log)")
done

{
    echo "== gpu_check.sh summary ($((SECONDS - START)) s; logs in $OUT)"
    printf '%s\n' "${RESULTS[@]}"
    throughput=$OUT/03-throughput.log
    if [[ -f $throughput ]]; then
        echo "-- throughput table (standard preset, then the peer):"
        grep -E '^\|' "$throughput" || echo "(no table: see the [train_throughput] lines of $throughput)"
        grep -E 'target|epoch of|torch.compile graphs|peak GPU memory|matmul peak' "$throughput" | grep -v '^\[' || true
    fi
    grep -h 'NCCL ok' "$OUT/04-nccl.log" 2>/dev/null || true
    grep -h 'status.json:' "$OUT/05-torchrun.log" 2>/dev/null || true
} | tee "$OUT/summary.txt"
exit "$FAILED"
