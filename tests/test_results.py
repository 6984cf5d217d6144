"""comparison/results.py's readers of a record read today's records and the committed older ones."""

from __future__ import annotations

import json
import pathlib

import pytest

from comparison.results import ResultsFile, config_of, latest, scan_results, warmup_s
from shared.config import Config, ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "docs" / "results").glob("*/results.jsonl"))


def test_warmup_s_reads_the_field_under_its_old_name_too():
    assert warmup_s({"warmup_s": 0.5}) == 0.5
    assert warmup_s({"compile_s": 0.25}) == 0.25  # written before the rename (docs/results/*)
    assert warmup_s({"warmup_s": None}) is None  # an error record: no step ran
    assert warmup_s({}) is None


def test_committed_results_keep_their_warmup_time():
    assert COMMITTED
    for path in COMMITTED:
        records, bad = scan_results(path)
        assert records and not bad, path
        assert any(warmup_s(r) is not None for r in records if r["status"] == "ok"), path


def test_report_reads_the_old_name(tmp_path):
    from comparison.report import speed
    from comparison.report.common import Page

    records, _ = scan_results(ROOT / "docs" / "results" / "cpu-baseline" / "results.jsonl")
    assert all("compile_s" in r and "warmup_s" not in r for r in records)
    md = "\n".join(speed.section(Page(records, tmp_path)))
    committed = (ROOT / "docs" / "results" / "cpu-baseline" / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("First step (compile / warm-up)"))
    assert line in committed  # the same medians as when the report was written


def test_config_of_reads_committed_records_that_predate_a_field():
    records, _ = scan_results(ROOT / "docs" / "results" / "cpu-baseline" / "results.jsonl")
    # Written before Config.dtype existed: the default applies
    assert "dtype" not in records[0]["config"]
    assert config_of(records[0]) == Config()
    with pytest.raises(ConfigError):
        config_of({"config": {**Config().to_dict(), "activation": "tanh"}})


def test_latest_keeps_each_runs_last_record_where_the_run_first_appears():
    def rec(backend, lr, status):
        return {"backend": backend, "config": Config(learning_rate=lr).to_dict(), "status": status}

    failed, retried = rec("torch", 1e-2, "error"), rec("torch", 1e-2, "ok")
    other, bad = rec("jax", 1e-2, "ok"), {"backend": "jax", "config": {"hidden_size": -1}}
    assert latest([failed, other, bad, retried]) == [retried, other, bad]
    assert latest([other, other | {"status": "diverged"}]) == [other | {"status": "diverged"}]


def test_runs_recorded_as_errors_are_left_to_run(tmp_path, capsys):
    """An `error` record (a CUDA error, a killed worker) does not finish its run: the next
    compare.py on the same --out trains it again; ok and diverged runs stay finished."""
    runs = [Config(learning_rate=lr) for lr in (1e-3, 1e-2, 1e30)]
    path = tmp_path / "results.jsonl"
    path.write_text(
        "".join(
            json.dumps({"backend": b, "config": cfg.to_dict(), "status": status}) + "\n"
            for b, cfg, status in [
                ("torch", runs[0], "ok"),
                ("jax", runs[0], "error"),
                ("torch", runs[1], "error"),
                ("torch", runs[1], "ok"),  # retried before: its later record counts
                ("torch", runs[2], "diverged"),
            ]
        )
    )
    with ResultsFile(path) as rf:
        todo = rf.left_to_run(runs, ["torch", "jax"])
    assert [(cfg.learning_rate, b) for cfg, b in todo] == [
        (1e-3, "jax"),
        (1e-2, "jax"),
        (1e30, "jax"),
    ]
    err = capsys.readouterr().err
    assert "3 finished runs found" in err and "1 runs recorded as errors" in err
