"""compare.py --executor ray on a local Ray instance (2 CPUs, one per module), real MNIST, small
configs: records equal the local executor's; a task whose worker is killed is retried (or, retries
spent, recorded as errors naming the cause) and the results file ends complete and valid; a run
interrupted mid-grid resumes, losing nothing and rerunning nothing. Bad flags and a missing Ray are
one line and exit 2.

compare.main runs in this process against the module's Ray instance (executors.start leaves an
initialised Ray alone), so Ray starts once and its workers, with torch and JAX imported, serve
every test.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys

import pytest

import compare
from comparison import executors
from comparison.results import ResultsFile, config_of, scan_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One group of two members (one diverges at once: statuses must match too), 10 steps each, both
# backends: 4 runs, 2 sweep tasks (4 loop tasks). Small, because the suite shares two cores.
SMALL = [
    "--config",
    "smoke",
    "--set",
    "epochs=1",
    "--set",
    "batch_size=6000",
    "--set",
    "output=logits",
    "--set",
    "hidden_size=32",
    "--set",
    "learning_rate=1e-3,1e30",
    "--quiet",
]
N_RUNS = 4
STATUSES = ["diverged"] * 2 + ["ok"] * 2
# Same code, same engine, only the worker's thread count differs: the parity tests' loss-curve
# tolerance.
CURVE_TOL = 1e-3


def run_compare(*args: str, report: bool = False) -> int:
    """compare.main in this process, by default without the report (matplotlib takes seconds here,
    and the report reads results.jsonl whoever wrote it); SIGTERM's handler (compare installs its
    own) is put back."""
    term = signal.getsignal(signal.SIGTERM)
    try:
        if report:
            return compare.main(list(args))
        parsed = compare.parse_args(list(args))
        signal.signal(signal.SIGTERM, compare._interrupt)  # as main does
        return compare.run_all(
            parsed, compare.grid_from_args(parsed).runs(), pathlib.Path(parsed.out)
        )
    except SystemExit as e:
        return e.code
    finally:
        signal.signal(signal.SIGTERM, term)


def keyed(path: pathlib.Path) -> dict:
    records, bad = scan_results(path)
    assert bad == []
    keys = [(r["backend"], config_of(r).key()) for r in records]
    assert len(keys) == len(set(keys)), "a run was recorded twice"
    return dict(zip(keys, records))


# ------------------------------------------------------------------ no Ray needed


def test_missing_ray_is_one_line_and_exit_2(tmp_path):
    # sys.modules["ray"] = None makes `import ray` raise ImportError, as where Ray is not installed.
    argv = ["compare.py", "--config", "smoke", "--executor", "ray", "--out", str(tmp_path / "out")]
    code = (
        f"import sys; sys.modules['ray'] = None; sys.path.insert(0, {str(ROOT)!r}); "
        f"sys.argv = {argv!r}; import runpy; runpy.run_path('compare.py', run_name='__main__')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert (
        len(err) == 1 and "pip install 'mlp-twins[ray]'" in err[0] and "Traceback" not in r.stderr
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, named",
    [
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--ray-retries", "1"], "--ray-retries needs --executor ray"),
        (["--executor", "ray", "--ray-gpus-per-task", "1.5"], "--ray-gpus-per-task 1.5"),
        (["--executor", "ray", "--ray-gpus-per-task", "0"], "--ray-gpus-per-task 0"),
        (["--executor", "ray", "--ray-retries", "-1"], "--ray-retries -1"),
        (["--executor", "dask"], "--executor"),
    ],
)
def test_bad_ray_flags_are_one_line_and_exit_2(args, named, capsys):
    assert run_compare("--config", "smoke", "--list", *args, report=True) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_units_are_groups_per_backend_minus_finished_runs():
    runs = compare.grid_from_args(compare.parse_args(SMALL)).runs()
    todo = [(c, b) for c in runs for b in ("torch", "jax")][1:]  # torch's first run already done
    sweep = executors.plan_units(runs, todo, "sweep", ["torch", "jax"])
    assert [(u.backend, len(u.configs)) for u in sweep] == [("torch", 1), ("jax", 2)]
    assert sweep[0].configs[0] is runs[1]
    assert len(executors.plan_units(runs, todo, "loop", ["torch", "jax"])) == N_RUNS - 1


def test_a_dead_task_is_recorded_on_the_device_kind_it_was_given():
    assert executors.task_device({"num_cpus": 1, "max_retries": 3}) == "cpu"
    assert executors.task_device({"num_cpus": 1, "max_retries": 3, "num_gpus": 0.25}) == "gpu"


# ------------------------------------------------------------------ on a local Ray instance


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mlp-twins[ray]')")
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    assert executors.start(ray, None, num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def small(mnist_dir, tmp_path):
    return [
        *SMALL,
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(tmp_path / "out"),
    ], tmp_path / "out" / "results.jsonl"


def local_and_ray(tmp_path, *args) -> tuple[dict, dict]:
    assert run_compare(*args, "--out", str(tmp_path / "local")) == 0
    assert run_compare(*args, "--out", str(tmp_path / "ray"), "--executor", "ray", report=True) == 0
    assert (tmp_path / "ray" / "report.md").is_file()
    return keyed(tmp_path / "local" / "results.jsonl"), keyed(tmp_path / "ray" / "results.jsonl")


def assert_same_records(local: dict, remote: dict) -> None:
    assert local.keys() == remote.keys()
    for key, a in local.items():
        b = remote[key]
        assert (b["status"], b["engine"], b["steps"], b["loss_curve_every"]) == (
            a["status"],
            a["engine"],
            a["steps"],
            a["loss_curve_every"],
        )
        assert (b["group"] or {}).get("members") == (a["group"] or {}).get("members")
        assert len(b["loss_curve"]) == len(a["loss_curve"])
        for x, y in zip(a["loss_curve"], b["loss_curve"]):
            assert (x is None) == (y is None)  # the diverged steps, as null, at the same places
            assert x is None or abs(x - y) <= CURVE_TOL
        if a["status"] == "ok":
            assert math.isclose(
                a["epochs"][-1]["test_accuracy"], b["epochs"][-1]["test_accuracy"], abs_tol=1e-3
            )


def test_ray_records_equal_local(ray, mnist_dir, tmp_path):
    local, remote = local_and_ray(
        tmp_path, *SMALL, "--engine", "sweep", "--data-dir", str(mnist_dir)
    )
    assert len(local) == N_RUNS and sorted(r["status"] for r in local.values()) == STATUSES
    assert all(r["engine"] == "sweep" for r in remote.values())
    assert_same_records(local, remote)


def test_ray_loop_engine_runs_a_task_per_run(ray, mnist_dir, tmp_path):
    # The loop's unit is one run: one backend and one learning rate keep this cheap (the workers
    # are warm).
    local, remote = local_and_ray(
        tmp_path,
        *SMALL,
        "--engine",
        "loop",
        "--backend",
        "torch",
        "--set",
        "learning_rate=1e-3",
        "--data-dir",
        str(mnist_dir),
    )
    assert len(remote) == 1 and [r["engine"] for r in remote.values()] == ["loop"]
    assert_same_records(local, remote)


def test_a_task_no_node_can_hold_is_refused_in_one_line(ray, small, capsys):
    args, path = small
    # the instance has 2
    assert run_compare(*args, "--executor", "ray", "--ray-cpus-per-task", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no node of the Ray cluster has 3 CPUs" in err[0]
    assert not path.exists() or path.read_text() == ""


def kill_first_task(monkeypatch, marker: pathlib.Path) -> None:
    """The first Ray task kills its own worker with SIGKILL, as the OOM killer would; the product
    has no hook for it: the test wraps the function the Ray executor submits (executors.train_unit).
    O_EXCL makes exactly one task, the first, create `marker` and die; a retry, and every other
    task, finds it and trains."""
    marker = str(marker)

    def task(unit, data, device, log_steps, models=None):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:  # on the worker, `executors` is the real, unwrapped module
            return executors.train_unit(unit, data, device, log_steps, models)
        os.kill(os.getpid(), signal.SIGKILL)

    # A function nested here is pickled by value, so the workers need not import this test file.
    monkeypatch.setattr(executors, "train_unit", task)


def test_killed_worker_is_retried_and_the_file_ends_complete(ray, small, tmp_path, monkeypatch):
    args, path = small
    marker = tmp_path / "killed"
    kill_first_task(monkeypatch, marker)
    assert run_compare(*args, "--executor", "ray", "--ray-retries", "1") == 0
    assert marker.exists(), "no task was killed: the test proved nothing"
    records = keyed(path)
    assert len(records) == N_RUNS
    assert sorted(r["status"] for r in records.values()) == STATUSES
    assert path.read_bytes().endswith(b"\n")


def test_killed_worker_without_retries_is_recorded_and_the_grid_goes_on(
    ray, small, tmp_path, monkeypatch, capsys
):
    args, path = small
    kill_first_task(monkeypatch, tmp_path / "killed")
    assert run_compare(*args, "--executor", "ray", "--ray-retries", "0") == 0
    records = keyed(path)
    assert len(records) == N_RUNS
    errors = [r for r in records.values() if r["status"] == "error"]
    assert len(errors) == 2  # the killed task's group of two, on one backend; the other tasks ran
    assert len({r["backend"] for r in errors}) == 1
    for r in errors:
        assert r["error"].startswith("WorkerCrashedError on Ray (max_retries=0)"), r["error"]
        assert r["engine"] == "sweep" and r["group"]["members"] == 2
        # where the task ran (this instance has no GPU), not --device auto
        assert r["device"] == "cpu"
    assert "task failed on 2 run(s)" in capsys.readouterr().err


def test_interrupted_ray_run_resumes_losing_nothing_rerunning_nothing(
    ray, small, monkeypatch, capsys
):
    args, path = small
    append = ResultsFile.append

    def append_then_sigterm(self, record):
        append(self, record)
        # as a scheduler's timeout would, right after the first record
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ResultsFile, "append", append_then_sigterm)
    assert run_compare(*args, "--executor", "ray") == 130
    monkeypatch.setattr(ResultsFile, "append", append)
    first = path.read_bytes()
    assert first.count(b"\n") == 1 and len(keyed(path)) == 1  # one whole record, the rest cancelled
    capsys.readouterr()

    assert run_compare(*args, "--executor", "ray") == 0
    assert "1 finished runs found" in capsys.readouterr().err
    after = path.read_bytes()
    assert after.startswith(first)  # what was written stays, byte for byte
    records = keyed(path)  # each run exactly once: nothing lost, nothing rerun
    assert len(records) == N_RUNS
    assert sorted(r["status"] for r in records.values()) == STATUSES
    assert json.loads(first)["backend"] in {"torch", "jax"}
