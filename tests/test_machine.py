"""comparison/machine.py and shared/timing.py: CPUs from the affinity mask, the thread settings, the
GEMM shapes of a step and a floor measured on this machine; StepClock's windows."""

from __future__ import annotations

import os

from comparison.machine import gemm_floor_us, probe_floors, step_gemms
from shared.config import Config
from shared.timing import WINDOW, StepClock, available_cpus, spread, spread_share, thread_env


def test_cpus_come_from_the_affinity_mask():
    if hasattr(os, "sched_getaffinity"):
        assert available_cpus() == len(os.sched_getaffinity(0))
    assert isinstance(available_cpus(), int) and available_cpus() >= 1


def test_thread_env_never_overrides_the_user():
    assert thread_env({}) == {
        "OMP_NUM_THREADS": str(available_cpus()),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    assert "OMP_NUM_THREADS" not in thread_env({"OMP_NUM_THREADS": "7"})
    assert "OMP_WAIT_POLICY" not in thread_env({"OMP_WAIT_POLICY": "ACTIVE"})


def test_step_gemms_are_forward_weight_and_input_gradients():
    # 784-500-10, batch 100: two forwards, two weight gradients, one input gradient (none for the
    # images).
    assert step_gemms(Config()) == [
        (100, 784, 500),
        (784, 100, 500),
        (100, 500, 10),
        (500, 100, 10),
        (100, 10, 500),
    ]
    flops = sum(2 * m * k * n for m, k, n in step_gemms(Config()))
    # bench_step's matmul_flops
    assert flops == 100 * (2 * 2 * (784 * 500 + 500 * 10) + 2 * 500 * 10)


def test_floor_is_measured_once_per_shape_and_grows_with_the_batch():
    runs = [
        Config(hidden_size=64, batch_size=b, learning_rate=lr)
        for b in (10, 600)
        for lr in (1e-3, 1e-2)
    ]
    floors = probe_floors(runs, budget_s=0.02)
    assert list(floors) == ["1x64 b10", "1x64 b600"]
    assert 0 < floors["1x64 b10"] < floors["1x64 b600"]
    assert gemm_floor_us(Config(hidden_size=64, batch_size=10), budget_s=0.01) > 0


def test_step_clock_keeps_a_window_per_50_steps_and_their_percentiles():
    synced = []
    clock = StepClock(sync=synced.append)
    clock.start_epoch()
    for i in range(
        1 + 3 * WINDOW + 10
    ):  # the first step is compile time, then 3 full windows and a bit
        clock.after_step(i)
    clock.end_epoch("end")
    assert len(clock.windows_us) == 3
    # First step, each window, the epoch's end
    assert synced == [
        0,
        WINDOW,
        2 * WINDOW,
        3 * WINDOW,
        "end",
    ]
    s = clock.summary(batch_size=100)["step_time_spread"]
    assert s["windows"] == 3 and s["p10"] <= s["p50"] <= s["p90"]
    assert spread([]) is None
    assert spread([100.0, 200.0, 300.0]) == {"p10": 120.0, "p50": 200.0, "p90": 280.0, "windows": 3}


def test_an_engine_that_runs_whole_epochs_gets_a_window_per_epoch():
    clock = StepClock(sync=lambda value: None)
    clock.record_warmup(0.5)
    for _ in range(4):
        clock.start_epoch()
        clock.add_steps(600)
        clock.end_epoch(None)
    assert len(clock.windows_us) == 4 and clock.summary(100)["step_time_spread"]["windows"] == 4
    assert spread_share({"p10": 1000.0, "p50": 1200.0, "p90": 1600.0, "windows": 4}, 4) == {
        "p10": 250.0,
        "p50": 300.0,
        "p90": 400.0,
        "windows": 4,
    }
    assert spread_share(None, 4) is None


def test_the_loops_epoch_times_each_step_and_syncs_on_the_last_output():
    synced = []
    clock = StepClock(sync=synced.append)
    with clock.epoch(lambda i: i * 10) as step:
        outputs = [step(i) for i in range(1 + WINDOW)]  # the warm-up step, then one window
    assert outputs == [10 * i for i in range(1 + WINDOW)]
    # First step, the window, the epoch's end on the last output
    assert synced == [0, 10 * WINDOW, 10 * WINDOW]
    assert clock.steady_steps == WINDOW and len(clock.windows_us) == 1
    assert clock.summary(batch_size=100)["warmup_s"] is not None
