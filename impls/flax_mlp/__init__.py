"""The MNIST MLP in JAX/Flax NNX."""
