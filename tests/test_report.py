"""The report's pieces on hand-made records: heatmap cells, paired variant effects, the page's
layout; and that the report does not depend on the order of the records."""

from __future__ import annotations

import dataclasses
import pathlib

from comparison.report import accuracy, variants
from comparison.report.common import pairs_of
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_heatmap_cells_tell_not_run_from_diverged_and_failed(tmp_path):
    def record(lr, layers, status, acc):
        cfg = Config(hidden_layers=layers, learning_rate=lr, batch_size=600)
        return {
            "backend": "torch",
            "config": dataclasses.asdict(cfg),
            "status": status,
            "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": acc}]
            if acc
            else [],
        }

    leaky = record(1e-2, 2, "ok", 0.9)
    leaky["config"]["activation"] = "leaky_relu"  # the heatmaps show relu + logits only: not a cell
    records = [
        record(1e-3, 1, "ok", 0.9712),
        record(1e-3, 2, "diverged", None),
        record(1e-2, 1, "error", None),
        leaky,
    ]
    cells, failed = accuracy.heatmap_cells(pairs_of(records), "torch")
    assert accuracy.cell_text((1e-3, 600, 1, 500), cells, failed) == "97.1"
    assert accuracy.cell_text((1e-3, 600, 2, 500), cells, failed) == "div"
    assert accuracy.cell_text((1e-2, 600, 1, 500), cells, failed) == "err"
    assert accuracy.cell_text((1e-2, 600, 2, 500), cells, failed) == "not run"
    # A partial grid renders
    assert accuracy.fig_acc_heatmaps(pairs_of(records), tmp_path / "h.png", "torch")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_variant_effects_are_paired_overall_and_per_learning_rate():
    def record(lr, output, acc):
        cfg = Config(learning_rate=lr, output=output)
        return {
            "backend": "jax",
            "config": dataclasses.asdict(cfg),
            "status": "ok",
            "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": acc}],
        }

    records = [
        record(1e-2, "logits", 0.97),
        record(1e-2, "softmax", 0.50),
        record(1e-4, "logits", 0.95),
        record(1e-4, "softmax", 0.94),
    ]
    lines = "\n".join(variants.variant_effects(pairs_of(records), ["jax"]))
    assert "| jax | all | 2 | -24.00 | -24.00 | 0 / 0 |" in lines
    assert "| jax | 0.01 | 1 | -47.00 | -47.00 | 0 / 0 |" in lines
    assert "| jax | 0.0001 | 1 | -1.00 | -1.00 | 0 / 0 |" in lines


def _speed_record(
    backend: str, us: float, p10: float, p90: float, floor: float | None = 800.0
) -> dict:
    return {
        "backend": backend,
        "config": Config().to_dict(),
        "status": "ok",
        "epochs": [],
        "step_time_us": us,
        "step_time_spread": {"p10": p10, "p50": us, "p90": p90, "windows": 55},
        "warmup_s": 0.1,
        "gemm_floor_us": floor,
        "load_at_start": {"load_1m": 3.5, "cpus": 2},
    }


def test_speed_section_gives_ratio_to_the_floor_and_warns_on_noise(tmp_path):
    from comparison.report import speed
    from comparison.report.common import Page

    quiet = Page(
        [_speed_record("torch", 2600, 2500, 2700), _speed_record("jax", 2000, 1950, 2100)], tmp_path
    )
    md = "\n".join(speed.section(quiet))
    assert "| 1x500 | 100 | 2600 | 2000 | 1.30 | 800 | 3.2 | 2.5 |" in md
    assert "Warning" not in md and "⚠" not in md
    # The spread table
    assert "| 1x500 | 100 | torch | 1 | 2500 | 2600 | 2700 | 1.08 | 1.08 |" in md

    busy = Page(
        [_speed_record("torch", 40000, 9000, 120000), _speed_record("jax", 2000, 1950, 2100)],
        tmp_path,
    )
    md = "\n".join(speed.section(busy))
    assert (
        "**Warning: noisy timings.** 1 of 2 runs" in md
        and "load at their start reached 3.5 on 2 CPUs" in md
    )
    assert "| 1x500 | 100 | 40000 ⚠ | 2000 | 20.00 ⚠ |" in md

    # Results from before the floor
    old = Page([_speed_record("torch", 2600, 2500, 2700, floor=None)], tmp_path)
    md = "\n".join(speed.section(old))
    assert "| 1x500 | 100 | 2600 | - | - | - | - | - |" in md and "No GEMM floor" in md


def test_a_single_run_report_speaks_of_one_run(tmp_path):
    from comparison.report import write_report

    def record(backend):
        return {
            "backend": backend,
            "config": Config(epochs=3).to_dict(),
            "status": "ok",
            "error": None,
            "epochs": [
                {"epoch": k, "train_loss": 0.3, "test_loss": 0.2, "test_accuracy": 0.9 + k / 100}
                for k in (1, 2, 3)
            ],
            "loss_curve": [2.3, 0.5, 0.3],
            "loss_curve_every": 1,
            "steps": 1800,
            "step_time_us": 2500.0,
            "warmup_s": 0.1,
            "device": "cpu",
            "versions": {},
            "dataset": {"name": "mnist"},
        }

    report = write_report([record("torch"), record("jax")], tmp_path).read_text()
    assert "1 configuration, 2 runs (torch, jax;" in report and "1 configurations" not in report
    assert "best / median" not in report and "median over runs" not in report
    assert "| torch | 0.001 | 1 | 93.00 |" in report  # epoch 3's accuracy, one value
    assert "Best configurations" not in report  # nothing to rank
    assert "| torch | 90% | 1/1 | 1 | 600 |" in report and "median epochs" not in report
    assert "float32 rounding, amplified" in report and "large learning rates" not in report


def test_a_floor_slower_than_the_step_is_called_out(tmp_path):
    from comparison.report import speed
    from comparison.report.common import Page

    page = Page([_speed_record("torch", 2600, 2500, 2700, floor=90000.0)], tmp_path)
    md = "\n".join(speed.section(page))
    assert "the GEMM floor is not a floor here" in md and "1x500 b100" in md


def test_the_report_does_not_depend_on_which_backend_finished_first(tmp_path):
    # compare.py writes each record as it comes back: a sweep unit's records, then the other
    # backend's, or Ray's tasks as they finish. The report reads the runs in the plan's order.
    from comparison.report import write_report
    from comparison.results import scan_results

    records, bad = scan_results(ROOT / "docs/results/cpu-speed-probe/results.jsonl")
    assert not bad and len(records) > 4
    torch = [r for r in records if r["backend"] == "torch"]
    jax = [r for r in records if r["backend"] == "jax"]
    pages = []
    for name, recs in (
        ("interleaved", records),
        ("torch-first", torch + jax),
        ("jax-first", jax + torch),
    ):
        (tmp_path / name).mkdir()
        pages.append(write_report(recs, tmp_path / name).read_text())
    assert pages[0] == pages[1] == pages[2]
