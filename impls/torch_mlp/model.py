"""The MLP in PyTorch: an `nn.Module` of `nn.Linear` layers, the tutorial's feed-forward net.

The twin is impls/flax_mlp/model.py. torch keeps `weight` as (out, in); get/set_weights exchange
(W (in, out), b), the layout of shared/init.py, so that both twins can start from the same numbers.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.config import Config
from shared.init import Weights, shared_init

LEAKY_SLOPE = 0.01  # LeakyReLU's negative slope: torch's and JAX's default alike


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
            # The lab report's double softmax (cross-entropy applies one more), kept to reproduce
            # it: the loss cannot drop below -log(e / (e + 9)) ~= 1.461 and learns slowly.
            x = torch.softmax(x, dim=1)  # (B, 10) probabilities
        return x


def build_model(cfg: Config) -> MLP:
    """The MLP of `cfg`, on the CPU. cfg.init "shared": shared.init's weights, the same in both
    twins; "native": nn.Linear's own, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), unlike Flax's."""
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
