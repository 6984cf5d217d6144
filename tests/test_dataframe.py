"""comparison/results.py:to_dataframe on the committed grid: one row per run, the config's fields,
the final metrics and the timings as columns, equal to the records; and the example of
docs/results-format.md (torch - JAX final accuracy per learning rate) runs as printed there."""

from __future__ import annotations

import math
import pathlib
import re

import pytest

from comparison.results import scan_results
from shared.checkpoint import run_name
from shared.config import FIELD_NAMES, Config

pd = pytest.importorskip("pandas")

from comparison.results import to_dataframe  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRID = ROOT / "docs" / "results" / "cpu-grid"


@pytest.fixture(scope="module")
def grid():
    return to_dataframe(GRID / "results.jsonl"), scan_results(GRID / "results.jsonl")[0]


def test_one_row_per_run_with_every_config_field(grid):
    df, records = grid
    assert len(df) == len(records) == 864
    assert set(FIELD_NAMES) <= set(df.columns)
    assert {"final_test_accuracy", "step_time_us", "wall_s", "run_name", "model"} <= set(df.columns)
    assert df.groupby("run_name").size().eq(2).all()  # torch and JAX of each configuration
    assert sorted(df.backend.unique()) == ["jax", "torch"]


def test_rows_equal_the_records(grid):
    df, records = grid
    for (_, row), rec in zip(df.iterrows(), records):
        cfg = Config(**rec["config"])
        assert {f: row[f] for f in FIELD_NAMES} == cfg.to_dict()
        assert row.run_name == run_name(cfg)
        assert row.backend == rec["backend"] and row.status == rec["status"]
        assert row.final_test_accuracy == rec["epochs"][-1]["test_accuracy"]
        assert row.final_test_loss == rec["epochs"][-1]["test_loss"]
        assert row.epochs_done == len(rec["epochs"]) and row.steps == rec["steps"]
        assert row.step_time_us == rec["step_time_us"] and row.wall_s == rec["wall_s"]


def test_a_run_without_epochs_has_nan_metrics(grid):
    _, records = grid
    rec = dict(records[0], status="diverged", epochs=[])
    row = to_dataframe([rec]).iloc[0]
    assert math.isnan(row.final_test_accuracy) and row.epochs_done == 0


def test_the_documented_example_prints_what_the_docs_show(grid, monkeypatch):
    """The code block of docs/results-format.md, run, prints the table shown under it."""
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "results-format.md").read_text()
    section = text[text.index("## Results as a pandas DataFrame") :]
    code, shown = re.findall(r"```(?:python|text)\n(.*?)```", section, re.S)[:2]
    printed = []
    exec(code, {"print": lambda *a: printed.append(" ".join(map(str, a)))})
    assert "\n".join(printed).strip() == shown.strip()
