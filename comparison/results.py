"""A results file as a pandas DataFrame: `to_dataframe`, one row per run.

The columns: the run's `backend`, `engine`, `status`, every Config field (shared/config.py) under
its own name, `run_name` (the configuration's name, shared by its torch and JAX rows: the key to
set them side by side), the last epoch's numbers (`final_test_accuracy`, `final_test_loss`,
`final_train_loss`; NaN for a run with no finished epoch), `epochs_done`, `steps`, the timings
(`step_time_us`, `samples_per_s`, `warmup_s`, `train_s`, `wall_s`, `gemm_floor_us`), `device`
and `model` (its checkpoint, with --save-models). docs/results-format.md shows it at work.
"""

from __future__ import annotations

import math
import os
import pathlib
from dataclasses import fields

from shared.checkpoint import run_name
from shared.config import Config
from shared.results import config_of, scan_results, warmup_s

CONFIG_FIELDS = tuple(f.name for f in fields(Config))
TIMINGS = ("step_time_us", "samples_per_s", "warmup_s", "train_s", "wall_s", "gemm_floor_us")


def to_dataframe(results: str | os.PathLike | list[dict]):
    """One row per run: `results` is a results.jsonl, the folder holding it (compare.py's --out),
    or its records. Needs pandas (pip install pandas); ValueError for a file with unreadable
    lines (compare.py --report names them)."""
    import pandas as pd

    if isinstance(results, list):
        records = results
    else:
        path = pathlib.Path(results)
        path = path / "results.jsonl" if path.is_dir() else path
        records, bad = scan_results(path)
        if bad:
            raise ValueError(f"{path}: line {bad[0]} is not a result record ({len(bad)} such)")
    columns = ["backend", "engine", "status", *CONFIG_FIELDS, "run_name", "final_test_accuracy"]
    columns += ["final_test_loss", "final_train_loss", "epochs_done", "steps", *TIMINGS]
    return pd.DataFrame([row(r) for r in records], columns=[*columns, "device", "model"])


def row(record: dict) -> dict:
    """A record's row of to_dataframe."""
    last = record["epochs"][-1] if record["epochs"] else {}
    cfg = config_of(record)  # every field, those older files lack at their defaults
    return {
        "backend": record["backend"],
        "engine": record.get("engine", "loop"),
        "status": record["status"],
        **cfg.to_dict(),
        "run_name": run_name(cfg),
        "final_test_accuracy": last.get("test_accuracy", math.nan),
        "final_test_loss": last.get("test_loss", math.nan),
        "final_train_loss": last.get("train_loss", math.nan),
        "epochs_done": len(record["epochs"]),
        "steps": record["steps"],
        **{t: record.get(t) for t in TIMINGS},
        "warmup_s": warmup_s(record),
        "device": record.get("device"),
        "model": record.get("model"),
    }
