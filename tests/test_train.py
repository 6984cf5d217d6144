"""train() in both twins on real MNIST: the record it returns, the tutorial's log lines, the
divergence stop, the device choice, and (slow) the tutorial's network reaching 95%+ after one epoch
in both, in agreement."""

from __future__ import annotations

import importlib
import json
import math
import re

import numpy as np
import pytest

from shared.config import Config
from shared.record import make_record

TWINS = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}
MODULES = {"torch": "impls.torch_mlp.train", "jax": "impls.flax_mlp.train"}
TINY = Config(hidden_size=32, batch_size=300, epochs=2)  # 200 steps an epoch: two log lines each
RECORD_KEYS = set(
    make_record(
        backend="x",
        cfg=TINY,
        data=None,
        status="ok",
        epochs=[],
        loss_curve=[],
        timing={},
        wall_s=0.0,
        device="",
        versions={},
    )
)
STEP_LINE = re.compile(r"^Epoch \[(\d+)/(\d+)\], Step \[(\d+)/(\d+)\], Loss: (\d+\.\d{4})$")
TEST_LINE = re.compile(
    r"^Epoch \[(\d+)/(\d+)\], Test Loss: (\d+\.\d{4}), Test Accuracy: (\d+\.\d{2}) %$"
)


@pytest.fixture(params=list(TWINS))
def twin(request):
    """The train module of each twin (skipped where its framework is not installed)."""
    for module in TWINS[request.param]:
        pytest.importorskip(module)
    if request.param == "torch":
        import torch

        threads = torch.get_num_threads()
        # One thread, as conftest.py's torch_one_thread: fast on a shared CPU, same results
        torch.set_num_threads(1)
        yield importlib.import_module(MODULES["torch"])
        torch.set_num_threads(threads)
    else:
        yield importlib.import_module(MODULES["jax"])


def test_record_steps_and_log_lines(twin, mnist):
    lines = []
    record = twin.train(TINY, mnist, device="cpu", log=lines.append)
    json.dumps(record, allow_nan=False)  # what comparison.results writes: finite numbers only

    assert set(record) == RECORD_KEYS
    assert record["status"] == "ok" and record["error"] is None
    assert record["backend"] == ("torch" if "torch" in twin.__name__ else "jax")
    assert record["config"] == TINY.to_dict()
    assert record["steps"] == 2 * 200 == len(record["loss_curve"])
    assert record["device"] == "cpu"
    assert record["dataset"]["name"] == "mnist" and record["dataset"]["md5"]
    assert all(isinstance(v, str) for v in record["versions"].values())
    curve = np.array(record["loss_curve"])
    assert np.isfinite(curve).all()
    assert curve[-50:].mean() < 0.5 * curve[0]  # it learned
    for key in ("step_time_us", "samples_per_s", "warmup_s", "train_s", "wall_s"):
        assert math.isfinite(record[key]) and record[key] > 0
    assert record["train_s"] <= record["wall_s"]

    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    for e, epoch_curve in zip(record["epochs"], (curve[:200], curve[200:])):
        assert e["train_loss"] == pytest.approx(epoch_curve.mean(), rel=1e-6)
        assert math.isfinite(e["test_loss"]) and 0.85 < e["test_accuracy"] <= 1.0
        # A float32 run's accuracy: k / 10000 rounded to float32, the mean it always recorded.
        k = round(e["test_accuracy"] * len(mnist.test_labels))
        assert e["test_accuracy"] == float(np.float32(k) / np.float32(len(mnist.test_labels)))

    # The tutorial's lines: the loss every 100 steps, then each epoch's test loss and accuracy in %.
    step_lines = [
        STEP_LINE.match(line) for line in lines if line.startswith("Epoch") and "Step" in line
    ]
    assert all(step_lines) and len(step_lines) == 4
    for m, (epoch, step) in zip(step_lines, [(1, 100), (1, 200), (2, 100), (2, 200)]):
        assert m.groups()[:4] == (str(epoch), "2", str(step), "200")
        assert float(m.group(5)) == pytest.approx(curve[(epoch - 1) * 200 + step - 1], abs=5e-5)
    test_lines = [TEST_LINE.match(line) for line in lines if "Test" in line]
    assert all(test_lines) and len(test_lines) == 2
    assert float(test_lines[-1].group(4)) == pytest.approx(
        100 * record["epochs"][-1]["test_accuracy"], abs=0.005
    )


def test_divergence_stops_early_without_raising(twin, mnist, capsys):
    # lr 1e30: Adam's first steps move every weight by ~1e30, the activations overflow to inf, the
    # loss is NaN.
    cfg = Config(hidden_size=32, batch_size=300, epochs=2, learning_rate=1e30)
    record = twin.train(cfg, mnist, device="cpu", log=None)
    assert capsys.readouterr().out == ""  # log=None is silent
    assert record["status"] == "diverged" and record["error"] is None
    assert record["steps"] == 100  # stopped at the first log point, not trained on for 400 steps
    assert record["epochs"] == []  # no epoch finished with a finite loss
    assert None in record["loss_curve"]  # the NaN losses, as JSON can hold them
    json.dumps(record, allow_nan=False)


def test_resolve_device(twin):
    assert _runtime(twin).describe_device(_runtime(twin).resolve_device("cpu")) == "cpu"
    auto = _runtime(twin).describe_device(_runtime(twin).resolve_device("auto"))
    try:
        gpu = _runtime(twin).describe_device(_runtime(twin).resolve_device("gpu"))
    except RuntimeError as e:  # no GPU here: one line that says so, and auto falls back to the CPU
        assert "\n" not in str(e) and "gpu" in str(e)
        assert auto == "cpu"
    else:
        assert auto == gpu != "cpu"
    with pytest.raises(ValueError, match="auto | cpu | gpu"):
        _runtime(twin).resolve_device("tpu")


@pytest.mark.slow
def test_baseline_one_epoch_reaches_95_percent_in_both(mnist):
    """The tutorial's network (784-500-10, Adam 1e-3, batch 100), one epoch on MNIST, both twins."""
    for module in ("torch", "jax", "flax", "optax"):
        pytest.importorskip(module)
    import torch

    cfg = Config(epochs=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see torch_one_thread in test_parity.py
    try:
        records = {
            name: importlib.import_module(MODULES[name]).train(cfg, mnist, device="cpu", log=None)
            for name in MODULES
        }
    finally:
        torch.set_num_threads(threads)
    accuracy = {name: r["epochs"][-1]["test_accuracy"] for name, r in records.items()}
    assert all(r["status"] == "ok" and r["steps"] == 600 for r in records.values())
    assert min(accuracy.values()) >= 0.95, accuracy
    assert abs(accuracy["torch"] - accuracy["jax"]) <= 0.003, accuracy
    # Same weights, same batches: the loss curves agree as in test_parity.py over the first 200
    # steps; float32 rounding differences then grow step by step (measured: ~3e-3 apart by step
    # 600), still far below the loss.
    gap = np.abs(np.array(records["torch"]["loss_curve"]) - np.array(records["jax"]["loss_curve"]))
    assert gap[:200].max() <= 1e-3 and gap.max() <= 1e-2


def _runtime(twin):
    """The twin's runtime module (devices, precision), beside its train module."""
    return importlib.import_module(twin.__name__.replace(".train", ".runtime"))
