"""The twins compute the same thing: outputs, gradients, one Adam step and 200 training steps agree
across PyTorch and Flax from identical weights on real MNIST batches; each framework's native init
draws what its docs say; weights move in and out of both exactly. CPU, float32; and in float64,
where rounding no longer blurs anything, whole training runs agree to 1e-9.

Kinks. ReLU and LeakyReLU change slope at 0. A hidden pre-activation within float32 rounding of 0
can be rounded to opposite signs by the two frameworks' matmuls (their summation orders differ, and
differ again between CPUs: seen on an Intel Xeon, z = 7e-9), and then the two gradients of that unit
differ by up to 100 %. Both are right. The float32 gradient tests therefore leave out the examples
that have such a pre-activation (found in float64 from the same weights; a few % of a batch at most,
and counted), and compare everything else to 1e-5; the float64 tests, where a flip would need |z| <
1e-16, keep every example.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("optax")

# The imports below need the frameworks, so they come after the importorskip calls above (which
# skip this module where a framework is missing): hence each `noqa: E402`.
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from impls.flax_mlp import model as flax_model  # noqa: E402
from impls.flax_mlp import runtime as flax_runtime  # noqa: E402
from impls.flax_mlp import train as flax_train  # noqa: E402
from impls.torch_mlp import model as torch_model  # noqa: E402
from impls.torch_mlp import train as torch_train  # noqa: E402
from shared.batches import epoch_index_matrix  # noqa: E402
from shared.config import ACTIVATIONS, OUTPUTS, Config  # noqa: E402
from shared.data import scale_images  # noqa: E402
from shared.init import shared_init  # noqa: E402

# The lab report's 36 architectures: hidden size x hidden layers x activation x output.
ARCHS = [
    Config(hidden_size=h, hidden_layers=n, activation=a, output=o)
    for h, n, a, o in itertools.product((400, 500, 600), (1, 2, 3), ACTIVATIONS, OUTPUTS)
]
ARCH_IDS = [f"{c.hidden_size}x{c.hidden_layers}-{c.activation}-{c.output}" for c in ARCHS]

OUTPUT_TOL = 1e-5  # max |diff| of the model outputs (logits or probabilities)
# Gradients: |diff| <= GRAD_RTOL * (|g| + max|g| of that parameter), i.e. relative, with an absolute
# floor of 1e-5 of the parameter's largest gradient for entries near zero.
GRAD_RTOL = 1e-5
STEP_TOL = 1e-6  # parameters after one Adam step
CURVE_TOL = 1e-3  # loss curves over 200 steps
# |z| <= KINK_RTOL * (sum_i |h_i w_i| + |b|): within float32 rounding of the kink. The float32
# pre-activations of all 36 architectures err from float64 by at most 2.1e-7 of that sum on this
# batch (measured), so 2e-6 is 10x the largest error; it flags 0-3 of 100 examples.
KINK_RTOL = 2e-6
F64_GRAD_RTOL = 1e-12  # float64 gradients, as GRAD_RTOL (measured: ~1e-15)
F64_CURVE_TOL = 1e-9  # float64: loss curves over whole runs
F64_PARAM_RTOL = 1e-8  # float64: final parameters, relative to each parameter's largest entry


@pytest.fixture(autouse=True)
def jax_on_cpu():
    """Flax arrays on the CPU, like torch's, also on a machine with a GPU (no TF32 to blur them)."""
    with jax.default_device(jax.devices("cpu")[0]):
        yield


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # conftest.py: one torch thread


@pytest.fixture(scope="module")
def batch(mnist):
    """The first batch of the shared order: real MNIST images (100, 784) float32, labels (100,)."""
    index = epoch_index_matrix(0, 0, len(mnist.train_labels), 100)[0]
    return scale_images(mnist.train_images[index]), mnist.train_labels[index]


@pytest.fixture(scope="module")
def batch64(mnist):
    """The same batch scaled in float64."""
    index = epoch_index_matrix(0, 0, len(mnist.train_labels), 100)[0]
    return scale_images(mnist.train_images[index], "float64"), mnist.train_labels[index]


def twins(cfg: Config):
    return torch_model.build_model(cfg), flax_model.build_model(cfg)


def as_torch(images, labels):
    return torch.from_numpy(images), torch.from_numpy(labels)


def as_jax(images, labels):
    return jnp.asarray(images), jnp.asarray(labels.astype(np.int32))


def assert_within(what: str, got: np.ndarray, want: np.ndarray, tol) -> None:
    """|got - want| <= tol entry by entry (tol a number or an array), or fail saying which entries
    differ, by how much and against what tolerance, instead of printing two walls of numbers."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    diff, tol = np.abs(got - want), np.broadcast_to(np.asarray(tol, dtype=np.float64), got.shape)
    bad = ~(diff <= tol)  # NaN counts as bad
    if bad.any():
        worst = np.unravel_index(
            np.argmax(np.where(bad, diff / np.maximum(tol, 1e-300), 0)), got.shape
        )
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} entries differ beyond the tolerance; worst "
            f"at index {tuple(int(i) for i in worst)}: {got[worst]!r} vs {want[worst]!r}, "
            f"|diff| {diff[worst]:.3g} > tol {tol[worst]:.3g}; max |diff| overall "
            f"{np.nanmax(diff):.3g}"
        )


def near_kink(cfg: Config, images: np.ndarray) -> np.ndarray:
    """(B,) bool: the examples with a hidden pre-activation within float32 rounding of the kink at
    0, where the two frameworks may round to opposite sides (module docstring). Computed in float64
    from the float32 shared weights the nets hold."""
    slope = 0.0 if cfg.activation == "relu" else torch_model.LEAKY_SLOPE
    h, near = images.astype(np.float64), np.zeros(len(images), dtype=bool)
    for w, b in shared_init(cfg.layer_sizes, cfg.seed)[:-1]:  # the hidden layers
        w, b = w.astype(np.float64), b.astype(np.float64)
        z = h @ w + b  # (B, hidden)
        near |= (np.abs(z) <= KINK_RTOL * (np.abs(h) @ np.abs(w) + np.abs(b))).any(axis=1)
        h = np.where(z > 0, z, slope * z)
    return near


def kink_free(cfg: Config, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch without its near-kink examples; at most 10 % may go, or the test tests little."""
    near = near_kink(cfg, images)
    assert near.mean() <= 0.10, (
        f"{near.sum()} of {len(near)} examples lie within float32 rounding of a kink"
    )
    return images[~near], labels[~near]


# ------------------------------------------------------------ outputs and gradients


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_outputs_match(cfg, batch):
    torch_net, flax_net = twins(cfg)
    with torch.no_grad():
        out_torch = torch_net(as_torch(*batch)[0]).numpy()
    out_flax = np.asarray(flax_net(as_jax(*batch)[0]))
    assert out_torch.shape == out_flax.shape == (100, 10)
    assert np.abs(out_torch - out_flax).max() <= OUTPUT_TOL
    if cfg.output == "softmax":
        np.testing.assert_allclose(out_flax.sum(axis=1), 1.0, atol=1e-5)
    assert out_torch.std() > 1e-3  # not a degenerate (constant) output that would match trivially


def both_gradients(cfg: Config, images: np.ndarray, labels: np.ndarray):
    """Loss and [(dW (in, out), db), ...] of one batch in both twins, shared init, in cfg.dtype."""
    with flax_runtime.dtype_scope(cfg.dtype):
        torch_net, flax_net = twins(cfg)
        loss_torch = torch_train.loss_fn(torch_net, *as_torch(images, labels))
        loss_torch.backward()
        grads_torch = [
            (layer.weight.grad.numpy().T, layer.bias.grad.numpy()) for layer in torch_net.layers
        ]
        loss_flax, grads = nnx.value_and_grad(flax_train.loss_fn)(flax_net, *as_jax(images, labels))
        # The gradient State has the model's structure: merged with its graphdef it reads as one.
        grads_flax = flax_model.get_weights(nnx.merge(nnx.graphdef(flax_net), grads))
    return loss_torch.item(), float(loss_flax), grads_torch, grads_flax


def assert_gradients_match(grads_torch, grads_flax, rtol: float) -> None:
    """|diff| <= rtol * (|g| + max|g| of that parameter): relative, with a floor for entries ~0."""
    for i, ((gw_t, gb_t), (gw_f, gb_f)) in enumerate(zip(grads_torch, grads_flax)):
        for name, g_t, g_f in (("dW", gw_t, gw_f), ("db", gb_t, gb_f)):
            scale = np.abs(g_t).max()
            assert scale > 0
            assert g_t.dtype == g_f.dtype
            assert_within(
                f"layer {i} {name} (flax vs torch)", g_f, g_t, rtol * (np.abs(g_t) + scale)
            )


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_gradients_match(cfg, batch):
    images, labels = kink_free(cfg, *batch)  # see the module docstring: kinks
    loss_torch, loss_flax, grads_torch, grads_flax = both_gradients(cfg, images, labels)
    assert abs(loss_torch - loss_flax) <= 1e-5
    if cfg.output == "softmax":  # the double softmax's floor (see model.py)
        assert loss_torch >= math.log(1 + 9 / math.e) - 1e-6
    assert_gradients_match(grads_torch, grads_flax, GRAD_RTOL)


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_gradients_match_in_float64_on_the_whole_batch(cfg, batch64):
    cfg = dataclasses.replace(cfg, dtype="float64")
    loss_torch, loss_flax, grads_torch, grads_flax = both_gradients(cfg, *batch64)
    assert abs(loss_torch - loss_flax) <= 1e-13
    assert grads_torch[0][0].dtype == np.float64
    assert_gradients_match(grads_torch, grads_flax, F64_GRAD_RTOL)


def test_near_kink_finds_what_it_should(batch):
    """The guard above is not vacuous: it flags an example exactly when a pre-activation is at 0."""
    cfg = Config(hidden_layers=2, activation="leaky_relu")
    images, _ = batch
    assert near_kink(cfg, images).mean() <= 0.10
    (w, b), i, j = shared_init(cfg.layer_sizes, cfg.seed)[0], 3, 17
    moved = images.copy()  # shift example i's pixels so that its unit j's pre-activation is ~1e-9
    z = images[i].astype(np.float64) @ w[:, j].astype(np.float64) + b[j]
    k = np.flatnonzero(images[i])[0]
    moved[i, k] -= (z - 1e-9) / w[k, j]
    assert near_kink(cfg, moved)[i]


# ------------------------------------------------------------------------ training


@pytest.mark.parametrize("output", OUTPUTS)
def test_one_adam_step_from_the_same_gradients_matches(output, batch):
    """The optimizers alone: torch's gradients fed to both Adams (this pins eps's place, too)."""
    cfg = Config(output=output)  # the baseline architecture
    torch_net, flax_net = twins(cfg)
    torch_opt, flax_opt = (
        torch_train.build_optimizer(torch_net, cfg),
        flax_train.build_optimizer(flax_net, cfg),
    )
    torch_train.loss_fn(torch_net, *as_torch(*batch)).backward()
    grads = [(layer.weight.grad.numpy().T, layer.bias.grad.numpy()) for layer in torch_net.layers]
    torch_opt.step()
    holder = flax_model.build_model(cfg)  # a model-shaped container for the gradients
    flax_model.set_weights(holder, grads)
    flax_opt.update(flax_net, nnx.state(holder, nnx.Param))
    for (w_t, b_t), (w_f, b_f) in zip(
        torch_model.get_weights(torch_net), flax_model.get_weights(flax_net)
    ):
        assert np.abs(w_t - w_f).max() <= 1e-7 and np.abs(b_t - b_f).max() <= 1e-7
    # Entries with |g| ~ eps exist (a sum over the batch that nearly cancels), where eps's place
    # matters: sqrt(v) + eps and sqrt(v + eps) would differ there by ~lr, far beyond the tolerance
    # above.
    g_w = np.abs(grads[0][0])  # first layer
    assert np.any((g_w > 0) & (g_w < 1e-7))


@pytest.mark.parametrize("output", OUTPUTS)
def test_one_adam_step_matches(output, batch):
    cfg = Config(output=output)  # the baseline architecture
    torch_net, flax_net = twins(cfg)
    torch_opt, flax_opt = (
        torch_train.build_optimizer(torch_net, cfg),
        flax_train.build_optimizer(flax_net, cfg),
    )
    torch_train.train_step(torch_net, torch_opt, *as_torch(*batch))
    flax_train.train_step(flax_net, flax_opt, *as_jax(*batch))
    before = shared_init(cfg.layer_sizes, cfg.seed)
    after_torch, after_flax = torch_model.get_weights(torch_net), flax_model.get_weights(flax_net)
    for (w0, _), (w_t, b_t), (w_f, b_f) in zip(before, after_torch, after_flax):
        assert np.abs(b_t - b_f).max() <= STEP_TOL
        # Adam's first step is lr * g / (|g| + eps): it moves each parameter with |g| >> eps by ~lr.
        assert 0.9 * cfg.learning_rate < np.abs(w_t - w0).max() <= 1.01 * cfg.learning_rate
        # Where |g| is within ~100 eps of zero (a batch sum that nearly cancels; < 2% of the
        # entries), g / (|g| + eps) turns the float32 rounding noise of the two frameworks' gradient
        # sums (~1e-10) into update differences of up to a few 1e-6: those entries get a looser
        # bound, all others 1e-6.
        step = np.abs(w_t - w0) / cfg.learning_rate  # |g| / (|g| + eps), in [0, 1)
        # 0 < |g| < 99 eps (g == 0 exactly: pixels blank in the whole batch)
        ill = (step > 0) & (step < 0.99)
        assert ill.mean() < 0.02
        assert np.abs(w_t - w_f)[~ill].max() <= STEP_TOL
        assert np.abs(w_t - w_f)[ill].max(initial=0) <= 10 * STEP_TOL


def train_both(cfg: Config, mnist, steps: int):
    """`steps` Adam steps of both twins from the shared init, on the shared batch order (across
    epochs), in cfg.dtype: (loss curve torch, loss curve flax, final weights torch, final weights
    flax)."""
    images, labels = scale_images(mnist.train_images, cfg.dtype), mnist.train_labels
    order = np.concatenate(
        [epoch_index_matrix(cfg.seed, e, len(labels), cfg.batch_size) for e in range(cfg.epochs)]
    )
    with flax_runtime.dtype_scope(cfg.dtype):
        torch_net, flax_net = twins(cfg)
        torch_opt, flax_opt = (
            torch_train.build_optimizer(torch_net, cfg),
            flax_train.build_optimizer(flax_net, cfg),
        )
        losses_torch, losses_flax = [], []
        for index in order[:steps]:
            losses_torch.append(
                torch_train.train_step(
                    torch_net, torch_opt, *as_torch(images[index], labels[index])
                )
            )
            losses_flax.append(
                flax_train.train_step(flax_net, flax_opt, *as_jax(images[index], labels[index]))
            )
        curves = torch.stack(losses_torch).numpy(), np.asarray(jnp.stack(losses_flax))
        return (*curves, torch_model.get_weights(torch_net), flax_model.get_weights(flax_net))


def test_loss_curves_match_over_200_steps(mnist):
    cfg = Config()  # the tutorial's 784-500-10, Adam 1e-3, batch 100
    curve_torch, curve_flax, _, _ = train_both(cfg, mnist, 200)
    assert_within("loss curve (flax vs torch)", curve_flax, curve_torch, CURVE_TOL)
    assert curve_torch[-20:].mean() < 0.25 * curve_torch[:5].mean()  # it did learn


# float64: the same algorithm in both frameworks, shown by whole runs that agree to 1e-9. In float32
# the curves agree to ~1e-6 for a hundred steps and then drift apart (1e-3..1e-2 after an epoch):
# training amplifies rounding differences (chaos), and float64 starts them ~1e9 times smaller.
F64_RUNS = {
    "64-relu-logits-epoch": (
        Config(hidden_size=64, batch_size=600, epochs=1, dtype="float64"),
        100,
    ),
    "64-leaky_relu-logits-epoch": (
        Config(hidden_size=64, batch_size=600, epochs=1, activation="leaky_relu", dtype="float64"),
        100,
    ),
    "64-relu-softmax-lr1e-2-epoch": (
        Config(
            hidden_size=64,
            batch_size=600,
            epochs=1,
            output="softmax",
            learning_rate=1e-2,
            dtype="float64",
        ),
        100,
    ),
    "tutorial-net-300-steps": (Config(dtype="float64"), 300),  # 784-500-10, batch 100, Adam 1e-3
}


@pytest.mark.parametrize("name", F64_RUNS)
def test_float64_whole_runs_match(name, mnist):
    cfg, steps = F64_RUNS[name]
    curve_torch, curve_flax, weights_torch, weights_flax = train_both(cfg, mnist, steps)
    assert curve_torch.dtype == curve_flax.dtype == np.float64 and len(curve_flax) == steps
    assert_within("float64 loss curve (flax vs torch)", curve_flax, curve_torch, F64_CURVE_TOL)
    # It did learn (softmax's floor is 1.46)
    assert curve_torch[-10:].mean() < curve_torch[:5].mean() - 0.5
    for i, ((w_t, b_t), (w_f, b_f)) in enumerate(zip(weights_torch, weights_flax)):
        for what, p_t, p_f in (("W", w_t, w_f), ("b", b_t, b_f)):
            assert_within(
                f"layer {i} final {what} (flax vs torch)",
                p_f,
                p_t,
                F64_PARAM_RTOL * np.abs(p_t).max(),
            )


@pytest.fixture(scope="module")
def float64_records(mnist):
    """train() of each twin on a float64 config: (torch's record, Flax's record), for two tests."""
    cfg = Config(hidden_size=64, batch_size=600, epochs=1, dtype="float64")
    return torch_train.train(cfg, mnist, device="cpu", log=None), flax_train.train(
        cfg, mnist, device="cpu", log=None
    )


def test_float64_train_records_match(float64_records):
    """The whole pipeline (train() of each twin): float64 records keep all 17 digits of the loss."""
    rec_torch, rec_flax = float64_records
    assert rec_torch["config"]["dtype"] == rec_flax["config"]["dtype"] == "float64"
    assert_within(
        "recorded float64 loss curve",
        rec_flax["loss_curve"],
        rec_torch["loss_curve"],
        F64_CURVE_TOL,
    )
    assert rec_torch["epochs"][0]["test_accuracy"] == rec_flax["epochs"][0]["test_accuracy"]
    # Rounded to float32's 7 digits the curves would differ by ~1e-7, not agree to 1e-9:
    assert any(len(repr(x)) > 12 for x in rec_torch["loss_curve"])


def test_float64_runs_record_accuracy_as_a_count_over_10000(float64_records, mnist):
    """A float64 run's accuracy is k / 10000 for an integer k, as float64 holds it: 8994 correct is
    0.8994, not float32's 0.899399995803833 (the mean is taken in the run's dtype, both twins)."""
    n = len(mnist.test_labels)
    for record in float64_records:
        for epoch in record["epochs"]:
            accuracy = epoch["test_accuracy"]
            assert accuracy == round(accuracy * n) / n, (record["backend"], accuracy)


def test_float32_runs_after_a_float64_run_stay_float32(float64_records):
    """JAX's x64 mode is switched on for a float64 run only (runtime.dtype_scope), never left on.

    The float64 run is the fixture's flax train(), shared with the test above (a leak would outlast
    any later enable_x64 scope: each one puts back the mode it found)."""
    assert (
        float64_records[1]["config"]["dtype"] == "float64"
        and float64_records[1]["backend"] == "jax"
    )
    assert jnp.ones(1).dtype == jnp.float32
    cfg = Config(hidden_size=16, batch_size=6000, epochs=1)
    with flax_runtime.dtype_scope(cfg.dtype):
        assert flax_model.get_weights(flax_model.build_model(cfg))[0][0].dtype == np.float32
    with flax_runtime.dtype_scope("float64"):
        model = flax_model.build_model(dataclasses.replace(cfg, dtype="float64"))
        assert flax_model.get_weights(model)[0][0].dtype == np.float64


# ------------------------------------------------------------------- initial weights


def test_torch_native_init_is_uniform_within_1_over_sqrt_fan_in():
    cfg = Config(hidden_layers=2, init="native")  # 784-500-500-10: both kinds of hidden layer
    weights = torch_model.get_weights(torch_model.build_model(cfg))
    # Seeded: the same weights again
    assert np.array_equal(
        weights[0][0], torch_model.get_weights(torch_model.build_model(cfg))[0][0]
    )
    assert not np.allclose(weights[0][0], shared_init(cfg.layer_sizes, cfg.seed)[0][0])
    for (w, b), fan_in in zip(weights, cfg.layer_sizes[:-1]):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) for W, and the same bound for b
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(w).max() > 0.99 * bound  # W fills the interval (>= 5000 draws)
        assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.03  # a uniform's std, not a normal's
        assert abs(w.mean()) < 0.02 * bound
        if len(b) >= 500:
            assert np.abs(b).max() > 0.9 * bound


def test_flax_native_init_is_truncated_lecun_normal_and_zero_bias():
    cfg = Config(hidden_layers=2, init="native")
    weights = flax_model.get_weights(flax_model.build_model(cfg))
    # Seeded: the same config draws the same weights.
    assert np.array_equal(weights[0][0], flax_model.get_weights(flax_model.build_model(cfg))[0][0])
    cut = 2 / 0.87962566103423978  # lecun_normal: N(0,1) cut to [-2, 2], rescaled to unit variance
    for (w, b), fan_in in zip(weights, cfg.layer_sizes[:-1]):
        z = w * math.sqrt(fan_in)  # in units of the documented std, 1/sqrt(fan_in)
        assert abs(z.std() - 1) < 0.03
        assert abs(z.mean()) < 0.03
        assert np.abs(z).max() <= cut * (1 + 1e-6)
        assert np.all(b == 0)
    # 392000 draws: the cut is reached, and never passed; an untruncated normal would put ~2.3% of
    # its draws (9000 here) beyond it.
    z = weights[0][0] * math.sqrt(784)
    assert np.abs(z).max() > 0.99 * cut


@pytest.mark.parametrize("model", [torch_model, flax_model], ids=["torch", "flax"])
def test_get_set_weights_round_trip_exactly(model):
    cfg = Config(hidden_size=400, hidden_layers=2, init="native")
    net = model.build_model(cfg)
    weights = shared_init(cfg.layer_sizes, seed=7)
    model.set_weights(net, weights)
    got = model.get_weights(net)
    assert len(got) == 3
    for (w, b), (w2, b2) in zip(weights, got):
        assert w2.dtype == b2.dtype == np.float32 and w2.shape == w.shape
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
    with pytest.raises(
        ValueError, match="shapes"
    ):  # torch's (out, in) layout is refused, not broadcast
        model.set_weights(net, [(w.T, b) for w, b in weights])


def test_weights_move_between_frameworks_exactly():
    cfg = Config(hidden_layers=2, init="native")
    torch_net, flax_net = twins(cfg)
    from_torch = torch_model.get_weights(torch_net)
    flax_model.set_weights(flax_net, from_torch)
    assert all(
        np.array_equal(a, b)
        for pa, pb in zip(from_torch, flax_model.get_weights(flax_net))
        for a, b in zip(pa, pb)
    )
    flax_native = flax_model.get_weights(flax_model.build_model(cfg))
    torch_model.set_weights(torch_net, flax_native)
    assert all(
        np.array_equal(a, b)
        for pa, pb in zip(flax_native, torch_model.get_weights(torch_net))
        for a, b in zip(pa, pb)
    )


def test_twins_start_apart_with_native_init_and_together_with_shared():
    native = dataclasses.replace(Config(), init="native")
    w_torch, w_flax = (
        m.get_weights(m.build_model(native))[0][0] for m in (torch_model, flax_model)
    )
    assert not np.allclose(w_torch, w_flax)
    w_torch, w_flax = (
        m.get_weights(m.build_model(Config()))[0][0] for m in (torch_model, flax_model)
    )
    assert np.array_equal(w_torch, w_flax)
