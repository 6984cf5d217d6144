"""The step-by-step walk-through (impls/*/fundamentals.py): every number it claims, in both
frameworks, and the two frameworks against each other.

torch and jax are imported only through pytest.importorskip, so a torch-only or jax-only install
runs its own framework's tests and skips the rest."""

from __future__ import annotations

import functools
import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

FRAMEWORKS = {
    "torch": (("torch",), "impls.torch_mlp.fundamentals"),
    "flax": (("jax", "flax", "optax"), "impls.flax_mlp.fundamentals"),
}
TARGETS = {"or": [1, 1, 1, 0], "and": [1, 0, 0, 0]}

# Loss sequences of the two frameworks, same start, 1000 Adam epochs, float32. They cannot be
# bit-equal: torch's Adam divides by sqrt(bias_correction2) after the sqrt, optax bias-corrects v
# before it, and sigmoid/mean round in their own order, so each step differs by about an ulp
# (1.2e-7 relative) and the differences carry forward. Measured: max |diff| 1.1e-6 over seeds 0-19
# and both gates. 1e-5 leaves ~10x headroom and still catches real mismatches: an lr off by
# 0.1% already moves the curve by 1.6e-4, b2 0.99 instead of 0.999 by 2e-2.
LOSS_ATOL = 1e-5


def fundamentals(fw: str):
    """The walk-through module of one framework, or skip when that framework is not installed."""
    needs, module = FRAMEWORKS[fw]
    for name in needs:
        pytest.importorskip(name)
    return importlib.import_module(module)


@pytest.fixture(params=list(FRAMEWORKS))
def fw(request) -> str:
    fundamentals(request.param)
    return request.param


@functools.cache
def train_raw(fw: str, gate: str, seed: int = 0):
    """Cached: the 1000-epoch runs are shared by several tests."""
    return fundamentals(fw).train_raw(gate, seed)


@functools.cache
def train_module(fw: str, gate: str = "or", seed: int = 0):
    return fundamentals(fw).train_module(gate, seed)


# ------------------------------------------------------------ shared numpy pieces


def test_logic_table_default_is_or_and_and_is_offered(fw):
    f = fundamentals(fw)
    x, y = f.logic_table()
    assert x.tolist() == [[1, 1], [1, 0], [0, 1], [0, 0]] and x.dtype == np.float32
    assert y.shape == (4, 1) and y.ravel().tolist() == TARGETS["or"]
    assert (y.ravel() == np.logical_or(x[:, 0], x[:, 1])).all()  # the default really is OR
    _, y_and = f.logic_table("and")
    assert (y_and.ravel() == np.logical_and(x[:, 0], x[:, 1])).all()


def test_init_is_seeded_uniform_and_the_same_in_both():
    torch_f, flax_f = fundamentals("torch"), fundamentals("flax")
    w1, b1 = torch_f.init_logic_params(7)
    assert w1.shape == (2, 1) and b1.shape == (1,) and w1.dtype == b1.dtype == np.float32
    assert (np.abs(np.concatenate([w1.ravel(), b1])) <= 1).all()
    w1j, b1j = flax_f.init_logic_params(7)
    assert np.array_equal(w1, w1j) and np.array_equal(b1, b1j)
    assert not np.array_equal(w1, torch_f.init_logic_params(8)[0])


# ------------------------------------------------------------ 1. raw parameters


@pytest.mark.parametrize("gate", ["or", "and"])
@pytest.mark.parametrize("seed", [0, 1])
def test_raw_neuron_learns_the_gate(fw, gate, seed):
    losses, pred = train_raw(fw, gate, seed)
    assert len(losses) == 1000 and pred.shape == (4,)
    assert np.round(pred).astype(int).tolist() == TARGETS[gate]
    assert losses[-1] < 0.05 < losses[0]
    # Adam at lr 0.01 on this convex-ish problem brings the loss down every 100 epochs.
    assert all(np.diff(losses[::100]) < 0)


@pytest.mark.parametrize("gate", ["or", "and"])
def test_raw_losses_agree_across_frameworks(gate):
    lt, pt = train_raw("torch", gate)
    lj, pj = train_raw("flax", gate)
    assert np.abs(np.array(lt) - np.array(lj)).max() <= LOSS_ATOL
    assert np.abs(pt - pj).max() <= LOSS_ATOL


# ------------------------------------------------------------ 2. module


def test_module_matches_raw_and_the_hand_computation(fw):
    f = fundamentals(fw)
    model, losses, pred = train_module(fw)
    raw_losses, raw_pred = train_raw(fw, "or")
    # Same start, same math: the module is only a container, so the curve is section 1's.
    assert np.abs(np.array(losses) - np.array(raw_losses)).max() <= 1e-6
    assert np.round(pred).astype(int).tolist() == TARGETS["or"]
    x, _ = f.logic_table()
    shape, hand, out = f.by_hand(model, x)
    assert shape == {"torch": (1, 2), "flax": (2, 1)}[fw]  # (out, in) vs (in, out)
    assert hand.shape == out.shape == (4, 1)
    assert np.abs(hand - out).max() <= 1e-6
    assert np.allclose(out.ravel(), pred, atol=1e-6)


def test_module_starts_from_the_shared_draw(fw):
    f = fundamentals(fw)
    model, losses, _ = f.train_module("and", seed=3, epochs=1)
    raw_losses, _ = f.train_raw("and", seed=3, epochs=1)
    # One epoch: the first loss is taken before any update, so it is the loss at w1, b1 itself.
    assert losses[0] == pytest.approx(raw_losses[0], abs=1e-7)


def test_module_losses_agree_across_frameworks():
    _, lt, _ = train_module("torch")
    _, lj, _ = train_module("flax")
    assert np.abs(np.array(lt) - np.array(lj)).max() <= LOSS_ATOL


# ------------------------------------------------------------ 3. and 4.


def test_derivatives(fw):
    d1, d2 = fundamentals(fw).derivatives()
    assert d1 == 13.0  # 2x + 5 at 4
    assert d2 == 48.0  # 4(2x + 10) at 1


def test_descend_oscillates_into_minus_five(fw):
    xs = np.array(fundamentals(fw).descend())
    assert xs[0] == 1.0 and len(xs) == 21
    assert xs[1] == pytest.approx(-6.2, abs=1e-6)  # 1 - 0.15 * 8 * 6
    err = xs[:8] + 5
    assert (np.sign(err[1:]) == -np.sign(err[:-1])).all()  # hops across -5 every step
    assert np.allclose(err[1:] / err[:-1], -0.2, atol=1e-4)  # x_{k+1} + 5 = -0.2 (x_k + 5)
    assert abs(xs[-1] + 5) <= 1e-6


def test_descend_iterates_agree_across_frameworks():
    xt = np.array(fundamentals("torch").descend())
    xj = np.array(fundamentals("flax").descend())
    assert np.abs(xt - xj).max() <= 1e-6


# ------------------------------------------------------------ the entry points


def start_module(fw: str, *args: str) -> subprocess.Popen:
    _, module = FRAMEWORKS[fw]
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_both_entry_points_print_the_same_lines(capsys):
    # Each module's main() in this process (a process apiece was mostly imports); that `python -m`
    # reaches main is shown by the real processes of test_bad_flag_exits_2_with_one_line below.
    printed = {}
    for fw in ("torch", "flax"):
        f = fundamentals(fw)
        capsys.readouterr()
        f.main([])
        printed[fw] = capsys.readouterr().out
    tl, jl = printed["torch"].splitlines(), printed["flax"].splitlines()
    assert len(tl) == len(jl) > 20
    differ = [(a, b) for a, b in zip(tl, jl) if a != b]
    # The only line allowed to differ is the one that shows each framework's weight layout.
    assert differ == [
        (
            "stored layer.weight (out, in): (1, 2); "
            "by hand: sigmoid(x @ layer.weight.T + layer.bias)",
            "stored layer.kernel (in, out): (2, 1); "
            "by hand: sigmoid(x @ layer.kernel + layer.bias)",
        )
    ]
    assert "epoch  999  loss 0.0177" in tl
    assert (
        "predictions [0.9952, 0.8866, 0.8722, 0.2036] -> rounded [1, 1, 1, 0], targets [1, 1, 1, 0]"
        in tl
    )
    assert "y = (2x + 10)^2 at x = 1: dy/dx = 48.0000" in tl
    assert tl[-1] == "step 20  x -5.0000"


def test_bad_flag_exits_2_with_one_line(fw):
    r = finish(start_module(fw, "--gate", "xor"))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert (
        len(lines) == 1
        and "error" in lines[0]
        and "'xor'" in lines[0]
        and "'or', 'and'" in lines[0]
    )


@pytest.mark.parametrize(
    "argv, needle",
    [(["--seed", "-1"], "--seed: got -1"), (["--seed", "x"], "invalid int value: 'x'")],
)
def test_bad_seed_exits_2(fw, capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        fundamentals(fw).main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
