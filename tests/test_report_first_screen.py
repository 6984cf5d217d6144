"""The report's first screen (what ran, the answer in brief), the did-not-learn counts and the
per-learning-rate agreement: on hand-made records with known numbers, and on the committed
docs/results/cpu-grid."""

from __future__ import annotations

import pathlib
import re
from statistics import mean, median

import pytest

from comparison.report import agreement, brief, convergence, overview, write_report
from comparison.report.common import Page, final_acc, pairs_of, points
from comparison.results import scan_results
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRID = ROOT / "docs" / "results" / "cpu-grid" / "results.jsonl"


def record(backend, acc, us=1000.0, curve=(2.3, 1.0, 0.5), status="ok", **fields):
    return {
        "backend": backend,
        "engine": "loop",
        "config": Config(epochs=1, **fields).to_dict(),
        "status": status,
        "error": None,
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": acc}],
        "loss_curve": list(curve),
        "loss_curve_every": 1,
        "steps": len(curve),
        "step_time_us": us,
        "warmup_s": 0.1,
        "device": "cpu",
        "versions": {"python": "3.11.7", backend: "1.0"},
        "dataset": {"name": "mnist"},
    }


def synthetic() -> list[dict]:
    """Three configurations both backends learned (lr 1e-3, 1e-2, 1e-4), one at lr 1 that JAX did
    not learn and that blew up, one softmax at lr 1e-2 neither learned."""
    return [
        record("torch", 0.97, us=3000, learning_rate=1e-3),
        record("jax", 0.96, us=2000, learning_rate=1e-3),
        record("torch", 0.95, us=3000, learning_rate=1e-2),
        record("jax", 0.95, us=1500, learning_rate=1e-2),
        record("torch", 0.90, us=1000, curve=(2.3, 1.01, 0.6), learning_rate=1e-4),
        record("jax", 0.92, us=1000, curve=(2.3, 1.0, 0.6), learning_rate=1e-4),
        record("torch", 0.50, curve=(2.3, 5e9, 2.0), learning_rate=1.0),
        record("jax", 0.10, curve=(2.3, 1e9, 2.3), learning_rate=1.0),
        record("torch", 0.098, learning_rate=1e-2, output="softmax"),
        record("jax", 0.1135, learning_rate=1e-2, output="softmax"),
    ]


def test_first_screen_says_what_ran_and_the_answer_before_any_table(tmp_path):
    page = Page(synthetic(), tmp_path)
    head = "\n".join(overview.section(page) + brief.section(page))
    assert "5 configurations, 10 runs (torch, jax;" in head
    assert "output logits / softmax × learning_rate 1 / 0.01 / 0.001 / 0.0001 (5 of the 8" in head
    assert "Device: cpu (both backends)" in head and "torch 1.0, jax 1.0, python 3.11.7" in head
    assert "|" not in head.replace("|gap|", "")  # no table on the first screen
    # Learned by both: lr 1e-3, 1e-2, 1e-4. torch 97 / 95 / 90, JAX 96 / 95 / 92.
    assert (
        "over the 3 configurations where both backends learned (final test accuracy at least "
        "20 %): torch median 95.00 %, mean 94.00 %, best 97.00 %; JAX median 95.00 %, mean "
        "94.33 %, best 96.00 %; torch − JAX per configuration: median +0.00, mean -0.33, largest "
        "|gap| 2.00 points." in head
    )
    # torch / JAX per configuration: 1.5, 2, 1, 1, 1 (lr 1 and softmax runs are timed too).
    assert "median 1.00 over 5 configurations (range 1.00–2.00), as fast." in head
    assert (
        "**Did not learn** (finished, final test accuracy below 20 %): 3 of 10 runs (torch 1, "
        "JAX 2): lr 1 logits 1, lr 0.01 softmax 2 (see Convergence). Diverged (a loss went NaN or "
        "infinite): 0; failed (an error): 0." in head
    )


def test_one_configuration_gives_its_values_not_medians(tmp_path):
    page = Page([record("torch", 0.9786, us=2600), record("jax", 0.9788, us=2000)], tmp_path)
    lines = brief.section(page)
    assert (
        "- **Final test accuracy**: torch 97.86 %, JAX 97.88 % (torch − JAX -0.02 points)." in lines
    )
    assert any("steady state" in line and ": 1.30, JAX faster." in line for line in lines)
    assert any(line.startswith("- **Every run learned**") for line in lines)
    what = overview.what_ran(page)
    assert "1 configuration, 2 runs" in what and Config(epochs=1).describe() in what


def test_did_not_learn_is_counted_per_learning_rate_and_output(tmp_path):
    records = synthetic() + [
        record(b, 0.1, learning_rate=1.0, hidden_size=h, output="softmax")
        for h in (10, 20, 30, 40, 50)
        for b in ("torch", "jax")
    ]
    counts = convergence.stuck_counts(records)
    assert list(counts) == [(1.0, "logits"), (1.0, "softmax"), (1e-2, "softmax")]
    assert counts[(1.0, "logits")] == {"torch": [0, 1], "jax": [1, 1]}
    assert counts[(1.0, "softmax")] == {"torch": [5, 5], "jax": [5, 5]}
    md = "\n".join(convergence.section(Page(records, tmp_path)))
    assert "13 runs finished with finite losses but did not learn" in md
    assert (
        "| 1 | softmax | 5 of 5 | 5 of 5 |" in md and "| 0.01 | softmax | 1 of 1 | 1 of 1 |" in md
    )
    examples = md[md.index("3 examples:") :].splitlines()
    assert len([line for line in examples if line.startswith("| 1x")]) == 3  # one per row above
    assert "| 1x500 relu logits b100 lr1 | 50.00 | 10.00 | 0.300 | 0.300 |" in examples
    assert "1x40 " not in md  # the other softmax runs at lr 1 are counted, not listed


def test_agreement_is_per_learning_rate_and_leaves_out_runs_that_blew_up(tmp_path):
    md = "\n".join(agreement.section(Page(synthetic(), tmp_path)))
    assert "| float32 | 1 | 0 | - | - | 1 | 0 |" in md  # JAX did not learn at lr 1
    assert "| float32 | 0.01 | 1 | 0 | 0 | 1 | 0 |" in md  # the softmax pair is left out
    assert "| float32 | 0.0001 | 1 | 0.01 | 0.01 | 0 | 0 |" in md
    assert "(up to 4e+09)" in md  # the left-out lr 1 pair, named but not in the table
    recs = synthetic()
    recs[7]["epochs"][0]["test_accuracy"] = 0.9  # JAX learns at lr 1: both learned, both blew up
    md = "\n".join(agreement.section(Page(recs, tmp_path)))
    assert "| float32 | 1 | 0 | - | - | 0 | 1 |" in md
    assert agreement.blew_up(recs[6]) and not agreement.blew_up(recs[0])


def test_accuracy_shows_the_digits_a_record_holds(tmp_path):
    """float64 runs recorded accuracy as float32 before (8994/10000 as 0.899399995803833); read
    back, both kinds of record are the same number and print the same."""
    old = record("torch", 0.899399995803833, dtype="float64")
    new = record("jax", 0.8994, dtype="float64")
    assert final_acc(old) == final_acc(new) == 0.8994
    # a float32 90 % (0.8999999761581421) reaches the 90 % threshold
    assert convergence.first_reach(record("torch", 0.8999999761581421), 0.90) == (1, 600)
    # A tie at the printed precision rounds up, whichever side of it the stored float32 fell:
    # 9235 / 10000 is 0.92350000143 in float32, 9675 / 10000 is 0.96749997139.
    assert points(final_acc(record("jax", 0.9235000014305115)), 1) == "92.4"
    assert points(final_acc(record("jax", 0.9674999713897705)), 1) == "96.8"
    assert points(final_acc(record("jax", 0.9674999713897705))) == "96.75"
    report = write_report([old, new], tmp_path).read_text()
    assert "torch 89.94 %, JAX 89.94 % (torch − JAX +0.00 points)" in report
    assert "0.8993" not in report and "89.939" not in report


@pytest.mark.skipif(not GRID.exists(), reason="docs/results/cpu-grid not committed")
def test_first_screen_of_the_committed_grid(tmp_path):
    records, bad = scan_results(GRID)
    assert bad == []
    page = Page(records, tmp_path)
    lines = overview.section(page) + brief.section(page)
    text = "\n".join(lines)
    assert "432 configurations, 864 runs (torch, jax;" in text
    assert "(all combinations)" in text and "sweep engine" in text and "Device: cpu" in text
    both = [
        recs
        for recs in pairs_of(records).values()
        if all(r["status"] == "ok" and final_acc(r) >= 0.2 for r in recs.values())
    ]
    torch = [final_acc(recs["torch"]) for recs in both]
    m = re.search(
        r"over the (\d+) configurations where both backends learned \(.*?\): torch median "
        r"([\d.]+) %, mean ([\d.]+) %",
        text,
    )
    assert m and int(m.group(1)) == len(both)
    assert float(m.group(2)) == pytest.approx(100 * median(torch), abs=0.006)
    assert float(m.group(3)) == pytest.approx(100 * mean(torch), abs=0.006)
    ratios = [recs["torch"]["step_time_us"] / recs["jax"]["step_time_us"] for recs in both]
    m = re.search(r"torch / JAX, steady state .*: median ([\d.]+) over 432 configurations", text)
    assert m and 1 < float(m.group(1)) < 3 and min(ratios) > 1  # JAX faster on this CPU
    stuck = sum(r["status"] == "ok" and final_acc(r) < 0.2 for r in records)
    assert f"**Did not learn** (finished, final test accuracy below 20 %): {stuck} of 864" in text
    assert len(lines) <= 12  # one screen: title, what ran, where, three answers
