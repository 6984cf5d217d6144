"""The report with compiled runs (`--set compile=false,true`): Step speed shows torch, torch
compiled, JAX and JAX compiled (impls/*/fast.py) side by side, torch.compile's counts and a warning
on recompiles; the compiled twins stay out of the other sections. On hand-made records with known
numbers, and on committed docs/results/ without any compiled run."""

from __future__ import annotations

import pathlib

import pytest

from comparison.report import brief, convergence, overview, speed, write_report
from comparison.report.common import Page, path_of
from comparison.results import scan_results
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
COUNTS = {"mode": "default", "graphs": 1, "graph_breaks": 0, "recompiles": 0}


def record(backend: str, us: float, compile: bool = False, warmup: float = 0.1, **extra) -> dict:
    """One timed run of 1x500 b100 (GEMM floor 800 µs); `extra` overrides record keys."""
    rec = {
        "backend": backend,
        "engine": "loop",
        "config": Config(epochs=1, compile=compile).to_dict(),
        "status": "ok",
        "error": None,
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": 0.9}],
        "loss_curve": [2.3, 1.0, 0.5],
        "loss_curve_every": 1,
        "steps": 3,
        "step_time_us": us,
        "step_time_spread": {"p10": us * 0.95, "p50": us, "p90": us * 1.05, "windows": 11},
        "warmup_s": warmup,
        "compiled": dict(COUNTS) if backend == "torch" and compile else None,
        "gemm_floor_us": 800.0,
        "device": "cpu",
        "versions": {},
        "dataset": {"name": "mnist"},
    }
    return {**rec, **extra}


def both_paths() -> list[dict]:
    """What `--set compile=false,true` writes: each twin's lesson step and its fast step."""
    return [
        record("torch", 2600),
        record("jax", 2000, warmup=0.5),
        record("torch", 2400, compile=True, warmup=30.0),
        record("jax", 2222, compile=True, warmup=0.6),
    ]


def test_path_of_labels_compiled_runs():
    assert [path_of(r) for r in both_paths()] == ["torch", "jax", "torch compiled", "jax compiled"]
    # JAX's sweep engine runs one lax.scan whatever compile says; torch's compiles its step.
    sweeps = [record(b, 100, compile=True, engine="sweep") for b in ("torch", "jax")]
    assert [path_of(r) for r in sweeps] == ["torch compiled", "jax"]


def test_speed_section_shows_each_path_with_its_ratios_and_compile_time(tmp_path):
    md = "\n".join(speed.section(Page(both_paths(), tmp_path)))
    assert "| layers x hidden | batch | path | µs/step | / JAX | GEMM floor µs | / floor |" in md
    # JAX's compile=false run (2000 µs) is the one both torch paths are set against
    assert "| 1x500 | 100 | torch | 2600 | 1.30 | 800 | 3.2 | 38,462 | 0.100 |" in md
    assert "| 1x500 | 100 | torch compiled | 2400 | 1.20 | 800 | 3.0 | 41,667 | 30.000 |" in md
    assert "| 1x500 | 100 | jax | 2000 | - | 800 | 2.5 | 50,000 | 0.500 |" in md
    assert "| 1x500 | 100 | jax compiled | 2222 | 1.11 | 800 | 2.8 | 45,005 | 0.600 |" in md
    assert "| 1x500 | 100 | jax | 1 |" in md and "| 1x500 | 100 | jax compiled | 1 |" in md
    assert "torch 0.100, torch compiled 30.000, jax 0.500, jax compiled 0.600." in md
    assert (
        "torch.compile, 1 compiled run (mode default), the most in any run: 1 graph, "
        "0 graph breaks, 0 recompiles." in md
    )
    assert "recompiled" not in md and "⚠" not in md


def test_recompiles_are_warned_about(tmp_path):
    recs = both_paths()
    recs[2]["compiled"] = {**COUNTS, "recompiles": 2, "graph_breaks": 1}
    md = "\n".join(speed.section(Page(recs, tmp_path)))
    assert "1 graph break, 2 recompiles." in md
    assert "**Warning: torch.compile recompiled.** 1 of 1 compiled runs" in md
    assert "1x500 relu logits b100 lr0.001" in md


def test_graphs_left_without_cuda_graphs_are_warned_about(tmp_path):
    recs = both_paths()
    md = "\n".join(speed.section(Page(recs, tmp_path)))
    assert "CUDA graphs skipped" not in md
    recs[2]["compiled"] = {**COUNTS, "mode": "reduce-overhead", "cudagraph_skips": 1}
    md = "\n".join(speed.section(Page(recs, tmp_path)))
    assert "**Warning: CUDA graphs skipped.** 1 of 1 compiled runs ran a graph without" in md
    assert "(1x500 relu logits b100 lr0.001)" in md


def test_compiled_twins_stay_out_of_the_other_sections(tmp_path):
    page = Page(both_paths(), tmp_path)
    assert [path_of(r) for r in page.records] == ["torch", "jax"]
    assert len(page.pairs) == 1 and len(page.set_aside) == 2
    what = overview.what_ran(page) + overview.compiled_note(page)
    assert "1 configuration, 2 runs (torch, jax;" in what
    assert "1 torch compiled run (config compile true)" in what
    assert "1 JAX compiled run (config compile true) is shown in Step speed only" in what
    line = brief.speed_line(page)
    assert "torch / JAX" in line and "1.30" in line
    assert line.endswith(" torch compiled / JAX: median 1.20 over 1 configuration.")


def test_compiled_torch_alone_pairs_with_jax_of_its_key(tmp_path):
    """`--set compile=true` alone: nothing is left out, torch compiled pairs with JAX's run of the
    same key, and a compiled run that failed is labelled as such."""
    recs = [record("torch", 2400, compile=True), record("jax", 2000, compile=True)]
    page = Page(recs, tmp_path)
    assert len(page.records) == 2 and not page.set_aside
    assert overview.compiled_note(page) == ""
    softmax = Config(epochs=1, compile=True, output="softmax").to_dict()
    grid = Page(recs + [record("torch", 2400, compile=True, config=softmax)], tmp_path)
    assert "compile true (each twin's fast step: impls/*/fast.py)" in overview.what_ran(grid)
    assert brief.speed_line(page).startswith("**Step time**, torch compiled / JAX compiled")
    md = "\n".join(speed.section(page))
    assert "| 1x500 | 100 | torch compiled | 2400 | 1.20 | 800 | 3.0 |" in md
    failed = record("torch", 0, compile=True, status="error", error="boom", epochs=[])
    md = "\n".join(convergence.section(Page([failed, recs[1]], tmp_path)))
    assert "| torch compiled | error |" in md


def test_a_file_without_compiled_runs_keeps_the_eager_table(tmp_path):
    md = "\n".join(speed.section(Page(both_paths()[:2], tmp_path)))
    assert "| 1x500 | 100 | 2600 | 2000 | 1.30 | 800 | 3.2 | 2.5 |" in md
    assert "| path |" not in md and "torch.compile" not in md
    assert "torch 0.100, jax 0.500." in md


@pytest.mark.parametrize("name", ["cpu-baseline", "cpu-floor-busy", "h100-smoke"])
def test_committed_reports_regenerate_byte_identical(name, tmp_path):
    """The committed reports hold no compiled run: their report.md is what the code writes now."""
    folder = ROOT / "docs" / "results" / name
    records, _ = scan_results(folder / "results.jsonl")
    written = write_report(records, tmp_path).read_bytes()
    assert written == (folder / "report.md").read_bytes()
