"""On a GPU the twins still compute the same thing, and every fast path keeps to its slow one.

TF32 off in both (Config.tf32 = False: torch's float32 matmuls are IEEE by default, JAX's are
TF32 on Ampere and later unless told "highest"; runtime.matmul_precision sets both): outputs,
float64 gradients and one float64 Adam step agree across the frameworks for a few architectures;
whole runs agree across frameworks; the sweep engine matches the loop member by member; compiled
torch (CUDA graphs) matches eager torch; and both frameworks share one GPU in one process (JAX told
not to take 75 % of its memory up front).

Marked `gpu` and skipped with the reason where no CUDA GPU is visible to both frameworks: select
them with `pytest -m gpu`. benchmarks/gpu_run.sh runs them first. Tolerances are the CPU tests'
(tests/test_parity.py, test_sweep.py, test_compiled.py).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from conftest import assert_loss_curves_close

# Before JAX starts its GPU backend (it would otherwise reserve 75 % of the device for itself).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from shared.config import Config  # noqa: E402 (after the environment JAX reads at start)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
pytest.importorskip("flax")


def _jax_gpus() -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib
        return []


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
    pytest.mark.skipif(not _jax_gpus(), reason="no GPU visible to JAX (a CPU-only jaxlib?)"),
]

import jax.numpy as jnp  # noqa: E402 (after the environment JAX reads at start)
from flax import nnx  # noqa: E402

from impls.flax_mlp import model as flax_model  # noqa: E402
from impls.flax_mlp import runtime as flax_runtime  # noqa: E402
from impls.flax_mlp import sweep as flax_sweep  # noqa: E402
from impls.flax_mlp import train as flax_train  # noqa: E402
from impls.torch_mlp import model as torch_model  # noqa: E402
from impls.torch_mlp import runtime as torch_runtime  # noqa: E402
from impls.torch_mlp import sweep as torch_sweep  # noqa: E402
from impls.torch_mlp import train as torch_train  # noqa: E402
from shared.data import scale_images  # noqa: E402

ARCHS = [
    Config(hidden_size=500),
    Config(hidden_size=400, hidden_layers=2, activation="leaky_relu", output="softmax"),
    Config(hidden_size=600, hidden_layers=3),
]
ARCH_IDS = ["1x500-relu-logits", "2x400-leaky-softmax", "3x600-relu-logits"]
SMALL = Config(hidden_size=64, batch_size=600, epochs=1)  # one epoch = 100 steps
GROUP = [
    dataclasses.replace(SMALL, learning_rate=1e-3),
    dataclasses.replace(SMALL, learning_rate=1e-2, activation="leaky_relu", output="softmax"),
    dataclasses.replace(SMALL, learning_rate=1e30),  # diverges: frozen at step 100
]
TOL = {"float32": 1e-5, "float64": 1e-12}  # loss curves, engine vs engine and compiled vs eager
ACROSS = {"float32": 1e-3, "float64": 1e-9}  # loss curves, torch vs JAX (test_parity.py)
ENGINES = {
    "torch": (torch_train, torch_sweep),
    "jax": (flax_train, flax_sweep),
}


def float64(cfg: Config) -> Config:
    """`cfg` in float64; a diverging member's lr made big enough to overflow float64 too."""
    lr = 1e300 if cfg.learning_rate == 1e30 else cfg.learning_rate
    return dataclasses.replace(cfg, dtype="float64", learning_rate=lr)


def batch(mnist, dtype: str, size: int = 100):
    images = scale_images(mnist.train_images[:size], dtype)
    return images, mnist.train_labels[:size]


def both_on_gpu(cfg: Config, images: np.ndarray, labels: np.ndarray):
    """Both twins from the shared init on the GPU, and the batch there: ((net, x, y) torch, jax)."""
    dev = torch_runtime.resolve_device("gpu")
    net_t = torch_model.build_model(cfg).to(dev)
    x_t, y_t = torch.from_numpy(images).to(dev), torch.from_numpy(labels).to(dev)
    gpu = flax_runtime.resolve_device("gpu")
    net_f = flax_model.build_model(cfg)
    nnx.update(net_f, jax.device_put(nnx.state(net_f), gpu))
    x_f, y_f = jax.device_put(images, gpu), jax.device_put(labels.astype(np.int32), gpu)
    return (net_t, x_t, y_t), (net_f, x_f, y_f)


def assert_curves(got: dict, want: dict, tol: float) -> None:
    assert got["status"] == want["status"] and got["steps"] == want["steps"]
    assert_loss_curves_close(got, want, tol)


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_outputs_match_on_the_gpu_tf32_off(cfg, mnist):
    with torch_runtime.matmul_precision(False), flax_runtime.matmul_precision(False):
        (net_t, x_t, _), (net_f, x_f, _) = both_on_gpu(cfg, *batch(mnist, "float32"))
        with torch.no_grad():
            out_t = net_t(x_t).cpu().numpy()
        out_f = np.asarray(net_f(x_f))
    # TF32 would leave ~1e-3 here (10 mantissa bits); IEEE float32 leaves ~1e-6.
    assert np.abs(out_t - out_f).max() <= 1e-5


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_float64_gradients_and_one_adam_step_match_on_the_gpu(cfg, mnist):
    cfg = dataclasses.replace(cfg, dtype="float64")
    with torch_runtime.dtype_scope("float64"), flax_runtime.dtype_scope("float64"):
        (net_t, x_t, y_t), (net_f, x_f, y_f) = both_on_gpu(cfg, *batch(mnist, "float64"))
        loss_t = torch_train.loss_fn(net_t, x_t, y_t)
        loss_t.backward()
        grads_t = [(layer.weight.grad.cpu().numpy().T, layer.bias.grad) for layer in net_t.layers]
        loss_f, grads = nnx.value_and_grad(flax_train.loss_fn)(net_f, x_f, y_f)
        grads_f = flax_model.get_weights(nnx.merge(nnx.graphdef(net_f), grads))
        assert abs(loss_t.item() - float(loss_f)) <= 1e-13
        for (gw_t, _), (gw_f, _) in zip(grads_t, grads_f):
            assert gw_f.dtype == np.float64
            assert np.abs(gw_t - gw_f).max() <= 1e-12 * np.abs(gw_t).max()
        # One whole Adam step of each twin from the same start.
        net_t.zero_grad()
        opt_t, opt_f = (
            torch_train.build_optimizer(net_t, cfg),
            flax_train.build_optimizer(net_f, cfg),
        )
        torch_train.train_step(net_t, opt_t, x_t, y_t)
        flax_train.train_step(net_f, opt_f, x_f, y_f)
        for (w_t, b_t), (w_f, b_f) in zip(
            torch_model.get_weights(net_t), flax_model.get_weights(net_f)
        ):
            assert np.abs(w_t - w_f).max() <= 1e-12 and np.abs(b_t - b_f).max() <= 1e-12


@pytest.mark.parametrize("dtype", list(ACROSS))
def test_whole_runs_match_across_frameworks_on_the_gpu(dtype, mnist):
    cfg = dataclasses.replace(SMALL, dtype=dtype)
    got = torch_train.train(cfg, mnist, device="gpu", log=None)
    want = flax_train.train(cfg, mnist, device="gpu", log=None)
    assert got["device"] == want["device"] and got["device"].startswith("gpu:")
    assert_curves(got, want, ACROSS[dtype])


@pytest.mark.parametrize("framework", list(ENGINES))
def test_sweep_matches_the_loop_on_the_gpu(framework, mnist):
    train, sweep = ENGINES[framework]
    cfgs = [float64(c) for c in GROUP]
    swept = sweep.train_group(cfgs, mnist, device="gpu", log=None)
    assert [r["status"] for r in swept] == ["ok", "ok", "diverged"]
    for cfg, rec in zip(cfgs, swept):
        assert_curves(rec, train.train(cfg, mnist, device="gpu", log=None), TOL["float64"])


@pytest.mark.parametrize("dtype", list(TOL))
def test_compiled_torch_matches_eager_on_the_gpu(dtype, mnist):
    cfgs = [float64(c) if dtype == "float64" else c for c in GROUP]
    fast = [dataclasses.replace(c, compile=True) for c in cfgs]
    eager = torch_train.train(cfgs[0], mnist, device="gpu", log=None)
    compiled = torch_train.train(fast[0], mnist, device="gpu", log=None)
    assert compiled["compiled"]["mode"] == "reduce-overhead"  # CUDA graphs
    assert compiled["compiled"]["recompiles"] == 0
    assert compiled["compiled"]["cudagraph_skips"] == 0  # every graph is a CUDA graph
    assert_curves(compiled, eager, TOL[dtype])
    swept = torch_sweep.train_group(cfgs, mnist, device="gpu", log=None)
    swept_fast = torch_sweep.train_group(fast, mnist, device="gpu", log=None)
    for got, want in zip(swept_fast, swept):
        assert_curves(got, want, TOL[dtype])
        assert got["compiled"]["recompiles"] == 0
        # Adam's graph too: sweep._mark_static makes the state it updates in place static.
        assert got["compiled"]["cudagraph_skips"] == 0


def test_both_frameworks_share_one_gpu(mnist):
    """After JAX has trained on the GPU, torch still finds most of its memory free."""
    flax_train.train(SMALL, mnist, device="gpu", log=None)
    jnp.zeros(1).block_until_ready()
    free, total = torch.cuda.mem_get_info()
    assert free > 0.5 * total, f"JAX holds {(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB"
    torch_train.train(SMALL, mnist, device="gpu", log=None)
