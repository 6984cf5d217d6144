"""What both twins' checkpoints share, framework-free: where a run's model goes
(DIR/<run name>/torch.pt | jax.orbax, its config.json beside), which framework wrote a file, and
the one-line CheckpointError (atomic writes: shared/files.py). The formats are the twins' own
(impls/*/checkpoint.py); why and how: docs/results-format.md#saved-models-outmodels.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import fields

from shared.config import Config, ConfigError
from shared.files import atomic_file

FILE_NAMES = {"torch": "torch.pt", "jax": "jax.orbax"}  # backend -> its checkpoint in a folder
CONFIG_FILE = "config.json"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_ORBAX_MARKERS = ("_CHECKPOINT_METADATA", "manifest.ocdbt", "_METADATA")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used. `str(err)` is one line: the path, what was expected and
    what was found."""


def run_name(cfg: Config) -> str:
    """A configuration's folder name: the fields that differ from Config()'s defaults, e.g.
    "hidden_size=64,learning_rate=0.01" ("defaults" for none). Unique among configurations, and
    the name of its TensorBoard run (comparison/tensorboard.py)."""
    default = Config()
    changed = [
        f"{f.name}={getattr(cfg, f.name)}"
        for f in fields(cfg)
        if getattr(cfg, f.name) != getattr(default, f.name)
    ]
    return ",".join(changed) or "defaults"


def model_path(folder: str | os.PathLike, cfg: Config, backend: str) -> pathlib.Path:
    """Where `backend`'s model of `cfg` goes under `folder`: folder/<run name>/<FILE_NAMES>."""
    return pathlib.Path(folder) / run_name(cfg) / FILE_NAMES[backend]


def write_config(path: str | os.PathLike, cfg: Config) -> None:
    """config.json beside the checkpoint `path` (atomically, as the checkpoint itself)."""
    target = pathlib.Path(path).parent / CONFIG_FILE
    with atomic_file(target) as tmp:
        tmp.write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")


def read_config(path: str | os.PathLike) -> Config | None:
    """The Config in config.json beside the checkpoint `path`; None where there is none."""
    target = pathlib.Path(path).parent / CONFIG_FILE
    if not target.is_file():
        return None
    try:
        return Config(**json.loads(target.read_text()))
    except (ValueError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{target}: not a config of this project ({e})") from None


def checkpoint_format(path: str | os.PathLike) -> str:
    """ "torch" (a torch.save zip file) or "jax" (an Orbax folder), or CheckpointError naming what
    is there instead."""
    path = pathlib.Path(path)
    expected = "expected a torch.save file (torch.pt) or an Orbax checkpoint folder (jax.orbax)"
    if path.is_dir():
        if any((path / marker).exists() for marker in _ORBAX_MARKERS):
            return "jax"
        raise CheckpointError(f"{path}: {expected}; found a folder without Orbax's metadata")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder; {expected}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        return "torch"
    raise CheckpointError(f"{path}: {expected}; found a file that is neither ({head!r}...)")


def check_shapes(path, cfg: Config, found: list[tuple[tuple, tuple]]) -> None:
    """CheckpointError unless the (W (in, out), b) shapes `found` in `path` are those of `cfg`."""
    sizes = cfg.layer_sizes
    expected = [((n_in, n_out), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    if [(tuple(w), tuple(b)) for w, b in found] != expected:
        raise CheckpointError(
            f"{path}: weights of shapes {_shapes(found)} do not fit the configuration "
            f"(hidden_size={cfg.hidden_size}, hidden_layers={cfg.hidden_layers}); expected "
            f"{_shapes(expected)} (W as (in, out)); pass the run's --config/--set"
        )


def _shapes(layers) -> str:
    return " ".join(f"{'x'.join(map(str, w))}+{'x'.join(map(str, b))}" for w, b in layers)
