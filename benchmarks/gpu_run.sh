#!/usr/bin/env bash
# One prepared GPU run (issue 23): the gpu tests, the step and sweep benchmarks at batch 100/300/600
# (torch eager, torch compiled, JAX), the host-time benchmark at 784-8-10 batch 10 (issue 31: every
# path's steps/s ceiling on this card), and the whole grid on the GPU, in one call of at most 9
# minutes.
#
#   OUT=/some/dir benchmarks/gpu_run.sh             # on the GPU machine, from the repository root
#   OUT=/tmp/x benchmarks/gpu_run.sh --dry-run      # on a CPU: the same stages, tiny sizes (a test)
#
# Needs only what the GPU image has (Python 3.12, torch, jax with CUDA, flax, optax; no
# tensorflow-datasets, no Ray, no network): MNIST comes from $DATA_DIR (default .device-data/mnist,
# the git-ignored folder carried to the machine). Everything goes to $OUT/<gpu>-grid/: one log per
# stage (<stage>.log, with `uptime` before and after), results.jsonl and report.md of the grid.
#
# Resumable: a stage whose log ends in "stage done" in $OUT/<gpu>-grid or in
# docs/results/<gpu>-grid (where a finished run's folder is committed) is skipped; the grid starts
# from the results.jsonl found there (compare.py resumes it). A cut call loses at most the stage it
# was in. The grid runs both backends on their fastest correct path: the sweep engine (a scanned,
# jitted epoch in JAX; the stacked step in torch), torch eager by default, since torch.compile
# compiles once per group (27 groups) and costs more than it saves over one grid; GRID_COMPILE=true
# runs compiled torch instead (read bench_sweep.log's "first call" and step columns to choose).
set -euo pipefail

DRY=false
[[ "${1:-}" == "--dry-run" ]] && DRY=true
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA_DIR=${DATA_DIR:-.device-data/mnist}
BUDGET_S=${BUDGET_S:-530}  # 9 minutes less a margin for the copy back
: "${OUT:?set OUT to the folder whose files come back}"
# JAX would take 75 % of the GPU up front; torch runs in the same processes.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if $DRY; then
    DEVICE=cpu GPU=cpu-dry
    STEP_ARGS=(--config smoke --set output=logits --set batch_size=600 --steps 3 --rounds 1)
    SWEEP_ARGS=(--batches 600 --hidden 16 --members 2 --steps 3 --rounds 1)
    HOST_ARGS=(--steps 3 --rounds 1 --no-torch-compile)  # torch's compiles: tests/test_compiled.py
    GRID_ARGS=(--config smoke --set epochs=1)
else
    DEVICE=gpu
    GPU=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
    STEP_ARGS=(--set batch_size=100,300,600 --steps 200 --rounds 5)
    SWEEP_ARGS=(--batches 100,300,600 --steps 60 --rounds 3)
    HOST_ARGS=(--steps 300 --rounds 5)
    GRID_ARGS=(--config grid --set "compile=${GRID_COMPILE:-false}")
fi
DEST="$OUT/$GPU-grid"
KEPT="docs/results/$GPU-grid"
mkdir -p "$DEST"
if [[ -f "$KEPT/results.jsonl" && ! -f "$DEST/results.jsonl" ]]; then
    cp "$KEPT/results.jsonl" "$DEST/"  # resume the grid where an earlier call left it
fi
left() { echo $((BUDGET_S - SECONDS)); }

# stage NAME SECONDS COMMAND...: run COMMAND into $DEST/NAME.log unless done before.
stage() {
    local name=$1 limit=$2 log="$DEST/$1.log"
    shift 2
    for done_log in "$log" "$KEPT/$name.log"; do
        if [[ -f "$done_log" ]] && tail -n 1 "$done_log" | grep -q "^stage done"; then
            echo "[gpu_run] $name: done before ($done_log), skipped"
            [[ "$done_log" == "$log" ]] || cp "$done_log" "$log"
            return 0
        fi
    done
    ((limit > $(left))) && limit=$(left)
    if ((limit < 20)); then
        echo "[gpu_run] $name: no time left in this call; run the script again to resume"
        return 0
    fi
    echo "[gpu_run] $name: up to ${limit}s, log $log"
    local start=$SECONDS code=0
    { echo "uptime: $(uptime)"; echo "+ $*"; } >"$log"
    timeout --signal=TERM "$limit" "$@" >>"$log" 2>&1 || code=$?
    echo "uptime: $(uptime)" >>"$log"
    tail -n 3 "$log" | sed "s/^/[gpu_run] $name | /"
    if ((code == 0)); then
        echo "stage done in $((SECONDS - start)) s" >>"$log"
    else
        echo "[gpu_run] $name: exit $code after $((SECONDS - start)) s (cut or failed; see $log)"
    fi
}

stage tests 150 "$PYTHON" -m pytest tests/test_gpu.py -m gpu -q -rs -p no:cacheprovider
stage bench_step 120 "$PYTHON" benchmarks/bench_step.py "${STEP_ARGS[@]}" \
    --device "$DEVICE" --data-dir "$DATA_DIR"
stage bench_sweep 150 "$PYTHON" benchmarks/bench_sweep.py "${SWEEP_ARGS[@]}" \
    --device "$DEVICE" --data-dir "$DATA_DIR"
stage bench_host 120 "$PYTHON" benchmarks/bench_host.py "${HOST_ARGS[@]}" \
    --device "$DEVICE" --data-dir "$DATA_DIR"
grid_start=$SECONDS
stage grid "$(left)" "$PYTHON" compare.py "${GRID_ARGS[@]}" --engine sweep --device "$DEVICE" \
    --data-dir "$DATA_DIR" --out "$DEST" --quiet
echo "[gpu_run] grid wall time this call, compilation included: $((SECONDS - grid_start)) s"
echo "[gpu_run] all stages: $SECONDS s; outputs in $DEST (commit them as $KEPT)"
