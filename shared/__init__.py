"""What both implementations use and neither owns: data, batch order, initial weights, configs,
timing and results. Imports neither torch nor jax."""
