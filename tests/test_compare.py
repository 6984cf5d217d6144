"""compare.py end to end: real MNIST, both backends, results schema, report, resume, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest

from comparison.results import ResultsFile, ResultsLocked, config_of, scan_results
from shared.config import FIELD_NAMES, Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = {
    "backend",
    "config",
    "status",
    "error",
    "epochs",
    "loss_curve",
    "loss_curve_every",
    "steps",
    "step_time_us",
    "step_time_spread",
    "samples_per_s",
    "warmup_s",
    "train_s",
    "wall_s",
    "device",
    "versions",
    "dataset",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def compare(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "compare.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def needs_both():
    pytest.importorskip("torch")
    pytest.importorskip("flax")


def lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ------------------------------------------------------------------ no training


def test_list_grid_counts_432_configurations_864_runs():
    r = compare("--config", "grid", "--list")
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert out[-1] == "432 configurations, 864 runs"  # a run: one configuration on one backend
    assert len(out) == 433
    assert "lr=1 " in r.stdout and "lr=1e-06" in r.stdout  # the literal learning rates


def test_list_custom_axes():
    r = compare(
        "--config",
        "baseline",
        "--set",
        "hidden_size=400,600",
        "--set",
        "batch_size=100,300,600",
        "--list",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "6 configurations, 12 runs"
    r = compare("--config", "baseline", "--backend", "jax", "--list")
    assert r.stdout.strip().splitlines()[-1] == "1 configuration, 1 run"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--set", "activation=tanh"], "activation"),
        (["--set", "hidden_size=abc"], "hidden_size"),
        (["--set", "learning_rate=0"], "learning_rate"),
        (["--set", "batch_size=100,-3"], "batch_size"),
        (["--set", "colour=red"], "colour"),
        (["--set", "epochs"], "epochs"),
        (["--config", "nope"], "--config"),
        (["--config", "missing.toml"], "missing.toml"),
        (["--backend", "mxnet"], "--backend"),
        (["--device", "tpu"], "--device"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, field, tmp_path):
    r = compare(*args, "--out", str(tmp_path / "out"), "--list")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert field in err[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_help_explains_every_flag():
    r = compare("--help")
    assert r.returncode == 0
    for flag in (
        "--config",
        "--backend",
        "--set",
        "--data-dir",
        "--out",
        "--device",
        "--list",
        "--report",
        "--quiet",
    ):
        assert flag in r.stdout


def test_second_process_on_same_out_is_refused(tmp_path, mnist_dir):
    pytest.importorskip("jax")
    path = tmp_path / "results.jsonl"
    with ResultsFile(path):
        with pytest.raises(ResultsLocked, match="in use by another process"):
            ResultsFile(path).open()
        r = compare(
            "--config",
            "smoke",
            "--out",
            str(tmp_path),
            "--backend",
            "jax",
            "--quiet",
            "--data-dir",
            str(mnist_dir),
        )
        assert r.returncode == 2 and "in use by another process" in r.stderr
    with ResultsFile(path):  # released: it can be taken again
        pass


def test_torn_last_line_is_dropped_and_appends_stay_whole(tmp_path):
    path = tmp_path / "results.jsonl"
    rec = {"backend": "torch", "config": Config().to_dict(), "status": "ok"}
    path.write_text(json.dumps(rec) + "\n" + '{"backend": "jax", "conf')  # a power cut mid-line
    with ResultsFile(path) as rf:
        assert len(rf.records) == 1
        rf.append({**rec, "backend": "jax"})
    records, bad = scan_results(path)
    assert [r["backend"] for r in records] == ["torch", "jax"] and bad == []


def test_device_mismatch_is_named():
    from comparison import executors

    assert executors.device_mismatch({"torch": "cpu", "jax": "cpu"}) is None
    on_gpus = {"torch": "cuda:0 NVIDIA H100", "jax": "gpu:0 NVIDIA H100"}
    assert executors.device_mismatch(on_gpus) is None
    assert executors.device_mismatch({"jax": "cpu"}) is None
    warning = executors.device_mismatch({"torch": "cuda:0 NVIDIA H100", "jax": "cpu"})
    assert (
        warning.startswith("torch runs on the GPU but jax on the CPU") and "--device gpu" in warning
    )


def test_datasets_are_loaded_once_per_process(mnist_dir, capsys):
    import compare
    from shared import cli

    loaded = compare.load_datasets([Config(), Config(hidden_size=64)], str(mnist_dir))
    assert list(loaded) == ["mnist"] and loaded["mnist"] is cli.dataset("mnist", str(mnist_dir))
    # said later, once every check has passed (announce)
    assert "[data]" not in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("engine", ["loop", "sweep"])
def test_error_records_name_the_resolved_device(backend, engine, mnist, monkeypatch, capsys):
    """A run that fails is recorded where it would have run ("cpu", "gpu:0 NAME"), as its twin's
    records are, not as the --device it was asked for ("auto")."""
    from comparison import executors

    pytest.importorskip("torch" if backend == "torch" else "flax")
    mod = executors.backend_module(backend, engine)

    def broken(*args, **kwargs):
        raise ValueError("broken on purpose")

    monkeypatch.setattr(mod, "train_group" if engine == "sweep" else "train", broken)
    cfg = Config(epochs=1)
    members = (cfg, dataclasses.replace(cfg, learning_rate=1e-2))
    unit = executors.Unit(backend, engine, members if engine == "sweep" else (cfg,))
    recs = executors.train_unit(unit, mnist, "auto", log_steps=False)
    assert "broken on purpose" in capsys.readouterr().err
    resolved = executors.device_name(backend, "auto")
    assert resolved != "auto"
    assert len(recs) == len(unit.configs)
    for rec in recs:
        assert rec["status"] == "error" and rec["error"] == "ValueError: broken on purpose"
        assert rec["device"] == resolved and rec["engine"] == engine


# ------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory, mnist_dir):
    needs_both()
    out = tmp_path_factory.mktemp("smoke")
    r = compare("--config", "smoke", "--data-dir", str(mnist_dir), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_smoke_end_to_end_schema(smoke_out):
    out, r = smoke_out
    recs = lines(out / "results.jsonl")
    # 2 configs x 2 backends, each written as it finished (the report reads them in any order)
    by = {(x["backend"], config_of(x).key()): x for x in recs}
    assert len(recs) == len(by) == 4 and {b for b, _ in by} == {"torch", "jax"}
    for rec in recs:
        assert KEYS <= set(rec), KEYS - set(rec)
        assert set(rec["config"]) == set(FIELD_NAMES)
        assert rec["status"] == "ok", rec.get("error")
        cfg = config_of(rec)
        assert [e["epoch"] for e in rec["epochs"]] == list(range(1, cfg.epochs + 1))
        assert rec["steps"] == cfg.epochs * cfg.steps_per_epoch
        assert len(rec["loss_curve"]) == -(-rec["steps"] // rec["loss_curve_every"]) <= 1000
        assert rec["step_time_us"] > 0 and rec["warmup_s"] > 0 and rec["wall_s"] > 0
        assert rec["dataset"]["name"] == "mnist"
        assert (
            rec["dataset"]["md5"]["train-images-idx3-ubyte"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
        )
        assert "python" in rec["versions"] and "numpy" in rec["versions"]
        assert ("torch" if rec["backend"] == "torch" else "jax") in rec["versions"]
        assert 0.8 < rec["epochs"][-1]["test_accuracy"] <= 1.0
        # loop: 3 windows of 50 steps after the first; sweep: one an epoch
        spread = rec["step_time_spread"]
        assert spread["windows"] == (2 if rec.get("engine") == "sweep" else 3)
        assert 0 < spread["p10"] <= spread["p50"] <= spread["p90"]
        assert rec["load_at_start"]["cpus"] >= 1 and rec["load_at_start"]["load_1m"] >= 0
        # measured once at the start, for the run's shape (CPU runs)
        assert rec["gemm_floor_us"] > 0
    # Same weights, same batches: the two backends' curves coincide.
    for t, j in ((by["torch", k], by["jax", k]) for k in {k for _, k in by}):
        assert max(abs(a - b) for a, b in zip(t["loss_curve"], j["loss_curve"])) < 1e-3
    # The sweep group's step said once per backend (it trains both configurations), then one line
    # per configuration naming both backends' accuracy and no per-run step that would look copied.
    said = r.stdout.splitlines()
    group = [ln for ln in said if ln.startswith("[group]")]
    assert [ln.split()[1] for ln in group] == ["torch", "jax"], said
    for ln in group:
        assert "2 configurations trained together" in ln and "µs per group step" in ln
    status = [ln for ln in said if " | torch " in ln and " | jax " in ln and ln not in group]
    assert len(status) == 2 and not any("µs" in ln for ln in status), said
    # The words of the report: runs, configurations, groups; the floor says what it is.
    err = r.stderr
    assert "[compare] 4 runs to train (2 configurations x 2 backends) with the sweep engine" in err
    assert "GEMM floor, the yardstick the report reads step times against" in err


def test_smoke_report_files(smoke_out):
    out, _ = smoke_out
    report = (out / "report.md").read_text()
    for section in ("## Loss", "## Accuracy", "## Convergence", "## Step speed"):
        assert section in report
    assert "GEMM floor µs" in report and "torch / floor" in report and "p90/p10" in report
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"loss_reference.png", "loss_grid.png", "accuracy_epochs.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 10_000
        assert f"]({p.name})" in report


def test_report_rebuilt_from_results_alone(smoke_out, tmp_path):
    out, _ = smoke_out
    (tmp_path / "results.jsonl").write_bytes((out / "results.jsonl").read_bytes())
    r = compare("--report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    assert (tmp_path / "loss_reference.png").stat().st_size > 10_000


def test_report_on_empty_folder_is_one_line(tmp_path):
    r = compare("--report", str(tmp_path))
    assert (
        r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no results" in r.stderr
    )


def test_rerun_skips_finished_runs(smoke_out, mnist_dir, compare_here):
    out, _ = smoke_out
    before = (out / "results.jsonl").read_bytes()
    r = compare_here(
        "--config", "smoke", "--data-dir", str(mnist_dir), "--out", str(out), "--quiet"
    )
    assert r.returncode == 0
    assert "4 finished runs" in r.stderr
    assert (out / "results.jsonl").read_bytes() == before


def test_diverged_and_collapsed_runs_are_recorded_and_the_grid_goes_on(
    tmp_path, mnist_dir, compare_here
):
    """Two ways a learning rate fails, in one grid (one compare.py run: its start-up and data load
    are paid once, and each run's assertions are the same as if it ran alone). compare.py runs in
    this process (conftest's compare_here); smoke_out above runs a real one.

    lr 1e30: Adam's first steps move every weight by ~1e30, the activations overflow float32 and
    the loss turns NaN: the run is recorded as diverged and the grid goes on to the next run.
    lr 10e-1 == 1.0, the grid's largest, does *not* do this: it is far too large for Adam, but its
    step is bounded by lr, so the loss stays finite; the ReLU units die and the net predicts about
    one class (~10%), and the report says so. lr 1e-3 beside them trains normally."""
    needs_both()
    r = compare_here(
        "--config",
        "smoke",
        "--set",
        "epochs=1",
        "--set",
        "output=logits",
        "--set",
        "learning_rate=1e30,1e-3,10e-1",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    recs = lines(tmp_path / "results.jsonl")
    by = {(x["backend"], x["config"]["learning_rate"]): x for x in recs}
    assert len(by) == 6
    for b in ("torch", "jax"):
        bad = by[(b, 1e30)]
        assert bad["status"] == "diverged" and bad["epochs"] == []
        assert None in bad["loss_curve"]  # the non-finite losses are kept, as null
        assert by[(b, 1e-3)]["status"] == "ok"
        collapsed = by[(b, 1.0)]
        assert collapsed["status"] == "ok"
        assert collapsed["epochs"][-1]["test_accuracy"] < 0.3
    diverged = [ln.count("DIVERGED") for ln in r.stdout.splitlines() if "DIVERGED" in ln]
    assert diverged == [2]  # one line, both backends
    report = (tmp_path / "report.md").read_text()
    assert "did not finish normally" in report
    # The did-not-learn counts name lr 1.0, and only it (lr 1e-3 learned; lr 1e30 is listed as
    # diverged): the table after the paragraph is its header, its rule and one row.
    stuck = report[report.index("but did not learn") :].split("\n\n")[1]
    assert stuck.splitlines()[2:] == ["| 1 | logits | 1 of 1 | 1 of 1 |"], stuck


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_sweep_tells_its_progress_after_each_epoch(backend, mnist):
    """A group trains for minutes on the CPU grid: it says each epoch, and the bar moves."""
    pytest.importorskip("torch" if backend == "torch" else "flax")
    from comparison import executors, progress

    mod = executors.backend_module(backend, "sweep")
    cfg = Config(hidden_size=16, batch_size=600, epochs=2)
    members = [cfg, dataclasses.replace(cfg, learning_rate=1e-2)]
    told = []
    mod.train_group(members, mnist, device="cpu", log=None, progress=lambda *a: told.append(a))
    assert told == [(1, 2, 2), (2, 2, 2)]  # (epochs done, epochs, members)
    bar = progress.RunBar(4)
    bar.start_unit(f"{backend} group")
    for args in told:
        bar.epoch(*args)
    assert bar.bar.n == pytest.approx(2.0) and "epoch 2/2" in bar.bar.desc
    bar.unit_done(2)
    bar.close()
    assert bar.bar.n == pytest.approx(2.0)
