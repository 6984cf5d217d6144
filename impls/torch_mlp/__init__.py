"""The MNIST MLP in PyTorch."""
