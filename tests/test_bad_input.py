"""Bad input at every entry point: one line on stderr naming the problem and what is allowed, exit
status 2, no traceback, and nothing already in the output directory changed.

The table runs each entry point's `main(argv)` in this process (the frameworks load once, so the
whole table takes seconds); a few rows also run as real processes to prove that no traceback
reaches the terminal. A new entry point joins by adding it to ENTRY_POINTS; a new bad input, by
adding a row to CASES with the entry points it applies to.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMPARE, TORCH, FLAX = "compare.py", "python -m impls.torch_mlp", "python -m impls.flax_mlp"
BENCH_STEP, BENCH_PIPE, BENCH_LOAD = "bench_step.py", "bench_pipeline.py", "bench_data_load.py"
BENCH_SWEEP = "bench_sweep.py"
# those taking --config / --set / --device
RUN_FLAGS = (COMPARE, TORCH, FLAX, BENCH_STEP, BENCH_PIPE)
DEVICE_FLAGS = RUN_FLAGS + (BENCH_SWEEP,)  # those taking --device
DATA_FLAGS = RUN_FLAGS + (BENCH_LOAD, BENCH_SWEEP)  # those taking --data-dir

# A TOML file's text per name; the rows below point --config at them.
TOMLS = {
    "invalid": "hidden_size = [\n",
    "unknown": "colour = 1\n",
    "wrongtype": 'hidden_size = "big"\n',
    "nan": "learning_rate = nan\n",
    "zero": "batch_size = 0\n",
    "empty": "hidden_size = []\n",
}

# (id, arguments ({tmp}, {bad}, {mnist} filled in), words the line must hold, entry points).
CASES = [
    ("unknown config name", ["--config", "nope"], ["--config", "'nope'", "allowed"], RUN_FLAGS),
    (
        "missing toml",
        ["--config", "{tmp}/missing.toml"],
        ["missing.toml", "no such file"],
        RUN_FLAGS,
    ),
    (
        "unreadable toml (a folder)",
        ["--config", "{bad}/dir.toml"],
        ["dir.toml", "cannot read"],
        RUN_FLAGS,
    ),
    ("invalid toml", ["--config", "{bad}/invalid.toml"], ["invalid.toml", "TOML"], RUN_FLAGS),
    (
        "unknown field in toml",
        ["--config", "{bad}/unknown.toml"],
        ["'colour'", "allowed"],
        RUN_FLAGS,
    ),
    ("unknown field in --set", ["--set", "colour=red"], ["'colour'", "allowed"], RUN_FLAGS),
    (
        "wrong type in toml",
        ["--config", "{bad}/wrongtype.toml"],
        ["hidden_size", "'big'", "allowed"],
        RUN_FLAGS,
    ),
    (
        "wrong type in --set",
        ["--set", "hidden_size=abc"],
        ["hidden_size", "'abc'", "allowed"],
        RUN_FLAGS,
    ),
    (
        "learning_rate=nan",
        ["--set", "learning_rate=nan"],
        ["learning_rate", "nan", "finite"],
        RUN_FLAGS,
    ),
    (
        "learning_rate=inf",
        ["--set", "learning_rate=inf"],
        ["learning_rate", "inf", "finite"],
        RUN_FLAGS,
    ),
    (
        "learning_rate nan in toml",
        ["--config", "{bad}/nan.toml"],
        ["learning_rate", "finite"],
        RUN_FLAGS,
    ),
    ("batch_size=0", ["--set", "batch_size=0"], ["batch_size", "got 0", "1 to 60000"], RUN_FLAGS),
    (
        "batch_size 0 in toml",
        ["--config", "{bad}/zero.toml"],
        ["batch_size", "1 to 60000"],
        RUN_FLAGS,
    ),
    (
        "batch_size=70000",
        ["--set", "batch_size=70000"],
        ["batch_size", "70000", "1 to 60000"],
        RUN_FLAGS,
    ),
    (
        "hidden_layers=-1",
        ["--set", "hidden_layers=-1"],
        ["hidden_layers", "-1", "0 to 64"],
        RUN_FLAGS,
    ),
    (
        "empty --set value",
        ["--set", "hidden_size="],
        ["hidden_size", "empty", "allowed"],
        RUN_FLAGS,
    ),
    (
        "empty item in a --set list",
        ["--set", "hidden_size=400,,600"],
        ["hidden_size", "empty"],
        RUN_FLAGS,
    ),
    ("empty --set key", ["--set", "=3"], ["--set", "allowed"], RUN_FLAGS),
    ("--set without =", ["--set", "epochs"], ["--set", "key=value"], RUN_FLAGS),
    ("empty list in toml", ["--config", "{bad}/empty.toml"], ["hidden_size", "empty"], RUN_FLAGS),
    ("unknown flag", ["--bogus"], ["--bogus"], DATA_FLAGS),
    ("--device tpu", ["--device", "tpu"], ["--device", "'tpu'", "cpu"], DEVICE_FLAGS),
    (
        "--data-dir missing",
        ["--data-dir", "{tmp}/nowhere"],
        ["nowhere", "no such folder", "expected"],
        DATA_FLAGS,
    ),
    (
        "--data-dir with a truncated file",
        ["--data-dir", "{bad}/trunc"],
        ["t10k-labels", "truncated", "expected"],
        DATA_FLAGS,
    ),
    (
        "--data-dir with a wrong checksum",
        ["--data-dir", "{bad}/wrongmd5"],
        ["t10k-labels", "md5", "expected"],
        DATA_FLAGS,
    ),
    ("--out is a file", ["--out", "{tmp}/a-file"], ["--out", "a-file", "not a folder"], (COMPARE,)),
    ("--out unwritable", ["--out", "{unwritable}"], ["--out", "cannot write"], (COMPARE,)),
    (
        "--report on a missing results file",
        ["--report", "{tmp}/empty-out"],
        ["--report", "no results"],
        (COMPARE,),
    ),
    (
        "--report on a torn last line",
        ["--report", "{bad}/torn"],
        ["results.jsonl", "line 2", "delete"],
        (COMPARE,),
    ),
    (
        "--report on a line of garbage",
        ["--report", "{bad}/garbage"],
        ["results.jsonl", "line 1", "delete"],
        (COMPARE,),
    ),
    (
        "--device gpu with no GPU",
        ["--device", "gpu"],
        ["--device gpu", "no", "GPU", "allowed"],
        DEVICE_FLAGS,
    ),
]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(
        name.removesuffix(".py"), ROOT / "benchmarks" / name
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(entry: str):
    """The entry point's main(argv)."""
    if entry == COMPARE:
        import compare

        return compare.main
    if entry in (TORCH, FLAX):
        import importlib

        return importlib.import_module(
            ("impls.torch_mlp" if entry == TORCH else "impls.flax_mlp") + ".__main__"
        ).main
    return _load_script(entry).main


def _record(status: str = "ok") -> dict:
    return {
        "backend": "torch",
        "config": Config(epochs=1).to_dict(),
        "status": status,
        "error": None,
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.2, "test_accuracy": 0.95}],
        "loss_curve": [0.3],
        "loss_curve_every": 1,
        "steps": 600,
        "step_time_us": 2500.0,
        "samples_per_s": 40000.0,
        "warmup_s": 0.01,
        "train_s": 1.5,
        "wall_s": 2.0,
        "device": "cpu",
        "versions": {},
        "dataset": {"name": "mnist"},
    }


@pytest.fixture(scope="module")
def bad(tmp_path_factory, mnist_dir) -> pathlib.Path:
    """Bad inputs made once: TOML files, MNIST folders with a truncated file and a wrong checksum,
    results files with a torn last line and a line of garbage."""
    root = tmp_path_factory.mktemp("bad")
    for name, text in TOMLS.items():
        (root / f"{name}.toml").write_text(text)
    (root / "dir.toml").mkdir()
    for name in ("trunc", "wrongmd5"):
        shutil.copytree(
            mnist_dir, root / name, ignore=shutil.ignore_patterns("*-ubyte", "MNIST", "mnist")
        )
    gz = root / "trunc" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:2000])  # a download cut short
    gz = root / "wrongmd5" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: still a valid IDX file, not the published one
    gz.write_bytes(gzip.compress(bytes(raw)))
    line = json.dumps(_record())
    (root / "torn").mkdir()
    (root / "torn" / "results.jsonl").write_text(line + "\n" + line[:40])
    (root / "garbage").mkdir()
    (root / "garbage" / "results.jsonl").write_text("not json at all\n" + line + "\n")
    return root


def unwritable_dir(tmp: pathlib.Path) -> pathlib.Path:
    """An existing folder this process cannot write to. root ignores permission bits, but not
    sysfs."""
    if os.geteuid() == 0:
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys/kernel: no folder to make unwritable")
        return pathlib.Path("/sys/kernel")
    d = tmp / "read-only"
    d.mkdir()
    d.chmod(0o500)
    return d


def snapshot(folder: pathlib.Path) -> dict[str, str]:
    """Every file under `folder` -> md5 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _rows():
    for case_id, args, words, entries in CASES:
        for entry in entries:
            yield pytest.param(entry, args, words, id=f"{entry}: {case_id}")


@pytest.mark.parametrize("entry, args, words", list(_rows()))
def test_bad_input_is_one_line_and_exit_2(entry, args, words, bad, mnist_dir, tmp_path, capsys):
    if entry in (TORCH, FLAX, BENCH_STEP, BENCH_PIPE, BENCH_SWEEP) or (
        entry == COMPARE and "--list" not in args
    ):
        pytest.importorskip("torch")
        pytest.importorskip("flax")
    if "gpu" in args and _has_gpu():
        pytest.skip("this machine has a GPU")
    if entry == BENCH_PIPE and not (ROOT / "benchmarks" / BENCH_PIPE).exists():
        pytest.skip("no bench_pipeline.py yet")
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "empty-out").mkdir()
    fill = {"tmp": tmp_path, "bad": bad, "mnist": mnist_dir}
    if "{unwritable}" in args:
        fill["unwritable"] = unwritable_dir(tmp_path)
    argv = [a.format(**fill) for a in args]
    if "--data-dir" not in argv and entry != BENCH_LOAD:
        argv += ["--data-dir", str(mnist_dir)]
    out = tmp_path / "out"  # a finished run's folder: nothing in it may change
    if entry == COMPARE and "--out" not in argv and "--report" not in argv:
        out.mkdir()
        (out / "results.jsonl").write_text(json.dumps(_record()) + "\n")
        (out / "report.md").write_text("# an earlier report\n")
        argv += ["--out", str(out), "--quiet"]
    watched = [p for p in (out, bad) if p.exists()]
    before = [snapshot(p) for p in watched]
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_:
        _main(entry)(argv)

    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2, err
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], (word, err[0])
    said = err[0].split(":")[0]  # what the line is about, said once ("--device gpu: ...")
    assert f"{said}: {said}" not in err[0], err[0]
    assert [snapshot(p) for p in watched] == before, "an input or output file changed"


@pytest.mark.parametrize(
    "entry, argv",
    [
        (COMPARE, [str(ROOT / "compare.py"), "--set", "batch_size=70000"]),
        (TORCH, ["-m", "impls.torch_mlp", "--set", "learning_rate=nan"]),
        (FLAX, ["-m", "impls.flax_mlp", "--config", "nope"]),
        (BENCH_STEP, [str(ROOT / "benchmarks" / BENCH_STEP), "--set", "hidden_layers=-1"]),
        # test_benchmarks runs its main in-process
        (BENCH_PIPE, [str(ROOT / "benchmarks" / BENCH_PIPE), "--steps", "0"]),
        (BENCH_LOAD, [str(ROOT / "benchmarks" / BENCH_LOAD), "--data-dir", "/nowhere"]),
    ],
)
def test_a_real_process_prints_no_traceback(entry, argv):
    r = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
