"""The twins compute the same thing: outputs, gradients, one Adam step and 200 training steps agree
across PyTorch and Flax from identical weights on real MNIST batches; each framework's native init
draws what its docs say; weights move in and out of both exactly. CPU, float32."""

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

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from impls.flax_mlp import model as flax_model  # noqa: E402
from impls.flax_mlp import train as flax_train  # noqa: E402
from impls.torch_mlp import model as torch_model  # noqa: E402
from impls.torch_mlp import train as torch_train  # noqa: E402
from shared.batches import epoch_index_matrix  # noqa: E402
from shared.config import ACTIVATIONS, OUTPUTS, Config  # noqa: E402
from shared.data import scale_images  # noqa: E402
from shared.init import shared_init  # noqa: E402

# The lab report's 36 architectures: hidden size x hidden layers x activation x output.
ARCHS = [Config(hidden_size=h, hidden_layers=n, activation=a, output=o)
         for h, n, a, o in itertools.product((400, 500, 600), (1, 2, 3), ACTIVATIONS, OUTPUTS)]
ARCH_IDS = [f"{c.hidden_size}x{c.hidden_layers}-{c.activation}-{c.output}" for c in ARCHS]

OUTPUT_TOL = 1e-5  # max |diff| of the model outputs (logits or probabilities)
GRAD_RTOL = 1e-5  # gradients: |diff| <= GRAD_RTOL * (|g| + max|g| of that parameter), i.e. relative, with
#                  an absolute floor of 1e-5 of the parameter's largest gradient for entries near zero
STEP_TOL = 1e-6  # parameters after one Adam step
CURVE_TOL = 1e-3  # loss curves over 200 steps


@pytest.fixture(autouse=True)
def jax_on_cpu():
    """Flax arrays on the CPU, like torch's, also on a machine with a GPU (no TF32 there to blur the comparison)."""
    with jax.default_device(jax.devices("cpu")[0]):
        yield


@pytest.fixture(autouse=True, scope="module")
def torch_one_thread():
    """One torch thread here: on a small CPU shared with other processes, torch's OpenMP threads wait on
    each other whenever one is descheduled (a 100x784 @ 784x500 matmul measured 1 ms on one thread and
    8-15 ms on two while another process held a core). Results agree within the tolerances either way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch(mnist):
    """The first batch of the shared order: real MNIST images (100, 784) float32 and labels (100,)."""
    index = epoch_index_matrix(0, 0, len(mnist.train_labels), 100)[0]
    return scale_images(mnist.train_images[index]), mnist.train_labels[index]


def twins(cfg: Config):
    return torch_model.build_model(cfg), flax_model.build_model(cfg)


def as_torch(images, labels):
    return torch.from_numpy(images), torch.from_numpy(labels)


def as_jax(images, labels):
    return jnp.asarray(images), jnp.asarray(labels.astype(np.int32))


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


@pytest.mark.parametrize("cfg", ARCHS, ids=ARCH_IDS)
def test_gradients_match(cfg, batch):
    torch_net, flax_net = twins(cfg)
    loss_torch = torch_train.loss_fn(torch_net, *as_torch(*batch))
    loss_torch.backward()
    grads_torch = [(layer.weight.grad.numpy().T, layer.bias.grad.numpy()) for layer in torch_net.layers]
    loss_flax, grads = nnx.value_and_grad(flax_train.loss_fn)(flax_net, *as_jax(*batch))
    # The gradient State has the model's structure: merged with its graphdef it reads like a model.
    grads_flax = flax_model.get_weights(nnx.merge(nnx.graphdef(flax_net), grads))

    assert abs(loss_torch.item() - float(loss_flax)) <= 1e-5
    if cfg.output == "softmax":  # the double softmax's floor (see model.py)
        assert loss_torch.item() >= math.log(1 + 9 / math.e) - 1e-6
    for (gw_t, gb_t), (gw_f, gb_f) in zip(grads_torch, grads_flax):
        for g_t, g_f in ((gw_t, gw_f), (gb_t, gb_f)):
            scale = np.abs(g_t).max()
            assert scale > 0
            assert np.all(np.abs(g_t - g_f) <= GRAD_RTOL * (np.abs(g_t) + scale))


# ------------------------------------------------------------------------ training


@pytest.mark.parametrize("output", OUTPUTS)
def test_one_adam_step_from_the_same_gradients_matches(output, batch):
    """The optimizers alone: torch's gradients fed to both Adams (this pins eps's place, among others)."""
    cfg = Config(output=output)  # the baseline architecture
    torch_net, flax_net = twins(cfg)
    torch_opt, flax_opt = torch_train.build_optimizer(torch_net, cfg), flax_train.build_optimizer(flax_net, cfg)
    torch_train.loss_fn(torch_net, *as_torch(*batch)).backward()
    grads = [(layer.weight.grad.numpy().T, layer.bias.grad.numpy()) for layer in torch_net.layers]
    torch_opt.step()
    holder = flax_model.build_model(cfg)  # a model-shaped container for the gradients
    flax_model.set_weights(holder, grads)
    flax_opt.update(flax_net, nnx.state(holder, nnx.Param))
    for (w_t, b_t), (w_f, b_f) in zip(torch_model.get_weights(torch_net), flax_model.get_weights(flax_net)):
        assert np.abs(w_t - w_f).max() <= 1e-7 and np.abs(b_t - b_f).max() <= 1e-7
    # Entries with |g| ~ eps exist (a sum over the batch that nearly cancels), where eps's place matters:
    # sqrt(v) + eps and sqrt(v + eps) would differ there by ~lr, far beyond the tolerance above.
    g_w = np.abs(grads[0][0])  # first layer
    assert np.any((g_w > 0) & (g_w < 1e-7))


@pytest.mark.parametrize("output", OUTPUTS)
def test_one_adam_step_matches(output, batch):
    cfg = Config(output=output)  # the baseline architecture
    torch_net, flax_net = twins(cfg)
    torch_opt, flax_opt = torch_train.build_optimizer(torch_net, cfg), flax_train.build_optimizer(flax_net, cfg)
    torch_train.train_step(torch_net, torch_opt, *as_torch(*batch))
    flax_train.train_step(flax_net, flax_opt, *as_jax(*batch))
    before = shared_init(cfg.layer_sizes, cfg.seed)
    after_torch, after_flax = torch_model.get_weights(torch_net), flax_model.get_weights(flax_net)
    for (w0, b0), (w_t, b_t), (w_f, b_f) in zip(before, after_torch, after_flax):
        assert np.abs(b_t - b_f).max() <= STEP_TOL
        # Adam's first step is lr * g / (|g| + eps): it moves every parameter with |g| >> eps by ~lr.
        assert 0.9 * cfg.learning_rate < np.abs(w_t - w0).max() <= 1.01 * cfg.learning_rate
        # Where |g| is within ~100 eps of zero (a batch sum that nearly cancels; < 2% of the entries),
        # g / (|g| + eps) turns the float32 rounding noise of the two frameworks' gradient sums (~1e-10)
        # into update differences of up to a few 1e-6: those entries get a looser bound, all others 1e-6.
        step = np.abs(w_t - w0) / cfg.learning_rate  # |g| / (|g| + eps), in [0, 1)
        ill = (step > 0) & (step < 0.99)  # 0 < |g| < 99 eps (g == 0 exactly: pixels blank in the whole batch)
        assert ill.mean() < 0.02
        assert np.abs(w_t - w_f)[~ill].max() <= STEP_TOL
        assert np.abs(w_t - w_f)[ill].max(initial=0) <= 10 * STEP_TOL


def test_loss_curves_match_over_200_steps(mnist):
    cfg = Config()  # the seed's 784-500-10, Adam 1e-3, batch 100
    torch_net, flax_net = twins(cfg)
    torch_opt, flax_opt = torch_train.build_optimizer(torch_net, cfg), flax_train.build_optimizer(flax_net, cfg)
    images, labels = scale_images(mnist.train_images), mnist.train_labels
    losses_torch, losses_flax = [], []
    for index in epoch_index_matrix(cfg.seed, 0, len(labels), cfg.batch_size)[:200]:
        losses_torch.append(torch_train.train_step(torch_net, torch_opt, *as_torch(images[index], labels[index])))
        losses_flax.append(flax_train.train_step(flax_net, flax_opt, *as_jax(images[index], labels[index])))
    curve_torch, curve_flax = torch.stack(losses_torch).numpy(), np.asarray(jnp.stack(losses_flax))
    assert np.abs(curve_torch - curve_flax).max() <= CURVE_TOL
    assert curve_torch[-20:].mean() < 0.25 * curve_torch[:5].mean()  # it did learn


# ------------------------------------------------------------------- initial weights


def test_torch_native_init_is_uniform_within_1_over_sqrt_fan_in():
    cfg = Config(hidden_layers=2, init="native")  # 784-500-500-10: both kinds of hidden layer
    weights = torch_model.get_weights(torch_model.build_model(cfg))
    assert np.array_equal(weights[0][0], torch_model.get_weights(torch_model.build_model(cfg))[0][0])  # seeded
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
    assert np.array_equal(weights[0][0], flax_model.get_weights(flax_model.build_model(cfg))[0][0])  # seeded
    cut = 2 / 0.87962566103423978  # lecun_normal: N(0,1) truncated to [-2, 2], rescaled to unit variance
    for (w, b), fan_in in zip(weights, cfg.layer_sizes[:-1]):
        z = w * math.sqrt(fan_in)  # in units of the documented std, 1/sqrt(fan_in)
        assert abs(z.std() - 1) < 0.03
        assert abs(z.mean()) < 0.03
        assert np.abs(z).max() <= cut * (1 + 1e-6)
        assert np.all(b == 0)
    z = weights[0][0] * math.sqrt(784)  # 392000 draws: the cut is reached, and never passed; an untruncated
    assert np.abs(z).max() > 0.99 * cut  # normal would put ~2.3% of its draws (9000 here) beyond it


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
    with pytest.raises(ValueError, match="shapes"):  # torch's (out, in) layout is refused, not broadcast
        model.set_weights(net, [(w.T, b) for w, b in weights])


def test_weights_move_between_frameworks_exactly():
    cfg = Config(hidden_layers=2, init="native")
    torch_net, flax_net = twins(cfg)
    from_torch = torch_model.get_weights(torch_net)
    flax_model.set_weights(flax_net, from_torch)
    assert all(np.array_equal(a, b) for pa, pb in zip(from_torch, flax_model.get_weights(flax_net)) for a, b in zip(pa, pb))
    flax_native = flax_model.get_weights(flax_model.build_model(cfg))
    torch_model.set_weights(torch_net, flax_native)
    assert all(np.array_equal(a, b) for pa, pb in zip(flax_native, torch_model.get_weights(torch_net)) for a, b in zip(pa, pb))


def test_twins_start_apart_with_native_init_and_together_with_shared():
    native = dataclasses.replace(Config(), init="native")
    w_torch, w_flax = (m.get_weights(m.build_model(native))[0][0] for m in (torch_model, flax_model))
    assert not np.allclose(w_torch, w_flax)
    w_torch, w_flax = (m.get_weights(m.build_model(Config()))[0][0] for m in (torch_model, flax_model))
    assert np.array_equal(w_torch, w_flax)
