"""TensorBoard event files (comparison/tensorboard.py): every compare.py run writes them (unless
--no-tensorboard), `--report` writes them from results.jsonl alone, they hold the records' numbers
value for value, and a real `tensorboard --logdir` serves them (scalars, HParams).

Also, end to end: `compare.py --save-models` leaves each backend's checkpoint, each loadable its
framework's way, and says where in the records (both engines)."""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from comparison.results import scan_results
from shared.checkpoint import run_name
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRID = ROOT / "docs" / "results" / "cpu-grid" / "results.jsonl"
BASELINE = ROOT / "docs" / "results" / "cpu-baseline" / "results.jsonl"

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from comparison.tensorboard import TAGS, grid_axes, scalars, write_events  # noqa: E402


@pytest.fixture(scope="module")
def records():
    """24 records of the committed grid (12 configurations, both backends, several axes), and a
    diverged one made from the first: NaN losses from step 5, no finished epoch."""
    recs = scan_results(GRID)[0][:24]
    bad = copy.deepcopy(recs[0])
    bad["config"]["learning_rate"] = 123.0
    bad.update(status="diverged", epochs=[], step_time_us=None)
    bad["loss_curve"] = bad["loss_curve"][:4] + [None] * 3
    return [*recs, bad]


@pytest.fixture(scope="module")
def logdir(records, tmp_path_factory):
    return write_events(records, tmp_path_factory.mktemp("tb") / "tensorboard")


def read_run(folder: pathlib.Path):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def hparams_of(acc) -> dict:
    """The HParams of a run's session start info, as TensorBoard's plugin reads them."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {
        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
        for k, v in info.hparams.items()
    }


def test_one_run_per_record_configurations_side_by_side(records, logdir):
    names = sorted(f"{run_name(Config(**r['config']))}/{r['backend']}" for r in records)
    found = sorted(str(p.relative_to(logdir)) for p in logdir.glob("*/*") if p.is_dir())
    assert found == names
    # torch and JAX of one configuration: two runs in one folder, so they overlay (the 12
    # configurations; the diverged record's lr is its own; beside them, the HParams event file)
    pairs = [p for p in logdir.iterdir() if p.is_dir() and len(list(p.iterdir())) == 2]
    assert len(pairs) == 12
    assert all({p.name for p in pair.iterdir()} == {"torch", "jax"} for pair in pairs)


def test_event_files_hold_the_records_values(records, logdir):
    for rec in records:
        acc = read_run(logdir / run_name(Config(**rec["config"])) / rec["backend"])
        want: dict = {}
        for tag, step, value in scalars(rec):
            want.setdefault(tag, []).append((step, np.float32(value)))
        assert set(acc.Tags()["scalars"]) == set(want)
        for tag, points in want.items():
            got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
            assert got == points, tag
        # the record's own fields, value for value (TensorBoard keeps float32)
        every = rec["loss_curve_every"]
        curve = [(i * every + 1, np.float32(x)) for i, x in enumerate(rec["loss_curve"]) if x]
        assert want["train/loss"] == curve
        if rec["epochs"]:
            acc_curve = [(e["epoch"], np.float32(e["test_accuracy"])) for e in rec["epochs"]]
            assert want["test/accuracy"] == acc_curve
            assert want["test/loss"][-1][1] == np.float32(rec["epochs"][-1]["test_loss"])
            assert want["time/step_time_us"] == [(rec["steps"], np.float32(rec["step_time_us"]))]
        else:
            assert "test/accuracy" not in want and "time/step_time_us" not in want


def test_hparams_are_the_grids_axes_and_the_backend(records, logdir):
    axes = grid_axes(records)
    assert {"learning_rate", "activation"} <= set(axes) and "seed" not in axes
    for rec in records:
        acc = read_run(logdir / run_name(Config(**rec["config"])) / rec["backend"])
        got = hparams_of(acc)
        want = {a: rec["config"][a] for a in axes}
        want.update(backend=rec["backend"], status=rec["status"])
        assert got == {k: float(v) if isinstance(v, int) else v for k, v in want.items()}


def test_a_field_older_records_lack_is_not_an_axis(records, tmp_path):
    """A resumed --out can hold records written before a Config field existed: such a record
    runs at the field's default, so the field does not vary and the file still converts."""
    old = copy.deepcopy(records[:2])  # the committed grid's: written before Config.compile
    assert "compile" not in old[0]["config"]
    old[1]["config"]["compile"] = False  # a record written since, at the default
    assert grid_axes(old) == grid_axes(records[:2])
    run = write_events(old, tmp_path) / run_name(Config(**old[0]["config"])) / old[0]["backend"]
    assert hparams_of(read_run(run))["backend"] == old[0]["backend"]


def test_rewriting_replaces_a_run_not_appends_to_it(records, tmp_path):
    write_events(records[:2], tmp_path)
    write_events(records[:2], tmp_path)
    run = tmp_path / run_name(Config(**records[0]["config"])) / records[0]["backend"]
    assert len(list(run.iterdir())) == 1
    assert len(read_run(run).Scalars("test/accuracy")) == len(records[0]["epochs"])


def test_report_writes_them_from_results_alone(tmp_path, compare_here):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(BASELINE, out / "results.jsonl")
    r = compare_here("--report", str(out), "--no-tensorboard")
    assert r.returncode == 0 and not (out / "tensorboard").exists()
    r = compare_here("--report", str(out))
    assert r.returncode == 0, r.stderr
    assert f"tensorboard --logdir {out / 'tensorboard'}" in r.stdout
    assert sorted(p.name for p in (out / "tensorboard" / "defaults").iterdir()) == ["jax", "torch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return json.load(r)


def test_a_real_tensorboard_serves_the_runs(records, logdir):
    """tensorboard --logdir on 127.0.0.1: its HTTP API gives a run's scalars as the record has
    them, and its HParams dashboard sorts the sessions by final test accuracy."""
    pytest.importorskip("tensorboard")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
        + ["--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    everything = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "sliceSize": 100}
    try:
        # Bounded wait until every run is loaded: listed, and its HParams session read.
        sessions, deadline = 0, time.monotonic() + 120
        while sessions < len(records) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                sessions = get(f"{base}/data/plugin/hparams/session_groups", everything)[
                    "totalSize"
                ]
            except OSError:
                pass
            time.sleep(0.5)
        assert sessions == len(records)
        # a run per record, and the experiment's own file at the top
        assert sorted(get(f"{base}/data/runs")) == sorted(
            [".", *(f"{run_name(Config(**r['config']))}/{r['backend']}" for r in records)]
        )
        rec = records[1]
        run = f"{run_name(Config(**rec['config']))}/{rec['backend']}"
        for tag, field in (("test/accuracy", "test_accuracy"), ("test/loss", "test_loss")):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            points = get(f"{base}/data/plugin/scalars/scalars?{query}")
            assert [(p[1], np.float32(p[2])) for p in points] == [
                (e["epoch"], np.float32(e[field])) for e in rec["epochs"]
            ]
        experiment = get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert names == {"backend", *grid_axes(records), "status"}
        # numbers too get their values as a list (checkboxes to filter by), not a min-max range
        lr = next(h for h in experiment["hparamInfos"] if h["name"] == "learning_rate")
        assert lr["domainDiscrete"] == sorted({r["config"]["learning_rate"] for r in records})
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == set(TAGS)
        best = get(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS"],
                "colParams": [{"metric": {"tag": "test/accuracy"}, "order": "ORDER_DESC"}],
                "startIndex": 0,
                "sliceSize": 3,
            },
        )["sessionGroups"][0]
        top = max(r["epochs"][-1]["test_accuracy"] for r in records if r["epochs"])
        value = next(
            m["value"] for m in best["metricValues"] if m["name"]["tag"] == "test/accuracy"
        )
        assert np.float32(value) == np.float32(top)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ compare.py, end to end


TINY = ["--set", "hidden_size=32", "--set", "batch_size=6000", "--set", "epochs=1"]


@pytest.mark.parametrize("engine", ["loop", "sweep"])
def test_compare_saves_models_and_writes_event_files(engine, tmp_path, mnist_dir, compare_here):
    """The issue's "done when": the save flag leaves one torch and one Flax checkpoint per
    configuration, loadable their framework's way, named in the records; the event files hold the
    records' numbers."""
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    import orbax.checkpoint as ocp
    import torch

    lrs = "0.001" if engine == "loop" else "0.001,0.01"
    args = ["--config", "baseline", *TINY, "--set", f"learning_rate={lrs}", "--engine", engine]
    out = tmp_path / "out"
    args += ["--save-models", "--data-dir", str(mnist_dir), "--out", str(out), "--quiet"]
    r = compare_here(*args)
    assert r.returncode == 0, r.stderr
    records = scan_results(out / "results.jsonl")[0]
    assert len(records) == 2 * len(lrs.split(","))
    for rec in records:
        assert rec["engine"] == engine and rec["status"] == "ok"
        path = out / rec["model"]
        name = run_name(Config(**rec["config"]))
        assert (
            rec["model"]
            == f"models/{name}/{'torch.pt' if rec['backend'] == 'torch' else 'jax.orbax'}"
        )
        if rec["backend"] == "torch":
            state = torch.load(path, weights_only=True)
            assert state["layers.0.weight"].shape == (32, 784)
        else:
            tree = ocp.StandardCheckpointer().restore(path.resolve())
            assert tree["layers"]["0"]["kernel"]["value"].shape == (784, 32)
        acc = read_run(out / "tensorboard" / name / rec["backend"])
        got = [np.float32(e.value) for e in acc.Scalars("test/accuracy")]
        assert got == [np.float32(e["test_accuracy"]) for e in rec["epochs"]]
    assert len(list((out / "models").iterdir())) == len(lrs.split(","))
