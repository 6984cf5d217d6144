"""The benchmarks run end to end on real MNIST and print well-formed tables (torch eager, torch
compiled and JAX side by side); the FLOP count is right; bad flags are one line and exit 2; the
prepared GPU run is tested in test_gpu_run.py. No timing is asserted (benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_step.py"
PIPELINE = ROOT / "benchmarks" / "bench_pipeline.py"


@pytest.fixture
def both_frameworks():
    pytest.importorskip("torch")
    pytest.importorskip("flax")


def run_script(script: pathlib.Path, args: list[str], capsys) -> subprocess.CompletedProcess:
    """The benchmark's main(argv) in this process, its exit code and what it printed as a
    process's: the tests below check the table a run prints, not a start-up (the bad-flag tests run
    the scripts as real processes), and this spares a start of Python, torch and JAX per test."""
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    try:
        code = module.main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([str(script), *args], code, out, err)


def test_matmul_flops_by_hand():
    spec = importlib.util.spec_from_file_location("bench_step", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # imports shared only; the frameworks load inside its functions
    matmul_flops = bench.matmul_flops

    # 784-500-10, batch 100: forward 2*(784*500 + 500*10), weight grads the same, input grads only
    # for the second layer 2*(500*10); times the batch.
    cfg = Config(hidden_size=500, hidden_layers=1, batch_size=100)
    assert matmul_flops(cfg) == 100 * (2 * 2 * (784 * 500 + 500 * 10) + 2 * 500 * 10)
    # 0 hidden layers: a single 784->10 layer, no input gradient at all.
    assert matmul_flops(Config(hidden_layers=0, batch_size=1)) == 2 * 2 * 784 * 10


def test_bench_step_prints_eager_compiled_and_jax_with_ratios(mnist_dir, both_frameworks, capsys):
    proc = run_script(
        BENCH,
        [
            "--config",
            "smoke",
            "--set",
            "batch_size=100",
            "--set",
            "output=logits",
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
            "--steps",
            "5",
            "--rounds",
            "2",
        ],
        capsys,
    )
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| config "))
    assert [c.strip() for c in header.strip("|").split("|")][1:6] == [
        "torch µs/step",
        "torch compiled µs/step",
        "JAX µs/step",
        "torch/JAX",
        "compiled/JAX",
    ]
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| 1x64 ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "1x64 b100 relu logits"
    torch_us, compiled_us, jax_us = (float(c.split()[0]) for c in cells[1:4])
    assert torch_us > 0 and compiled_us > 0 and jax_us > 0
    # Ratios of the unrounded medians.
    assert float(cells[4]) == pytest.approx(torch_us / jax_us, rel=0.01, abs=0.011)
    assert float(cells[5]) == pytest.approx(compiled_us / jax_us, rel=0.01, abs=0.011)
    for share in cells[6:9]:  # of the GEMM floor: the step's matmuls alone take less than it
        assert re.fullmatch(r"\d+%", share) and 0 < int(share[:-1]) <= 100
    assert re.fullmatch(r"\d+ / \d+", cells[9])
    # First steps apart: the compile makes torch compiled's the slowest by far.
    first = [float(x) for x in cells[10].removesuffix(" s").split(" / ")]
    assert first[1] > 10 * first[0]
    assert "devices: torch cpu, JAX cpu" in proc.stdout


def test_bench_step_bad_flags_are_one_line(mnist_dir, both_frameworks):
    for args, needle in ((["--steps", "0"], "--steps"), (["--set", "batch_size=0"], "batch_size")):
        proc = subprocess.run(
            [sys.executable, str(BENCH), "--data-dir", str(mnist_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr


def test_bench_pipeline_prints_four_loops_and_their_ratio_to_resident(
    mnist_dir, both_frameworks, capsys
):
    pytest.importorskip("torchvision")
    proc = run_script(
        PIPELINE,
        [
            "--config",
            "smoke",
            "--set",
            "output=logits",
            "--set",
            "batch_size=100",
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
            "--steps",
            "5",
            "--rounds",
            "2",
        ],
        capsys,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in proc.stdout.splitlines()
        if line.startswith("| 1x64 b100 ")
    ]
    assert [r[1] for r in rows] == ["torch rung 0", "JAX rung 0", "torch resident", "JAX resident"]
    assert "DataLoader(batch_size=100, shuffle=True) + ToTensor()" in rows[0][2]
    assert "jax.device_put per step" in rows[1][2]
    us = {r[1]: float(r[3].split()[0]) for r in rows}
    for r in rows:
        assert re.fullmatch(r"\d+ \(\d+-\d+\)", r[3]), r[3]
        resident = us[r[1].split()[0] + " resident"]
        # Ratios of the unrounded medians
        assert float(r[4]) == pytest.approx(us[r[1]] / resident, rel=0.01, abs=0.011)
    assert rows[2][4] == rows[3][4] == "1.00"


BENCH_SWEEP = ROOT / "benchmarks" / "bench_sweep.py"


def test_bench_sweep_prints_rows_and_the_speedup_line(
    mnist_dir, both_frameworks, capsys, monkeypatch
):
    from impls.flax_mlp import runtime as flax_runtime
    from impls.torch_mlp import runtime as torch_runtime

    entered = []  # what the benchmark switches on in each twin, as their train does

    def spy(name, setting, real):
        def entering(value):
            entered.append((name, setting, value))
            return real(value)

        return entering

    for name, runtime in (("torch", torch_runtime), ("jax", flax_runtime)):
        for setting in ("matmul_precision", "dtype_scope"):
            monkeypatch.setattr(runtime, setting, spy(name, setting, getattr(runtime, setting)))
    # Two hidden layers: the deeper layers' batched matmuls are in the sweep and in its floor too.
    proc = run_script(
        BENCH_SWEEP,
        [
            "--batches",
            "100",
            "--hidden",
            "32",
            "--layers",
            "2",
            "--members",
            "3",
            "--steps",
            "3",
            "--rounds",
            "1",
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 2x32 ")]
    assert [tuple(c.strip() for c in r.split("|")[1:3]) for r in rows] == [
        ("2x32 b100 M=3", "torch"),
        ("2x32 b100 M=3", "torch compiled"),
        ("2x32 b100 M=3", "jax"),
    ]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        loop, sweep = (float(c.replace(",", "")) for c in cells[2:4])
        assert loop > 0 and sweep > 0 and re.fullmatch(r"[\d.]+x", cells[4])
        # Peak memory per path; on the CPU the process's peak, which only grows: a bound (≤).
        assert re.fullmatch(r"\d+%", cells[7]) and re.fullmatch(r"\d+ / ≤ \d+ MiB", cells[8])
    # TF32 off and float32, the grid's settings, in both twins (bench_step.as_trained).
    assert set(entered) == {
        (name, setting, value)
        for name in ("torch", "jax")
        for setting, value in (("matmul_precision", False), ("dtype_scope", "float32"))
    }
    last = proc.stdout.rstrip().splitlines()[-1]
    ratio = r"\d+\.\d\dx"
    assert re.fullmatch(
        rf"speedup at batch 100: torch {ratio}, torch compiled {ratio}, jax {ratio}", last
    ), last


def test_bench_sweep_bad_flags_are_one_line(mnist_dir):
    for args, needle in (
        (["--steps", "0"], "--steps"),
        (["--batches", "x"], "--batches"),
        (["--batches", "100000"], "--batches"),
        (["--layers", "4"], "--layers"),
    ):
        proc = subprocess.run(
            [sys.executable, str(BENCH_SWEEP), "--data-dir", str(mnist_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr


BENCH_HOST = ROOT / "benchmarks" / "bench_host.py"


def test_bench_host_prints_every_path_against_its_floor(mnist_dir, both_frameworks, capsys):
    # Without the torch paths that compile (tests/test_compiled.py runs those): the harness, not
    # the timings, is under test.
    args = ["--data-dir", str(mnist_dir), "--device", "cpu", "--steps", "3", "--rounds", "2"]
    proc = run_script(BENCH_HOST, [*args, "--no-torch-compile"], capsys)
    assert proc.returncode == 0, proc.stderr
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in proc.stdout.splitlines()
        if line.startswith("| 784-8-10 b10 float32 |")  # the defaults: negligible arithmetic
    ]
    assert [r[1] for r in rows] == [
        "torch loop, eager",
        "torch sweep epoch, eager",
        "torch floor",
        "JAX loop",
        "JAX loop, compiled",
        "JAX sweep epoch (scan)",
        "JAX floor",
    ]
    floors = {"torch": float(rows[2][2]), "JAX": float(rows[6][2])}
    for r in rows:
        best, median, ratio = float(r[2]), float(r[3]), float(r[4])
        assert 0 < best <= median
        # Ratios and ceilings of the unrounded minimum.
        assert ratio == pytest.approx(best / floors[r[1].split()[0]], rel=0.01, abs=0.011)
        assert float(r[5].replace(",", "")) == pytest.approx(1e6 / best, rel=0.01, abs=1)
    assert rows[2][4] == rows[6][4] == "1.00"
    assert re.search(r"load average [\d.]+, [\d.]+, [\d.]+ before", proc.stdout)
