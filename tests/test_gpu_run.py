"""benchmarks/gpu_run.sh, the one GPU call, as far as a CPU can check it: the GPU's label from the
names real GPUs report; the preflight (one line, exit 2, in seconds); each stage's done criterion
(a skip, a failure, a missing table row or an `error` record is not done); and the --dry-run end
to end in a copy of the checkout with no datasets beside it, no MLP_TWINS_* and an empty cache,
the data given by DATA_DIR alone: it passes, leaves few files, resumes, and fails when a test
skips for lack of data or a run ends in an error (which the next call trains again)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"
HELPER = ROOT / "benchmarks" / "gpu_run.py"

_spec = importlib.util.spec_from_file_location("gpu_run", HELPER)
gpu_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_run)  # imports shared only


# ------------------------------------------------------------------ the label


@pytest.mark.parametrize(
    "name, label",
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100"),
        ("NVIDIA H100 NVL", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA A100-PCIE-40GB", "a100"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "a100"),
        ("NVIDIA A10G", "a10g"),
        ("Tesla T4", "t4"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("NVIDIA GeForce GTX 1080 Ti", "gtx1080"),
        ("NVIDIA RTX A6000", "rtxa6000"),
        ("Quadro RTX 8000", "rtx8000"),
        ("AMD Instinct MI300X", "mi300x"),
        ("NVIDIA", "gpu"),
        ("", "gpu"),
    ],
)
def test_label_is_the_gpu_model(name, label):
    assert gpu_run.gpu_label(name) == label


# ------------------------------------------------------------------ the preflight


def helper(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HELPER), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def test_preflight_names_what_is_missing_in_one_line(tmp_path, mnist_dir):
    cases = {"no-such-folder": "no such folder"}
    (tmp_path / "three").mkdir()
    for f in sorted(mnist_dir.iterdir())[:3]:
        shutil.copy(f, tmp_path / "three")
    cases["three"] = "missing in"
    (tmp_path / "damaged").mkdir()
    for f in mnist_dir.iterdir():
        (tmp_path / "damaged" / f.name).write_bytes(f.read_bytes()[:-1] + b"x")
    cases["damaged"] = "md5"
    for folder, needle in cases.items():
        t0 = time.perf_counter()
        proc = helper("preflight", str(tmp_path / folder))
        assert time.perf_counter() - t0 < 30  # no framework is imported for the data
        assert proc.returncode == 2 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gpu_run.sh: preflight: "), lines
        assert str(tmp_path / folder) in lines[0]
        assert needle in lines[0] and "the four .gz files" in lines[0], lines[0]


def test_preflight_wants_the_gz_files(tmp_path, mnist_dir):
    import gzip

    for f in mnist_dir.iterdir():
        (tmp_path / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    proc = helper("preflight", str(tmp_path))
    assert proc.returncode == 2 and "extracted" in proc.stderr and ".gz" in proc.stderr


def test_preflight_names_a_module_a_stage_needs(mnist_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    why, _ = gpu_run.preflight(str(mnist_dir), gpu=False)
    assert why.startswith("not installed: matplotlib (every stage needs torch, jax,"), why


def test_preflight_passes_with_the_data_and_says_the_label(mnist_dir):
    proc = helper("preflight", str(mnist_dir))
    assert proc.returncode == 0 and proc.stdout == "cpu-dry\n", proc.stderr


def test_preflight_on_a_gpu_needs_one_seen_by_torch_and_jax(mnist_dir):
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    proc = helper("preflight", str(mnist_dir), "--gpu")
    if torch.cuda.is_available():  # a GPU machine: the label of its model
        assert proc.returncode == 0 and proc.stdout.strip() != "cpu-dry", proc.stderr
        return
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "gpu_run.sh: preflight: torch sees no CUDA GPU (torch.cuda.is_available() is False)"
    )


# ------------------------------------------------------------------ each stage's criterion

PASSED = (
    "tests/test_gpu.py::test_x PASSED\n======== 13 passed, 2 deselected in 121.30s (0:02:01) ====="
)


@pytest.mark.parametrize(
    "log, why",
    [
        (PASSED, None),
        ("13 passed in 9.21s", None),  # -q
        ("13 passed, 1 warning in 9.21s", None),
        ("==== 12 passed, 1 skipped in 90.00s ====", "skip"),
        ("==== 13 skipped in 18.85s ====", "skip"),
        ("==== 1 failed, 12 passed in 90.00s ====", "fail"),
        ("==== 12 passed, 1 error in 90.00s ====", "fail"),
        ("==== 13 deselected in 0.20s ====", "nothing passed"),
        ("==== no tests ran in 0.01s ====", "nothing passed"),
        ("tests/test_gpu.py::test_x PASSED\n", "no pytest summary"),  # cut
        ("", "no pytest summary"),
    ],
)
def test_tests_are_done_only_when_something_passed_and_nothing_skipped(log, why):
    got = gpu_run.tests_done(log)
    assert (got is None) if why is None else (why in got), got


TABLE = "| config | a |\n|---|---|\n| 1x500 b100 | 1 |\n| 1x500 b300 | 2 |\n"


def test_a_benchmark_is_done_when_every_row_is_printed():
    assert gpu_run.bench_done("devices: ...\n" + TABLE + "speedup at batch 100", 2) is None
    assert gpu_run.bench_done(TABLE, 3) == "2 of 3 table rows printed"
    assert "no table" in gpu_run.bench_done("1x500 b100 torch: loop 100", 3)


def record(backend: str, lr: float, status: str, error: str | None = None) -> dict:
    from shared.config import Config

    config = Config(learning_rate=lr).to_dict()
    return {"backend": backend, "config": config, "status": status, "error": error}


def write_records(path: pathlib.Path, records: list[dict]) -> pathlib.Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_grid_is_done_only_when_no_run_ended_in_an_error(tmp_path):
    ok = [record("torch", 1e-3, "ok"), record("jax", 1e-3, "diverged")]
    assert gpu_run.grid_done(write_records(tmp_path / "a.jsonl", ok)) is None
    failed = record("torch", 1e-2, "error", "RuntimeError: CUDA error: an illegal memory access")
    why = gpu_run.grid_done(write_records(tmp_path / "b.jsonl", [*ok, failed]))
    assert why.startswith("1 runs ended in an error (the next call retries them)")
    assert "CUDA error" in why
    # Retried by the next call: its later record is the one that counts.
    retried = [*ok, failed, record("torch", 1e-2, "ok")]
    assert gpu_run.grid_done(write_records(tmp_path / "c.jsonl", retried)) is None
    assert "no records" in gpu_run.grid_done(tmp_path / "none.jsonl")


def test_done_says_why_in_one_line_and_exits_1(tmp_path):
    log = tmp_path / "tests.log"
    log.write_text("==== 13 skipped in 18.85s ====\n")
    proc = helper("done", "tests", str(log))
    assert proc.returncode == 1 and proc.stdout.strip().startswith("pytest: 13 skipped")
    log.write_text(PASSED)
    assert helper("done", "tests", str(log)).returncode == 0
    assert helper("done", "nonsense").returncode == 2


# ------------------------------------------------------------------ the dry run, end to end


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> pathlib.Path:
    """The checkout's code (not its docs, runs or caches) copied where no datasets are beside it."""
    dest = tmp_path_factory.mktemp("fresh") / "mlp-twins"
    skip = shutil.ignore_patterns(
        ".git",
        ".venv",
        "runs",
        "docs",
        "__pycache__",
        ".pytest_cache",
        ".device-data",
        "*.egg-info",
    )
    shutil.copytree(ROOT, dest, ignore=skip)
    assert not (dest.parent / "shared").exists()
    return dest


def dry_run(checkout, tmp_path, data_dir=None, timeout=600, python=sys.executable, **env):
    """gpu_run.sh --dry-run in `checkout`, as on a fresh machine: no MLP_TWINS_* variables, an
    empty home and cache, MNIST only where DATA_DIR says."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLP_TWINS_")}
    clean.pop("CI", None)
    clean.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    clean.update(OUT=str(tmp_path / "out"), PYTHON=str(python), **env)
    if data_dir is not None:
        clean["DATA_DIR"] = str(data_dir)
    return subprocess.run(
        ["bash", "benchmarks/gpu_run.sh", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=checkout,
        env=clean,
    )


def files_under(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_dry_run_without_data_fails_in_seconds_with_one_line(checkout, tmp_path):
    t0 = time.perf_counter()
    proc = dry_run(checkout, tmp_path, timeout=60)
    assert time.perf_counter() - t0 < 20
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_run.sh: preflight: DATA_DIR") and ".device-data/mnist" in line
    assert "no such folder" in line
    assert not (tmp_path / "out").exists() or not files_under(tmp_path / "out")


@pytest.mark.slow  # every stage with tiny sizes, then the resume: minutes on a busy 2-core CPU
def test_dry_run_end_to_end_then_resumes(checkout, tmp_path, mnist_dir, both_frameworks):
    proc = dry_run(checkout, tmp_path, mnist_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out"
    dest = out / "cpu-dry-grid"
    files = files_under(out)
    assert len(files) <= 8 and all(len(f.parts) <= 2 for f in files), files
    assert {f.name for f in files} == {
        "summary.md",
        "results.jsonl",
        "tests.log",
        "bench_sweep.log",
        "grid.log",
        "bench_host.log",
        "bench_step.log",
    }
    for stage in ("tests", "bench_sweep", "grid", "bench_host", "bench_step"):
        log = (dest / f"{stage}.log").read_text()
        assert log.startswith("uptime: ") and log.splitlines()[-1].startswith("stage done"), log
    tests_log = (dest / "tests.log").read_text()
    # Real MNIST reached the tests through DATA_DIR: they ran, none skipped.
    assert " passed" in tests_log and "skipped" not in tests_log.lower(), tests_log
    step_log = (dest / "bench_step.log").read_text()  # --no-torch-compile: two paths, one ratio
    assert "| 1x64 b600 relu logits |" in step_log and "torch compiled" not in step_log
    assert "| torch µs/step | JAX µs/step | torch/JAX | torch of floor |" in step_log
    sweep_log = (dest / "bench_sweep.log").read_text()
    assert "| 1x16 b600 M=2 | torch |" in sweep_log and "torch compiled" not in sweep_log
    records = [json.loads(line) for line in (dest / "results.jsonl").read_text().splitlines()]
    assert sorted(r["backend"] for r in records) == ["jax", "jax", "torch", "torch"]
    assert all(r["status"] == "ok" and r["engine"] == "sweep" for r in records)
    summary = (dest / "summary.md").read_text()
    for stage in ("tests", "bench_sweep", "grid", "bench_host", "bench_step"):
        assert f"| {stage} | " in summary
    assert "| call | 510 | 5 of 5 stages done |" in summary, summary
    assert "## bench_sweep" in summary and "| 1x16 b600 M=2 | jax |" in summary

    again = dry_run(checkout, tmp_path, mnist_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("done before") == 5, again.stdout
    assert len((dest / "results.jsonl").read_text().splitlines()) == len(records)


@pytest.fixture
def both_frameworks():
    pytest.importorskip("torch")
    pytest.importorskip("flax")


def test_dry_run_fails_when_a_test_skips_for_lack_of_data(checkout, tmp_path, mnist_dir):
    # DATA_DIR holds MNIST only: a test that needs Fashion-MNIST skips, and a skip is not done.
    proc = dry_run(
        checkout,
        tmp_path,
        mnist_dir,
        STAGES="tests",
        TESTS="tests/test_data.py::test_fashion_mnist_loads",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    dest = tmp_path / "out" / "cpu-dry-grid"
    log = (dest / "tests.log").read_text()
    assert "skipped for lack of real data" in log and "CI=true, so this run fails" in log
    assert "stage done" not in log
    assert "tests: NOT done" in proc.stdout and "1 skipped" in proc.stdout
    assert "| tests | 150 | not done |" in (dest / "summary.md").read_text()


SHIM = '''"""python, but compare.py's sweeps fail as on a CUDA error (the test's stand-in)."""
import pathlib, runpy, sys

args = [a for a in sys.argv[1:] if a != "-u"]
script, sys.argv = args[0], args
sys.path.insert(0, str(pathlib.Path(script).resolve().parent))
if script.endswith("compare.py"):
    from impls.flax_mlp import sweep as flax_sweep
    from impls.torch_mlp import sweep as torch_sweep

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    torch_sweep.train_group = flax_sweep.train_group = broken
runpy.run_path(script, run_name="__main__")
'''


@pytest.mark.slow  # the smoke grid for an epoch (about 15 s)
def test_dry_run_fails_on_an_error_record_and_the_next_call_retries_it(
    checkout, tmp_path, mnist_dir, both_frameworks
):
    shim = tmp_path / "shim.py"
    shim.write_text(SHIM)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u "{shim}" "$@"\n')
    python.chmod(0o755)
    proc = dry_run(checkout, tmp_path, mnist_dir, python=python, STAGES="grid")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    dest = tmp_path / "out" / "cpu-dry-grid"
    assert "stage done" not in (dest / "grid.log").read_text()
    assert "grid: NOT done" in proc.stdout and "4 runs ended in an error" in proc.stdout
    first = (dest / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in first] == ["error"] * 4
    assert "| grid | 60 | not done |" in (dest / "summary.md").read_text()

    again = dry_run(checkout, tmp_path, mnist_dir, STAGES="grid")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 runs recorded as errors" in (dest / "grid.log").read_text()
    lines = (dest / "results.jsonl").read_text().splitlines()
    assert lines[:4] == first  # what was written stays; the retried runs come after
    assert [json.loads(line)["status"] for line in lines[4:]] == ["ok"] * 4


def test_summary_is_the_plan_the_states_and_the_tables(tmp_path):
    states = tmp_path / "states"
    states.write_text("tests\t150\tdone\t120\t\ngrid\t60\tnot done\t70\tpytest: a | b\n")
    dest = tmp_path / "h100-grid"
    dest.mkdir()
    write_records(dest / "results.jsonl", [record("torch", 1e-3, "ok") | {"device": "gpu:0 X"}])
    (dest / "bench_sweep.log").write_text("noise\ndevices: torch gpu\n" + TABLE + "speedup ...\n")
    text = gpu_run.summary(dest, states)
    assert "| tests | 150 | done | 120 |  |" in text
    assert "| grid | 60 | not done | 70 | pytest: a \\| b |" in text  # a table cell
    assert "grid: 1 runs ({'ok': 1, 'diverged': 0, 'error': 0}); devices: gpu:0 X" in text
    assert "## bench_sweep\n\ndevices: torch gpu\n" + TABLE in text
    assert "bench_step" not in text  # no log, no section
