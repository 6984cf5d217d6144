"""The sweep engine (impls/*/sweep.py) trains every member of a group exactly as the loop (train.py)
would: loss curves, statuses and accuracies agree member by member on real MNIST, in both
frameworks; a diverging member changes nothing for the others; stacked Adam is independent Adam;
groups split to fit memory; compare.py --engine sweep writes loop-shaped records, reports them and
resumes a partly finished group."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import pathlib

import numpy as np
import pytest

from shared import groups
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMEWORKS = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}
TWIN = {"torch": "torch_mlp", "jax": "flax_mlp"}

BASE = Config(hidden_size=64, batch_size=600, epochs=1)  # one epoch = the first 100 steps
GROUP = [
    dataclasses.replace(BASE, learning_rate=lr, activation=a, output=o)
    for lr, a, o in itertools.product((1e-3, 1e-2), ("relu", "leaky_relu"), ("logits", "softmax"))
]
# The first step overflows float32: NaN from step 2
DIVERGING = dataclasses.replace(BASE, learning_rate=1e30)
# In its place, to keep the group's width (M = 9)
HEALTHY = dataclasses.replace(BASE, learning_rate=1e-4)
# Loss curves of sweep and loop in float32: equal within this (measured: <= 1e-6, the 7 digits a
# float32 record keeps; no ReLU-kink flips showed up here, and float64 agrees to 9e-16, see the
# float64 test).
CURVE_TOL = 1e-5


def modules(framework: str):
    for name in FRAMEWORKS[framework]:
        pytest.importorskip(name)
    twin = TWIN[framework]
    return importlib.import_module(f"impls.{twin}.sweep"), importlib.import_module(
        f"impls.{twin}.train"
    )


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # conftest.py: one torch thread


@pytest.fixture(scope="module", params=list(FRAMEWORKS))
def framework(request):
    return request.param


@pytest.fixture(scope="module")
def swept(framework, mnist):
    """The group plus a diverging member, trained together; and the group plus a healthy one.

    Same M in both: the wide GEMM's blocking may depend on its width, so groups of different sizes
    can round differently (within CURVE_TOL); with equal widths any difference is the diverging
    member's.
    """
    sweep, _ = modules(framework)
    with_bad = sweep.train_group(GROUP + [DIVERGING], mnist, device="cpu", log=None)
    without = sweep.train_group(GROUP + [HEALTHY], mnist, device="cpu", log=None)
    return with_bad, without


@pytest.fixture(scope="module")
def looped(framework, mnist):
    _, train = modules(framework)
    return [train.train(cfg, mnist, device="cpu", log=None) for cfg in GROUP + [DIVERGING]]


def curve(record) -> np.ndarray:
    return np.array([math.nan if x is None else x for x in record["loss_curve"]])


def test_every_member_matches_the_loop(swept, looped):
    with_bad, _ = swept
    worst = 0.0
    for cfg, s, loop in zip(GROUP, with_bad, looped):
        assert s["config"] == loop["config"] == cfg.to_dict()
        assert s["status"] == loop["status"] == "ok"
        assert s["steps"] == loop["steps"] == 100
        worst = max(worst, float(np.abs(curve(s) - curve(loop)).max()))
        assert s["epochs"][-1]["test_accuracy"] == pytest.approx(
            loop["epochs"][-1]["test_accuracy"], abs=2e-4
        )
        assert s["epochs"][-1]["test_loss"] == pytest.approx(
            loop["epochs"][-1]["test_loss"], abs=1e-4
        )
    assert worst <= CURVE_TOL, worst


def test_float64_members_match_the_loop_to_1e12(framework, mnist):
    """In float64 rounding is ~1e-16, so the sweep and the loop must agree far tighter (measured
    9e-16 over 100 steps, both frameworks); both record the accuracy as k / 10000 exactly, the
    same k; and JAX's x64 mode does not leak into the float32 runs after it."""
    sweep, train = modules(framework)
    cfgs = [
        dataclasses.replace(GROUP[4], dtype="float64"),
        dataclasses.replace(GROUP[3], dtype="float64"),
    ]
    for s, cfg in zip(sweep.train_group(cfgs, mnist, device="cpu", log=None), cfgs):
        loop = train.train(cfg, mnist, device="cpu", log=None)
        assert s["status"] == loop["status"] == "ok"
        assert np.abs(curve(s) - curve(loop)).max() <= 1e-12
        n, accuracy = len(mnist.test_labels), s["epochs"][-1]["test_accuracy"]
        assert accuracy == round(accuracy * n) / n == loop["epochs"][-1]["test_accuracy"]
    if framework == "jax":
        import jax.numpy as jnp

        assert jnp.zeros(1).dtype == jnp.float32


def test_diverging_member_is_recorded_as_the_loop_records_it(swept, looped):
    bad, loop = swept[0][-1], looped[-1]
    assert bad["status"] == loop["status"] == "diverged"
    assert bad["epochs"] == loop["epochs"] == []
    assert bad["steps"] == loop["steps"]  # cut at the same log step
    assert [x is None for x in bad["loss_curve"]] == [x is None for x in loop["loss_curve"]]
    assert bad["loss_curve"][0] == pytest.approx(loop["loss_curve"][0], abs=CURVE_TOL)


def test_diverging_member_does_not_disturb_the_others(swept):
    with_bad, without = swept
    for a, b in zip(with_bad[:-1], without[:-1]):
        assert a["loss_curve"] == b["loss_curve"]  # identical to the last digit
        assert a["epochs"] == b["epochs"]


def test_records_carry_engine_and_group(swept):
    with_bad, _ = swept
    for j, rec in enumerate(with_bad):
        assert rec["engine"] == "sweep"
        assert rec["group"]["members"] == len(GROUP) + 1 and rec["group"]["index"] == j
        assert rec["group"]["key"] == groups.group_key(BASE)
        # Step time per member = the group's step time / M.
        assert rec["step_time_us"] == pytest.approx(
            rec["group"]["group_step_time_us"] / (len(GROUP) + 1)
        )
        assert rec["warmup_s"] > 0 and rec["wall_s"] > 0


def test_stacked_adam_equals_independent_adam(framework):
    """Five Adam steps on stacked weights with per-member lr: bit for bit each member's own Adam."""
    _check_stacked_adam(framework)


def test_torch_adam_in_blocks_equals_independent_adam(monkeypatch):
    """The same, with torch's update done in blocks of 1,000 elements (the first W, 784 x 3 x 8, in
    many blocks of a few rows), as it is for the grid's ~25 MB tensors (sweep._row_blocks).
    (XLA fuses the update: no blocks.)"""
    from impls.torch_mlp import sweep

    monkeypatch.setattr(sweep, "_ADAM_BLOCK", 1000)
    _check_stacked_adam("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_prelu_equals_f_prelu_bit_for_bit(dtype):
    """sweep._prelu (its backward reads the mask off the output) gives F.prelu's values and
    gradients bit for bit, on the values where a mask could differ: ±0, the smallest subnormals,
    ±inf, NaN, and the slopes of ReLU and LeakyReLU side by side."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from impls.torch_mlp import sweep

    dt = getattr(torch, dtype)
    tiny = torch.finfo(dt).tiny * torch.finfo(dt).eps  # the smallest positive subnormal
    special = [0.0, -0.0, tiny, -tiny, math.inf, -math.inf, math.nan, 1.0, -1.0, 1e-30, -1e-30]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 4, 11, generator=generator, dtype=dt)  # (B, M, n): members on dim 1
    x.view(-1)[: len(special)] = torch.tensor(special, dtype=dt)
    x.view(-1)[-len(special) :] = torch.tensor(special, dtype=dt)  # the other members' too
    slopes = torch.tensor([0.0, 0.01, 0.0, 0.01], dtype=dt)
    grad = torch.randn(x.shape, generator=generator, dtype=dt)
    outs, grads = [], []
    for fn in (sweep._prelu, F.prelu):
        xi = x.clone().requires_grad_()
        out = fn(xi, slopes)
        out.backward(grad)
        outs.append(out.detach())
        grads.append(xi.grad)
    bits = torch.int32 if dtype == "float32" else torch.int64
    assert torch.equal(outs[0].view(bits), outs[1].view(bits))  # NaN and the sign of 0 included
    assert torch.equal(grads[0].view(bits), grads[1].view(bits))


def _check_stacked_adam(framework):
    sweep, _ = modules(framework)
    rng = np.random.default_rng(0)
    count, lrs = 3, np.array([1e-3, 1e-2, 1.0])
    shapes = [((784, count, 8), (count, 8)), ((count, 8, 10), (count, 10))]
    params = [
        (rng.standard_normal(w).astype(np.float32), rng.standard_normal(b).astype(np.float32))
        for w, b in shapes
    ]
    grads = [
        [
            (rng.standard_normal(w).astype(np.float32), rng.standard_normal(b).astype(np.float32))
            for w, b in shapes
        ]
        for _ in range(5)
    ]
    stacked = _stacked_adam(framework, sweep, params, grads, lrs)
    for m in range(count):
        alone = _independent_adam(
            framework, _member(params, m), [_member(g, m) for g in grads], lrs[m]
        )
        for got, want in zip(_member(stacked, m), alone):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def _member(layers, m: int):
    """Member m's [(W, b), ...] out of stacked ones (its first W on axis 1, all else on axis 0)."""
    return [(w[:, m] if i == 0 else w[m], b[m]) for i, (w, b) in enumerate(layers)]


def _stacked_adam(framework, sweep, params, grads, lrs):
    if framework == "torch":
        import torch

        p = [(torch.from_numpy(w.copy()), torch.from_numpy(b.copy())) for w, b in params]
        state = sweep.init_adam(p)
        lr, alive = torch.tensor(lrs, dtype=torch.float64), torch.ones(len(lrs), dtype=torch.bool)
        for g in grads:
            sweep.adam_step(
                p, [tuple(map(torch.from_numpy, layer)) for layer in g], state, lr, alive
            )
        return [(w.numpy(), b.numpy()) for w, b in p]
    import jax
    import jax.numpy as jnp

    p = jax.tree.map(jnp.asarray, params)
    state = sweep.init_adam(p)
    lr, alive = jnp.asarray(-lrs, dtype=jnp.float32), jnp.ones(len(lrs), dtype=bool)
    step = jax.jit(sweep.adam_step)
    for g in grads:
        p, state = step(p, jax.tree.map(jnp.asarray, g), state, lr, alive)
    return [(np.asarray(w), np.asarray(b)) for w, b in p]


def _independent_adam(framework, params, grads, lr):
    if framework == "torch":
        import torch

        p = [torch.from_numpy(x.copy()).requires_grad_() for layer in params for x in layer]
        opt = torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8)
        for g in grads:
            for t, x in zip(p, (x for layer in g for x in layer)):
                t.grad = torch.from_numpy(x.copy())
            opt.step()
        return [(p[i].detach().numpy(), p[i + 1].detach().numpy()) for i in range(0, len(p), 2)]
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)

    @jax.jit
    def step(p, g, state):
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    for g in grads:
        p, state = step(p, jax.tree.map(jnp.asarray, g), state)
    return [(np.asarray(w), np.asarray(b)) for w, b in p]


def test_split_group_by_memory():
    # The grid's largest group
    big = Config(hidden_size=600, hidden_layers=3, batch_size=600, epochs=8)
    # Well under 4 GB, data and evaluation included
    assert groups.estimate_bytes(big, 16) < 2 * 2**30
    members = [dataclasses.replace(big, learning_rate=lr) for lr in (1.0, 1e-2, 1e-4, 1e-6)] * 4
    assert groups.split_group(members, 2**40) == [members]
    parts = groups.split_group(members, groups.estimate_bytes(big, 5))
    assert [len(p) for p in parts] == [4, 4, 4, 4] and sum(parts, []) == members
    assert [len(p) for p in groups.split_group(members[:5], groups.estimate_bytes(big, 3))] == [
        3,
        2,
    ]
    assert len(groups.split_group(members, 1)) == 16  # one member always trains, as the loop would


def test_a_split_group_trains_the_same(framework, mnist, swept, monkeypatch):
    """A memory budget for 3 members splits the 8 into 3 + 3 + 2; each member's run is unchanged."""
    sweep, _ = modules(framework)
    monkeypatch.setattr(sweep, "memory_budget", lambda dev: groups.estimate_bytes(BASE, 3))
    parts = sweep.train_group(GROUP, mnist, device="cpu", log=None)
    assert [r["group"]["members"] for r in parts] == [3, 3, 3, 3, 3, 3, 2, 2]
    for a, b in zip(parts, swept[1][:-1]):
        assert np.abs(curve(a) - curve(b)).max() <= CURVE_TOL


def test_train_group_refuses_configs_of_two_groups(framework, mnist):
    sweep, _ = modules(framework)
    with pytest.raises(ValueError, match="2 groups"):
        sweep.train_group(
            [BASE, dataclasses.replace(BASE, batch_size=300)], mnist, device="cpu", log=None
        )


def test_group_key_and_grid_groups():
    from shared.config import PRESETS

    grid = groups.group_runs(PRESETS["grid"].runs())
    assert len(grid) == 27 and all(len(g) == 16 for g in grid)
    assert (
        groups.group_key(GROUP[0])
        == groups.group_key(GROUP[-1])
        != groups.group_key(dataclasses.replace(BASE, seed=1))
    )


# ------------------------------------------------------------------ compare.py --engine sweep


def test_compare_engine_sweep_end_to_end_and_resume(tmp_path, mnist_dir, compare_here):
    # compare.py in this process (conftest's compare_here): the engine and the resume are tested,
    # not a start-up.
    for name in ("torch", "jax", "flax"):
        pytest.importorskip(name)
    common = [
        "--config",
        "smoke",
        "--set",
        "epochs=1",
        "--set",
        "hidden_size=32",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    args = [*common, "--set", "learning_rate=1e-3,1e-2"]
    # A partly finished group: only two of its four members, from a loop run.
    r = compare_here(*common, "--set", "learning_rate=1e-3", "--engine", "loop")
    assert r.returncode == 0, r.stderr[-2000:]
    first = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert (
        len(first) == 4
        and {x["engine"] for x in first} == {"loop"}
        and {x["group"] for x in first} == {None}
    )

    r = compare_here(*args)  # the default engine here is sweep: four runs share one group
    assert r.returncode == 0, r.stderr[-2000:]
    assert "4 finished runs" in r.stderr
    recs = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert recs[:4] == first  # the finished members are not rerun
    new = recs[4:]
    assert len(new) == 4 and {x["engine"] for x in new} == {"sweep"}

    # Records are written as each backend's group comes back: torch's members, then JAX's
    def variant(x):
        return x["backend"], x["config"]["activation"], x["config"]["output"]

    assert sorted(map(variant, new)) == sorted(map(variant, first))  # each backend once a config
    assert {x["config"]["learning_rate"] for x in new} == {1e-2}
    assert all(x["group"]["members"] == 2 for x in new)  # only the unfinished members trained
    for x in new:
        assert x["status"] == "ok" and x["step_time_us"] > 0 and x["steps"] == 100
    report = (tmp_path / "report.md").read_text()
    assert "8 results" in r.stdout and "time / M, its share" in report and "Loop runs" in report
