"""Config.compile changes the speed of a run, not what it computes.

Compiled and eager torch agree step by step on real MNIST (losses within 1e-5 in float32, 1e-12 in
float64 over 100 steps), with the same statuses, in both engines; a diverging sweep member is frozen
the same way; nothing recompiles after the warm-up, and every record says what was compiled. The
loop's compiled step is each twin's fast path (impls/*/fast.py): torch's is one graph, and JAX's
(jax.jit of a pure step, donated state) agrees with its nnx.jit step in both dtypes too.

Each compile costs tens of seconds on a small CPU, so every compiled program is built once per
module (module-scoped fixtures) on a small net, one epoch of 100 steps at batch 600."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import assert_loss_curves_close

from shared.config import Config, ConfigError

torch = pytest.importorskip("torch")

from impls.torch_mlp import sweep, train  # noqa: E402 (after importorskip: needs torch)

BASE = Config(hidden_size=32, batch_size=600, epochs=1)  # one epoch = 100 steps
TOL = {"float32": 1e-5, "float64": 1e-12}
GROUP = [
    dataclasses.replace(BASE, learning_rate=1e-3),
    dataclasses.replace(BASE, learning_rate=1e-2, activation="leaky_relu", output="softmax"),
    dataclasses.replace(BASE, learning_rate=1e30),  # the first step overflows: NaN from step 2
]


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # conftest.py: one torch thread


def both(run, cfgs):
    """(eager, compiled) results of `run` on `cfgs`, the compiled with compile=True."""
    return run(cfgs), run([dataclasses.replace(c, compile=True) for c in cfgs])


@pytest.fixture(scope="module", params=list(TOL))
def loop_runs(request, mnist):
    cfg = dataclasses.replace(BASE, dtype=request.param)
    return both(lambda cfgs: train.train(cfgs[0], mnist, device="cpu", log=None), [cfg])


@pytest.fixture(scope="module")
def sweep_runs(mnist):
    """(eager, compiled, what sweep._mark_static marked while compiling)."""
    marked, mark = [], sweep._mark_static

    def spy(params, opt_state):
        marked.append((params, opt_state))
        mark(params, opt_state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "_mark_static", spy)
        runs = both(lambda cfgs: sweep.train_group(cfgs, mnist, device="cpu", log=None), GROUP)
    return (*runs, marked)


def assert_same_run(eager: dict, compiled: dict) -> None:
    assert compiled["status"] == eager["status"]
    assert compiled["steps"] == eager["steps"]
    assert compiled["loss_curve_every"] == eager["loss_curve_every"] == 1  # every step kept
    assert_loss_curves_close(compiled, eager, TOL[eager["config"]["dtype"]], "compiled vs eager")


def test_loop_compiled_matches_eager_step_by_step(loop_runs):
    eager, compiled = loop_runs
    assert eager["status"] == "ok" and eager["steps"] == 100
    assert_same_run(eager, compiled)
    # At most 2 of the 10000 test images may flip
    assert compiled["epochs"][0]["test_accuracy"] == pytest.approx(
        eager["epochs"][0]["test_accuracy"], abs=2e-4
    )


def test_loop_records_what_was_compiled(loop_runs):
    eager, compiled = loop_runs
    assert eager["config"]["compile"] is False and eager["compiled"] is None
    assert compiled["config"]["compile"] is True
    stats = compiled["compiled"]
    assert stats["mode"] == "default"  # CUDA graphs only on a GPU
    # fast.py: forward, backward and Adam in one graph, nothing left to run eagerly between them
    assert stats["graphs"] == 1 and stats["graph_breaks"] == 0
    assert stats["recompiles"] == 0  # capturable Adam: the step count is a tensor, not a constant
    assert stats["cudagraph_skips"] == 0  # no CUDA graphs are tried off the GPU
    assert compiled["warmup_s"] > eager["warmup_s"]  # the compile is timed as the warm-up


@pytest.fixture(scope="module")
def jax_loop_runs(loop_runs, mnist):
    """The JAX twin's (eager, compiled) in loop_runs' dtype, two epochs (write_back between)."""
    pytest.importorskip("flax")
    from impls.flax_mlp import train as flax_train

    cfg = dataclasses.replace(BASE, dtype=loop_runs[0]["config"]["dtype"], epochs=2)
    return both(lambda cfgs: flax_train.train(cfgs[0], mnist, device="cpu", log=None), [cfg])


def test_jax_loop_compiled_matches_eager_step_by_step(jax_loop_runs):
    eager, compiled = jax_loop_runs
    assert eager["status"] == "ok" and eager["steps"] == 200
    assert compiled["config"]["compile"] is True and eager["config"]["compile"] is False
    assert_same_run(eager, compiled)
    # The second epoch trained on from the weights write_back put into the model: the test
    # accuracy after each epoch is the eager run's.
    for e, c in zip(eager["epochs"], compiled["epochs"]):
        assert c["test_accuracy"] == pytest.approx(e["test_accuracy"], abs=2e-4)


def test_the_twins_fast_paths_agree(loop_runs, jax_loop_runs):
    """Compiled torch and compiled JAX over the same 100 steps: the twins' fast paths compute the
    same run, as their lesson steps do (tests/test_parity.py's tolerances)."""
    torch_run, jax_run = loop_runs[1], jax_loop_runs[1]
    dtype = torch_run["config"]["dtype"]
    assert jax_run["config"]["dtype"] == dtype and jax_run["config"]["compile"] is True
    first = {**jax_run, "loss_curve": jax_run["loss_curve"][:100]}
    assert_loss_curves_close(first, torch_run, {"float32": 1e-3, "float64": 1e-9}[dtype])


def test_sweep_compiled_matches_eager_member_by_member(sweep_runs):
    eager, compiled, _ = sweep_runs
    assert [r["status"] for r in eager] == ["ok", "ok", "diverged"]
    for e, c in zip(eager, compiled):
        assert_same_run(e, c)
        assert c["compiled"]["recompiles"] == 0
        # torch.func traces forward and backward into one graph, Adam's update is the other;
        # sweep._step_sizes runs eagerly between them.
        assert c["compiled"]["graphs"] == 2
        assert c["group"]["members"] == len(GROUP)


def test_sweep_freezes_a_diverging_member_the_same_way(sweep_runs):
    eager, compiled, _ = sweep_runs
    bad_eager, bad_compiled = eager[-1], compiled[-1]
    # Frozen at the first log step (step 100, the last of the epoch), as train.py would stop it.
    assert bad_compiled["steps"] == bad_eager["steps"] == 100
    assert bad_compiled["epochs"] == bad_eager["epochs"] == []


def test_sweep_compiled_marks_what_adam_updates_in_place_static(sweep_runs):
    """_mark_static, which lets CUDA graphs capture Adam's in-place update on a GPU, runs here too
    (inert without CUDA graphs): on the warm-up's copies and on the state itself, every weight and
    both moments; with them marked the compiled sweep matches eager (the test above)."""
    *_, marked = sweep_runs
    tensors = 2 * (BASE.hidden_layers + 1)  # W and b of each layer
    assert len(marked) == 2
    state, copies = marked
    for params, opt_state in marked:
        flat = [p for layer in params for p in layer]
        assert len(flat) == len(opt_state["m"]) == len(opt_state["v"]) == tensors
        for t in flat + opt_state["m"] + opt_state["v"]:
            assert torch._dynamo.utils.get_static_address_type(t) == "unguarded"
    assert all(a is not b for a, b in zip(copies[1]["m"], state[1]["m"]))


def test_compile_must_be_a_bool():
    with pytest.raises(ConfigError, match="compile: got 'yes'; allowed: true or false"):
        Config(compile="yes")
