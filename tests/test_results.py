"""shared/results.py's readers of a record read today's records and the committed older ones."""

from __future__ import annotations

import pathlib

import pytest

from shared.config import Config, ConfigError
from shared.results import config_of, latest, scan_results, warmup_s

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
    from shared.report import speed
    from shared.report.common import Page

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
