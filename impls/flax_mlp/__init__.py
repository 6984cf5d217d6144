"""The MNIST MLP in JAX + Flax NNX; the twin is impls/torch_mlp. The README: the reading order."""
