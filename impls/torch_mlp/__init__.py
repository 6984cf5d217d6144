"""The MNIST MLP in PyTorch; the twin is impls/flax_mlp. The README: the reading order."""
