"""The report's seed and agreement sections: on hand-made records, and on the committed
docs/results/cpu-seeds."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
import pytest

from comparison.report import agreement, seeds, write_report
from comparison.report.common import Page
from comparison.results import scan_results
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "cpu-seeds" / "results.jsonl"


def record(backend, acc, curve=(2.3, 1.0, 0.5), **fields):
    cfg = Config(epochs=1, **fields)
    return {
        "backend": backend,
        "config": dataclasses.asdict(cfg),
        "status": "ok",
        "error": None,
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": acc}],
        "loss_curve": list(curve),
        "loss_curve_every": 1,
        "steps": len(curve),
        "step_time_us": 1000.0,
        "samples_per_s": 1e5,
        "warmup_s": 0.1,
        "train_s": 1.0,
        "wall_s": 1.0,
        "device": "cpu",
        "versions": {},
        "dataset": {"name": "mnist"},
    }


def synthetic():
    """lr 1e-3: both backends 97.0 +- ~0.1 over 5 seeds (within). lr 1e-2: JAX 2 points above
    torch (beyond). lr 1e-4: two seeds only (not enough to say)."""
    noise = [0.000, 0.001, -0.001, 0.0015, -0.0005]
    recs = []
    for seed, n in enumerate(noise):
        recs += [record("torch", 0.970 + n, seed=seed), record("jax", 0.970 - n, seed=seed)]
        recs += [
            record("torch", 0.950 + n, seed=seed, learning_rate=1e-2),
            record("jax", 0.970 + n, seed=seed, learning_rate=1e-2),
        ]
    recs += [record(b, 0.9, seed=s, learning_rate=1e-4) for s in (0, 1) for b in ("torch", "jax")]
    return recs


def test_seed_stats_mean_spread_and_min_max():
    stats = dict(seeds.seed_stats(synthetic()))
    assert len(stats) == 2  # the two-seed configuration is left out
    (name,) = [n for n in stats if "lr0.001 " in n]
    torch_stats = stats[name]["torch"]
    assert torch_stats["mean"] == pytest.approx(
        0.970 + np.mean([0, 0.001, -0.001, 0.0015, -0.0005])
    )
    assert torch_stats["std"] == pytest.approx(np.std([0, 0.001, -0.001, 0.0015, -0.0005], ddof=1))
    assert (torch_stats["min"], torch_stats["max"]) == pytest.approx((0.969, 0.9715))


def test_seed_section_says_which_gaps_exceed_the_seed_spread(tmp_path):
    text = "\n".join(seeds.section(Page(synthetic(), tmp_path)))
    lines = text.splitlines()
    assert "## Framework difference vs seed spread" in text
    assert "differ by more than the seed spread in 1 of 2 configurations" in text
    row_1e2 = next(line for line in lines if "lr0.01 " in line)
    row_1e3 = next(line for line in lines if "lr0.001 " in line)
    assert "**beyond**" in row_1e2 and "| 2.00 |" in row_1e2 and "5 / 5" in row_1e2
    assert "within" in row_1e3 and "beyond" not in row_1e3
    assert (tmp_path / "seed_spread.png").stat().st_size > 5000


def test_no_seed_section_without_replicates(tmp_path):
    assert seeds.section(Page([record("torch", 0.9), record("jax", 0.9)], tmp_path)) == []


def test_agreement_reports_max_curve_difference_per_dtype(tmp_path):
    recs = [
        record("torch", 0.9, curve=(2.3, 1.0, 0.5)),
        record("jax", 0.9, curve=(2.3, 1.001, 0.52)),
        record("torch", 0.9, curve=(2.3, 1.0, 0.5), dtype="float64"),
        record("jax", 0.9, curve=(2.3, 1.0 + 3e-13, 0.5), dtype="float64"),
    ]
    text = "\n".join(agreement.section(Page(recs, tmp_path)))
    assert "| float32 | 0.001 | 1 | 0.02 | 0.02 | 0 | 0 |" in text
    assert "| float64 | 0.001 | 1 | 3e-13 | 3e-13 | 0 | 0 |" in text
    assert "largest max |Δ| over whole runs is 3e-13, within the tests' 1e-09" in text
    recs[3]["loss_curve"][2] = 0.5 + 1e-6
    assert "**beyond**" in "\n".join(agreement.section(Page(recs, tmp_path)))


@pytest.mark.skipif(not COMMITTED.exists(), reason="docs/results/cpu-seeds not committed")
def test_committed_seed_results_report(tmp_path):
    """The committed results: 5 seeds of the baseline and of one grid group, and the float64
    baseline."""
    records, bad = scan_results(COMMITTED)
    assert bad == []
    report = write_report(records, tmp_path).read_text()
    assert "## Framework difference vs seed spread" in report
    assert re.search(
        r"differ by more than the seed spread in \d+ of (1[7-9]|[2-9]\d) configurations", report
    )
    m = re.search(r"float64: the largest max \|Δ\| over whole runs is (\S+), within", report)
    assert m and float(m.group(1).rstrip(",")) <= 1e-9
    f64 = [r for r in records if r["config"]["dtype"] == "float64"]
    assert {r["backend"] for r in f64} == {"torch", "jax"} and all(r["steps"] == 3000 for r in f64)
