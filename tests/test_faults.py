"""Faults while a grid runs: kill -9 mid-grid, kill -9 in the middle of a results write, a second
compare.py on the same --out, a full disk. Each ends with a valid results file, no duplicate and
no lost finished run, and a rerun of the same command that completes the rest.

The grid engine is a parameter of the kill -9 test (compare.py --engine loop|sweep); a new engine
joins by adding its name to ENGINES. The write faults live in comparison/results.py, which both
engines write through, so they run on the loop engine only.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from comparison.results import config_of
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENGINES = ("loop", "sweep")  # compare.py --engine


def engine_args(engine: str) -> list[str]:
    return ["--engine", engine]


def grid_args(
    out: pathlib.Path,
    mnist_dir: pathlib.Path,
    sizes: str = "16,24,32,40",
    backend: str = "both",
    rates: str = "1e-3",
) -> list[str]:
    """A small grid: sizes x rates configs x backends, 1 epoch of 10 steps each (batch 6000): the
    faults are in the results file and the resume, so a run only has to finish and write its
    record. Each hidden size is a group of the sweep engine, its learning rates the group's
    members."""
    return [
        "--config",
        "smoke",
        "--set",
        "epochs=1",
        "--set",
        "batch_size=6000",
        "--set",
        f"hidden_size={sizes}",
        "--set",
        f"learning_rate={rates}",
        "--set",
        "output=logits",
        "--backend",
        backend,
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(out),
        "--quiet",
    ]


def compare(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "compare.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_keys(path: pathlib.Path) -> list[tuple[str, str]]:
    """(backend, config key) of every line; json.loads fails the test on a line that is not
    whole."""
    return [
        (r["backend"], config_of(r).key()) for r in map(json.loads, path.read_text().splitlines())
    ]


def wait_for_lines(
    path: pathlib.Path, n: int, proc: subprocess.Popen, timeout: float = 240
) -> None:
    deadline = time.time() + timeout
    while (
        time.time() < deadline
        and proc.poll() is None
        and (not path.exists() or path.read_text().count("\n") < n)
    ):
        time.sleep(0.05)


def assert_complete(path: pathlib.Path, first: bytes, expected: int) -> None:
    """The rerun kept every earlier line as it was and added each missing run exactly once."""
    assert path.read_bytes().startswith(first)
    keys = run_keys(path)
    assert len(keys) == expected and len(set(keys)) == expected, keys
    assert not path.with_name("results.jsonl.lock").exists()


@pytest.fixture
def both():
    pytest.importorskip("torch")
    pytest.importorskip("flax")


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_9_mid_grid_refuses_a_second_process_then_resumes(
    engine, both, tmp_path, mnist_dir, compare_here
):
    # Two hidden sizes. The sweep engine writes a group's records together, so its groups get two
    # members (two rates: 8 runs, written 4 at a time); the loop writes run by run, and 4 runs
    # suffice to kill it mid-grid.
    rates = "1e-3,2e-3" if engine == "sweep" else "1e-3"
    total = 2 * 2 * len(rates.split(","))  # sizes x rates x backends
    args = grid_args(tmp_path, mnist_dir, sizes="16,24", rates=rates) + engine_args(engine)
    path = tmp_path / "results.jsonl"
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "compare.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_lines(path, 1, p)
    # paused, lock held: the grid cannot finish while the second one starts
    p.send_signal(signal.SIGSTOP)
    # the same command again while the first runs: refused, the first untouched
    second = compare(*args)
    p.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and "in use by another process" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    wait_for_lines(path, 2, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = path.read_bytes()
    assert 2 <= first.count(b"\n") < total and first.endswith(b"\n"), (
        "the kill should land mid-grid"
    )
    run_keys(path)  # every line whole

    # The resume runs in this process (conftest's compare_here): the process that faults and the
    # one that is refused are real; the resume is about the file it finds, and a start-up of torch
    # and JAX is spared.
    r = compare_here(*args)  # the kill left the lock file behind; its lock died with the process
    assert r.returncode == 0, r.stderr[-2000:]
    assert_complete(path, first, total)
    assert all(json.loads(x)["status"] == "ok" for x in path.read_text().splitlines())


# A child that runs compare.py and dies by SIGKILL halfway through writing its third result line.
TEAR = """
import os, runpy, signal, sys
real_write, seen = os.write, [0]
def write(fd, data):
    if isinstance(data, bytes) and data.startswith(b'{"backend"'):
        seen[0] += 1
        if seen[0] == 3:
            real_write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)
os.write = write
sys.argv = ["compare.py", *sys.argv[1:]]
runpy.run_path("compare.py", run_name="__main__")
"""


def test_kill_9_during_a_results_write(both, tmp_path, mnist_dir, compare_here):
    args = grid_args(tmp_path, mnist_dir, sizes="16,24,32", backend="torch") + engine_args("loop")
    path = tmp_path / "results.jsonl"
    p = subprocess.run(
        [sys.executable, "-c", TEAR, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    torn = path.read_bytes()
    first = torn[: torn.rfind(b"\n") + 1]
    # two whole lines, half of the third
    assert first.count(b"\n") == 2 and not torn.endswith(b"\n")

    r = compare_here(*args)  # in this process: the child that tore the line was real (see above)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "dropped a torn last line" in r.stderr
    assert_complete(path, first, 3)


class FullDisk:
    """os.write for comparison/results.py that takes part of the `fail_at`-th result line and then
    reports ENOSPC, as a filling disk does."""

    def __init__(self, fail_at: int):
        self.fail_at, self.calls = fail_at, 0

    def __call__(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls < self.fail_at:
            return os.write(fd, data)
        if self.calls == self.fail_at:
            return os.write(fd, data[:100])  # a short write: the disk filled during it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_the_file_whole_and_says_so(both, tmp_path, mnist_dir, monkeypatch, capsys):
    import compare
    import comparison.results

    args = grid_args(tmp_path, mnist_dir, sizes="16,24,32", backend="torch") + engine_args("loop")
    path = tmp_path / "results.jsonl"
    # the module's own `os` with a failing write; the rest of Python untouched
    fake_os = type(os)("os")
    fake_os.__dict__.update(os.__dict__)
    fake_os.write = FullDisk(fail_at=2)
    monkeypatch.setattr(comparison.results, "os", fake_os)
    with pytest.raises(SystemExit) as exit_:
        compare.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1
    assert "No space left on device" in err[-1] and "1 finished runs are safe" in err[-1], err
    first = path.read_bytes()
    assert first.count(b"\n") == 1 and first.endswith(b"\n")  # the short write was cut off again
    assert not path.with_name("results.jsonl.lock").exists()

    monkeypatch.undo()
    assert compare.main(args) == 0  # space again: the same command finishes the grid
    assert_complete(path, first, 3)


def test_full_disk_while_writing_the_report(tmp_path, monkeypatch, capsys):
    import compare
    import comparison.report

    rec = {
        "backend": "torch",
        "config": Config(epochs=1).to_dict(),
        "status": "ok",
        "error": None,
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.2, "test_accuracy": 0.95}],
        "loss_curve": [0.3],
        "loss_curve_every": 1,
        "steps": 600,
        "step_time_us": 2500.0,
        "warmup_s": 0.01,
        "device": "cpu",
        "versions": {},
        "dataset": {"name": "mnist"},
    }
    (tmp_path / "results.jsonl").write_text(json.dumps(rec) + "\n")
    before = (tmp_path / "results.jsonl").read_bytes()

    def no_space(records, out):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(comparison.report, "write_report", no_space)
    with pytest.raises(SystemExit) as exit_:
        compare.main(["--report", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        exit_.value.code == 1
        and len(err) == 1
        and "No space left" in err[0]
        and "--report" in err[0]
    )
    assert (tmp_path / "results.jsonl").read_bytes() == before
