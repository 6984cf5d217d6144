#!/usr/bin/env bash
# One prepared GPU call that cannot waste itself (issues 23, 29). From the repository root:
#
#   OUT=/some/dir benchmarks/gpu_run.sh              # on the GPU machine
#   OUT=/tmp/x benchmarks/gpu_run.sh --dry-run       # on a CPU: the same stages, tiny sizes
#   STAGES="grid" OUT=/some/dir benchmarks/gpu_run.sh  # some stages only (names: the plan below)
#
# Preflight first, in seconds: the four MNIST .gz files in $DATA_DIR (default .device-data/mnist,
# the git-ignored folder carried to the machine) and a GPU that torch and JAX both see (not with
# --dry-run); else one line and exit 2. Every stage reads MNIST from $DATA_DIR alone: --data-dir,
# MLP_TWINS_DATA and MLP_TWINS_DATASETS point there and the cache is a fresh one, so datasets
# beside the checkout, an old cache or tensorflow-datasets cannot stand in for it; the tests run
# with CI=true, so a test that skips for lack of data fails.
#
# What comes back: $OUT/<gpu>-grid/ (<gpu> the model, from gpu_run.py: h100, h200, a100, ...;
# cpu-dry with --dry-run), at most 7 files: summary.md (the plan, each stage's state and why, the
# benchmark tables), results.jsonl (the grid's records) and one log per stage that ran. Commit that
# folder as docs/results/<gpu>-grid and rebuild the report there:
# python compare.py --report docs/results/<gpu>-grid.
#
# A stage is done only when its own criterion holds (gpu_run.py): the tests with something passed
# and nothing skipped or failed; a benchmark with every row of its table printed; the grid with no
# run whose last record is an error (compare.py trains those again). Then its log ends in "stage
# done", and the next call skips it, here or in docs/results/<gpu>-grid; the grid resumes from the
# results.jsonl found there. Exit 0 only when every stage asked for is done.
set -euo pipefail

DRY=false
[[ "${1:-}" == "--dry-run" ]] && DRY=true
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA_DIR=$(realpath -m "${DATA_DIR:-.device-data/mnist}")
BUDGET_S=${BUDGET_S:-510} # a call of ~9 minutes, the machine's start spent, less ~30 s to copy back
KILL_S=10                 # after a stage's soft timeout (SIGTERM), SIGKILL this much later
if [[ -z "${OUT:-}" ]]; then
    echo "gpu_run.sh: set OUT to the folder whose files come back" >&2
    exit 2
fi

# The plan for one call on one H100, ordered by value: NAME:SECONDS, what a stage needs to start.
# A stage starts only if its seconds are left once the stages after it that are not done have theirs
# (a benchmark cut short is worth nothing), and may run into whatever is left beyond them; so the
# grid, which resumes, takes what the others leave, and a second call, finding the first stages
# done, gives it the rest.
#   preflight    ~15 s  (not a stage) imports torch and JAX and finds the GPU: a bad setup costs
#                       seconds, not the call
#   tests        150 s  parity on the GPU (torch vs JAX, sweep vs loop, compiled torch with CUDA
#                       graphs vs eager): no GPU number means anything without it; cold
#                       torch.compile/Triton compiles in float32 and float64 and JAX float64
#   bench_sweep  150 s  step time per path (torch, torch compiled, JAX) of the grid's engine at
#                       batch 100/300/600: the speed claim; two compiles per path and batch
#   grid          60 s  the whole grid (27 groups per backend, each its own compile): written group
#                       by group, a cut one resumes next call; here it gets about 60 s
#   bench_host    60 s  host time per path at 784-8-10 batch 10 (issue 31): each path's steps/s
#                       ceiling on this card
#   bench_step    75 s  the loop's step per path at batch 100/300/600: the lesson's step, measured
#                       before on a GPU by whole runs, so the least new
PLAN=(tests:150 bench_sweep:150 grid:60 bench_host:60 bench_step:75)
STAGES=${STAGES:-tests bench_sweep grid bench_host bench_step}
for name in $STAGES; do
    if [[ " ${PLAN[*]} " != *" $name:"* ]]; then
        echo "gpu_run.sh: STAGES: got '$name'; allowed: ${PLAN[*]%%:*}" >&2
        exit 2
    fi
done

export PYTHONUNBUFFERED=1                  # a stage cut by its timeout still leaves its log
export XLA_PYTHON_CLIENT_PREALLOCATE=false # JAX would take 75 % of the GPU; torch shares it
export MLP_TWINS_DATA="$DATA_DIR" MLP_TWINS_DATASETS="$DATA_DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export XDG_CACHE_HOME="$WORK/cache" # no old cache: the data comes from DATA_DIR or not at all

if $DRY; then
    GPU=$("$PYTHON" -u benchmarks/gpu_run.py preflight "$DATA_DIR") || exit 2
    DEVICE=cpu
    # CPU tests that need MNIST, through the same data path and criterion as the GPU ones.
    TESTS=${TESTS:-tests/test_parity.py::test_outputs_match -k 500x1-relu-logits}
    # No torch compiles (~30 s here): tests/test_compiled.py and test_benchmarks.py time them.
    STEP_ARGS=(--config smoke --set output=logits --set batch_size=600 --steps 3 --rounds 1
        --no-torch-compile)
    STEP_ROWS=1
    SWEEP_ARGS=(--batches 600 --hidden 16 --members 2 --steps 3 --rounds 1 --no-torch-compile)
    SWEEP_ROWS=2
    HOST_ARGS=(--steps 3 --rounds 1 --no-torch-compile)
    GRID_ARGS=(--config smoke --set epochs=1)
else
    GPU=$("$PYTHON" -u benchmarks/gpu_run.py preflight "$DATA_DIR" --gpu) || exit 2
    DEVICE=gpu
    TESTS=${TESTS:-tests/test_gpu.py -m gpu}
    STEP_ARGS=(--set batch_size=100,300,600 --steps 200 --rounds 5)
    STEP_ROWS=3
    SWEEP_ARGS=(--batches 100,300,600 --steps 60 --rounds 3)
    SWEEP_ROWS=9
    HOST_ARGS=(--steps 300 --rounds 5)
    # Torch eager: a compiled sweep compiles once per group, 27 groups (GRID_COMPILE=true to try;
    # bench_sweep.log's "first call" column says what a compile costs there).
    GRID_ARGS=(--config grid --set "compile=${GRID_COMPILE:-false}")
fi
DEST="$OUT/$GPU-grid"
KEPT="docs/results/$GPU-grid"
mkdir -p "$DEST" "$WORK/grid"
if [[ ! -f "$DEST/results.jsonl" && -f "$KEPT/results.jsonl" ]]; then
    cp "$KEPT/results.jsonl" "$DEST/results.jsonl" # they come back whole, whatever runs now
fi
if [[ -f "$DEST/results.jsonl" ]]; then # the grid resumes where an earlier call left it
    cp "$DEST/results.jsonl" "$WORK/grid/results.jsonl"
fi
: >"$WORK/states"

say() { echo "[gpu_run] $*"; }

# note NAME PLANNED STATE SECONDS WHY: one row of summary.md, which is rewritten at once.
note() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$WORK/states"
    "$PYTHON" benchmarks/gpu_run.py summary "$DEST" "$WORK/states"
}

done_log() { # done_log NAME: NAME's log that ends in "stage done", here or committed; else exit 1
    local log
    for log in "$DEST/$1.log" "$KEPT/$1.log"; do
        if [[ -f "$log" ]] && tail -n 1 "$log" | grep -q "^stage done"; then
            echo "$log"
            return 0
        fi
    done
    return 1
}

criterion() { # criterion NAME: exit 0 if NAME's own criterion holds, else say why (one line)
    local log="$DEST/$1.log"
    case $1 in
    tests) "$PYTHON" benchmarks/gpu_run.py done tests "$log" ;;
    bench_step) "$PYTHON" benchmarks/gpu_run.py done bench "$log" "$STEP_ROWS" ;;
    bench_sweep) "$PYTHON" benchmarks/gpu_run.py done bench "$log" "$SWEEP_ROWS" ;;
    bench_host) "$PYTHON" benchmarks/gpu_run.py done bench "$log" 7 ;; # its rows in every mode
    grid) "$PYTHON" benchmarks/gpu_run.py done grid "$DEST/results.jsonl" ;;
    esac
}

command_of() { # command_of NAME: the stage's command, into the array CMD
    case $1 in
    tests)
        # One process (-o addopts: no pytest-xdist workers): they would share the one GPU, and the
        # GPU image may not have pytest-xdist.
        # shellcheck disable=SC2206 # TESTS is pytest's arguments, split on spaces
        CMD=(env CI=true "$PYTHON" -u -m pytest $TESTS -o addopts=-ra -v -p no:cacheprovider
            --durations=15)
        ;;
    bench_step)
        CMD=("$PYTHON" -u benchmarks/bench_step.py "${STEP_ARGS[@]}" --device "$DEVICE"
            --data-dir "$DATA_DIR")
        ;;
    bench_sweep)
        CMD=("$PYTHON" -u benchmarks/bench_sweep.py "${SWEEP_ARGS[@]}" --device "$DEVICE"
            --data-dir "$DATA_DIR")
        ;;
    bench_host)
        CMD=("$PYTHON" -u benchmarks/bench_host.py "${HOST_ARGS[@]}" --device "$DEVICE"
            --data-dir "$DATA_DIR")
        ;;
    grid)
        CMD=("$PYTHON" -u compare.py "${GRID_ARGS[@]}" --engine sweep --device "$DEVICE"
            --data-dir "$DATA_DIR" --out "$WORK/grid" --quiet)
        ;;
    esac
}

# run_stage NAME PLANNED RESERVED: run NAME into $DEST/NAME.log unless done before, if PLANNED
# seconds are left beyond RESERVED (what the later stages need), with what is left as its limit.
run_stage() {
    local name=$1 planned=$2 reserved=$3 log="$DEST/$1.log"
    local before
    if before=$(done_log "$name"); then
        [[ "$before" == "$log" ]] || cp "$before" "$log" # it comes back with the rest
        say "$name: done before ($before), skipped"
        note "$name" "$planned" "done before" "" ""
        return 0
    fi
    local limit=$((BUDGET_S - SECONDS - reserved - KILL_S))
    if ((limit < planned)); then
        say "$name: needs ${planned} s, ${limit} s left; the next call runs it"
        note "$name" "$planned" "not run" "" "${limit} s left of its ${planned} s"
        return 1
    fi
    command_of "$name"
    say "$name: up to ${limit} s, log $log"
    local start=$SECONDS code=0
    { echo "uptime: $(uptime)"; echo "+ ${CMD[*]}"; } >"$log"
    timeout -k "$KILL_S" --signal=TERM "$limit" "${CMD[@]}" >>"$log" 2>&1 || code=$?
    echo "uptime: $(uptime)" >>"$log"
    if [[ "$name" == grid && -f "$WORK/grid/results.jsonl" ]]; then # what it wrote, even if cut
        cp "$WORK/grid/results.jsonl" "$DEST/results.jsonl.tmp"
        mv "$DEST/results.jsonl.tmp" "$DEST/results.jsonl"
    fi
    local took=$((SECONDS - start)) why=""
    tail -n 3 "$log" | sed "s/^/[gpu_run] $name | /"
    if ((code == 124 || code == 137)); then
        why="cut by its timeout of ${limit} s"
    elif ((code != 0)); then
        why="exit $code; $(criterion "$name" || true)"
    else
        why=$(criterion "$name") || true
    fi
    if [[ -z "$why" ]]; then
        echo "stage done in $took s" >>"$log"
        say "$name: done in $took s"
        note "$name" "$planned" "done" "$took" ""
        return 0
    fi
    say "$name: NOT done after $took s: $why"
    note "$name" "$planned" "not done" "$took" "$why"
    return 1
}

asked=0 finished=0
for i in "${!PLAN[@]}"; do
    name=${PLAN[i]%%:*} planned=${PLAN[i]##*:}
    [[ " $STAGES " == *" $name "* ]] || continue
    reserved=0 # the seconds of the later stages asked for and not done
    for later in "${PLAN[@]:i+1}"; do
        if [[ " $STAGES " == *" ${later%%:*} "* ]] && ! done_log "${later%%:*}" >/dev/null; then
            reserved=$((reserved + ${later##*:}))
        fi
    done
    asked=$((asked + 1))
    if run_stage "$name" "$planned" "$reserved"; then
        finished=$((finished + 1))
    fi
done
state="$finished of $asked stages done"
note "call" "$BUDGET_S" "$state" "$SECONDS" ""
say "$state in $SECONDS s; outputs in $DEST (commit them as $KEPT, then" \
    "python compare.py --report $KEPT)"
((finished == asked))
