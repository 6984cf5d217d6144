"""The MLP in PyTorch: an `nn.Module` of `nn.Linear` layers, the tutorial's feed-forward net.

Step 2 of the reading order (this package's __init__.py); the twin is impls/flax_mlp/model.py.
Initial weights (`cfg.init`):
  shared: `shared.init.shared_init`, the same numbers the Flax twin starts from (parity tests,
          comparisons).
  native: torch's own `nn.Linear` default, kaiming_uniform_(a=sqrt(5)) for the weight, which works
          out to W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from the same bound. Flax's
          default differs (lecun_normal kernel, zero bias), so native runs start apart.

torch keeps `weight` as (out, in) and computes x @ weight.T + bias; get/set_weights exchange
(W (in, out), b) so that both twins speak the layout of shared/init.py.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.config import Config
from shared.init import Weights, shared_init

# LeakyReLU's negative slope: the default of torch's and of JAX's leaky_relu alike.
LEAKY_SLOPE = 0.01


class MLP(nn.Module):
    """hidden_layers x (Linear -> activation), then Linear to the 10 classes."""

    def __init__(
        self,
        layer_sizes: list[int],
        activation: str,
        output: str,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, dtype=dtype)
            for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
        )
        self.activation = (
            F.relu
            if activation == "relu"
            else functools.partial(F.leaky_relu, negative_slope=LEAKY_SLOPE)
        )
        self.output = output

    def forward(self, x):  # (B, 784) in the model's dtype
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))  # (B, hidden)
        x = self.layers[-1](x)  # (B, 10) logits
        if self.output == "softmax":
            # The lab report's net ended in a softmax and still trained with cross-entropy, which
            # applies a softmax of its own: a double softmax. Kept on purpose, to reproduce the lab
            # report. Its effect: the loss sees inputs confined to [0, 1], so it can never drop
            # below -log(e / (e + 9)) ~= 1.461, and the extra softmax Jacobian shrinks every
            # gradient: learning is much slower than with logits.
            x = torch.softmax(x, dim=1)  # (B, 10) probabilities
        return x


def build_model(cfg: Config) -> MLP:
    """The MLP of `cfg`, on the CPU, initialised as `cfg.init` says (see the module docstring)."""
    torch.manual_seed(cfg.seed)  # the native init draws from torch's global generator
    dtype = getattr(torch, cfg.dtype)  # float32 | float64
    model = MLP(cfg.layer_sizes, cfg.activation, cfg.output, dtype=dtype)
    if cfg.init == "shared":
        set_weights(model, shared_init(cfg.layer_sizes, cfg.seed, cfg.dtype))
    return model


def get_weights(model: MLP) -> Weights:
    """[(W (in, out), b (out,)), ...] as numpy copies, in the model's dtype."""
    return [
        (layer.weight.detach().cpu().numpy().T.copy(), layer.bias.detach().cpu().numpy().copy())
        for layer in model.layers
    ]


def set_weights(model: MLP, weights: Weights) -> None:
    """Copy [(W (in, out), b (out,)), ...] into the model, in place (torch: a copy)."""
    _check_shapes(
        [(tuple(layer.weight.T.shape), tuple(layer.bias.shape)) for layer in model.layers], weights
    )
    with torch.no_grad():  # a plain copy into the parameters, not an op to differentiate
        for layer, (w, b) in zip(model.layers, weights):
            # (in, out) -> (out, in), cast to the model's dtype, on whatever device it lives
            layer.weight.copy_(torch.from_numpy(np.asarray(w).T))
            layer.bias.copy_(torch.from_numpy(np.asarray(b)))


def _check_shapes(expected: list[tuple[tuple, tuple]], weights: Weights) -> None:
    got = [(tuple(np.shape(w)), tuple(np.shape(b))) for w, b in weights]
    if got != expected:
        raise ValueError(
            f"weights of shapes {got} do not fit this model; expected {expected} (W as (in, out))"
        )
