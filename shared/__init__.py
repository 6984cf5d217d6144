"""What both twins import and neither owns: data, batch order, initial weights, configs, timing,
the record a run returns. Imports neither torch, jax nor comparison/."""
