"""The MLP in Flax NNX: an `nnx.Module` of `nnx.Linear` layers, the tutorial's feed-forward net.

The twin is impls/torch_mlp/model.py. Flax keeps `kernel` as (in, out), already the layout of
shared/init.py, so that both twins can start from the same numbers (get/set_weights).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from shared.config import Config
from shared.init import Weights, shared_init

LEAKY_SLOPE = 0.01  # LeakyReLU's negative slope: torch's and JAX's default alike


class MLP(nnx.Module):
    """hidden_layers x (Linear -> activation), then Linear to the 10 classes."""

    def __init__(
        self,
        layer_sizes: list[int],
        activation: str,
        output: str,
        dtype: jnp.dtype = jnp.float32,
        *,
        rngs: nnx.Rngs,
    ):
        self.layers = nnx.List(
            [
                nnx.Linear(n_in, n_out, dtype=dtype, param_dtype=dtype, rngs=rngs)
                for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
            ]
        )
        self.activation = (
            nnx.relu
            if activation == "relu"
            else functools.partial(nnx.leaky_relu, negative_slope=LEAKY_SLOPE)
        )
        self.output = output

    def __call__(self, x):  # (B, 784) in the model's dtype
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))  # (B, hidden)
        x = self.layers[-1](x)  # (B, 10) logits
        if self.output == "softmax":
            # The lab report's double softmax (cross-entropy applies one more), kept to reproduce
            # it: the loss cannot drop below -log(e / (e + 9)) ~= 1.461 and learns slowly.
            x = nnx.softmax(x, axis=1)  # (B, 10) probabilities
        return x


def build_model(cfg: Config) -> MLP:
    """The MLP of `cfg`, on the default device. cfg.init "shared": shared.init's weights, the same
    in both twins; "native": nnx.Linear's own, a lecun_normal kernel and zero bias, unlike torch's.
    A float64 model needs JAX's x64 mode on while it is built and used (runtime.dtype_scope)."""
    rngs = nnx.Rngs(cfg.seed)  # the native init draws from an explicit key, as JAX always does
    dtype = jnp.dtype(cfg.dtype)  # float32 | float64
    model = MLP(cfg.layer_sizes, cfg.activation, cfg.output, dtype=dtype, rngs=rngs)
    if cfg.init == "shared":
        set_weights(model, shared_init(cfg.layer_sizes, cfg.seed, cfg.dtype))
    return model


def get_weights(model: MLP) -> Weights:
    """[(W (in, out), b (out,)), ...] as numpy copies, in the model's dtype."""
    return [(np.array(layer.kernel[...]), np.array(layer.bias[...])) for layer in model.layers]


def set_weights(model: MLP, weights: Weights) -> None:
    """Copy [(W (in, out), b (out,)), ...] into the model, in place (JAX: new arrays)."""
    _check_shapes(
        [(tuple(layer.kernel.shape), tuple(layer.bias.shape)) for layer in model.layers], weights
    )
    # Variables are mutable containers: set_value swaps the array (on the default device).
    for layer, (w, b) in zip(model.layers, weights):
        # (in, out): Flax's own layout, cast to the model's dtype
        layer.kernel.set_value(jnp.asarray(w, dtype=layer.kernel.dtype))
        layer.bias.set_value(jnp.asarray(b, dtype=layer.bias.dtype))


def _check_shapes(expected: list[tuple[tuple, tuple]], weights: Weights) -> None:
    got = [(tuple(np.shape(w)), tuple(np.shape(b))) for w, b in weights]
    if got != expected:
        raise ValueError(
            f"weights of shapes {got} do not fit this model; expected {expected} (W as (in, out))"
        )
