"""The report's figures, read as a reader reads them: every panel's title names what varies across
the panels, no two panels that show different things share a title, the heatmaps hold every
configuration of the results, torch and JAX keep their colours, epochs are whole numbers."""

from __future__ import annotations

import itertools
import pathlib

import numpy as np
import pytest

from comparison.report import SECTIONS, accuracy, loss
from comparison.report.common import COLORS, Page, first_cfg, pairs_of, varying
from comparison.results import config_of, scan_results
from shared.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEATMAPS = ("accuracy_heatmap_torch.png", "accuracy_heatmap_jax.png", "accuracy_heatmap_diff.png")


def record(backend: str, cfg: Config, acc: float, blow_up: bool = False) -> dict:
    """A finished run of `cfg`: a loss curve of 100 points (one that runs to 800 if `blow_up`),
    one accuracy per epoch ending at `acc`."""
    loss_curve = list(np.linspace(2.3, 0.3, 100))
    if blow_up:
        loss_curve[3:8] = [800.0] * 5
    return {
        "backend": backend,
        "config": cfg.to_dict(),
        "status": "ok",
        "error": None,
        "epochs": [
            {"epoch": k, "train_loss": 0.3, "test_loss": 0.3, "test_accuracy": acc - (3 - k) / 100}
            for k in (1, 2, 3)
        ],
        "loss_curve": loss_curve,
        "loss_curve_every": cfg.epochs * cfg.steps_per_epoch // 100,
        "steps": cfg.epochs * cfg.steps_per_epoch,
        "step_time_us": 2500.0 if backend == "torch" else 2000.0,
        "warmup_s": 0.1,
        "device": "cpu",
        "versions": {},
        "dataset": {"name": "mnist"},
    }


def grid_records() -> list[dict]:
    """32 configurations (2 learning rates x 2 activations x 2 outputs x 2 batch sizes x 2 hidden
    sizes), both backends, JAX a little ahead at lr 1 (where the loss runs away)."""
    out = []
    for lr, act, outp, bs, h in itertools.product(
        (1.0, 1e-3), ("relu", "leaky_relu"), ("logits", "softmax"), (100, 600), (400, 500)
    ):
        cfg = Config(
            hidden_size=h, activation=act, output=outp, batch_size=bs, learning_rate=lr, epochs=3
        )
        acc = 0.97 - (0.5 if lr == 1.0 else 0) - (0.1 if outp == "softmax" else 0)
        out.append(record("torch", cfg, acc, blow_up=lr == 1.0))
        out.append(record("jax", cfg, acc + (0.002 if lr == 1.0 else 0), blow_up=lr == 1.0))
    return out


def build(records: list[dict], out: pathlib.Path) -> Page:
    page = Page(records, out)
    for section in SECTIONS:
        section(page)
    return page


def panels(fig) -> list:
    """The axes of a figure that show data (a colorbar's axes and blank slots are not panels)."""
    return [ax for ax in fig.axes if ax.get_gid() and ax.axison]


def check_titles(name: str, fig, configs_of_panel) -> None:
    """Panels that show different things have different titles, and each title names the value
    of every field that varies across the panels (configs_of_panel: panel -> its configs)."""
    shown = {ax: configs_of_panel(ax) for ax in panels(fig)}
    titles = [ax.get_title() for ax in shown]
    assert len(set(titles)) == len(titles), (name, titles)
    everything = [c for cfgs in shown.values() for c in cfgs]
    vary = varying(everything) if len(shown) > 1 else []
    for ax, cfgs in shown.items():
        fixed = [n for n in vary if len({getattr(c, n) for c in cfgs}) == 1]
        for n in fixed:
            assert _spelled(cfgs[0], n) in ax.get_title(), (name, n, ax.get_title())


def _spelled(cfg: Config, name: str) -> str:
    """How a title must show a field's value, written out here apart from the report's code."""
    v = getattr(cfg, name)
    if name == "learning_rate":
        return f"lr {v:g}"
    if name == "batch_size":
        return f"batch {v}"
    if name in ("hidden_size", "hidden_layers"):
        return f"{cfg.hidden_layers}x{cfg.hidden_size}"
    return str(v)


def check_figure(name: str, fig, cfgs_by_key: dict[str, Config]) -> None:
    if name in HEATMAPS:
        keys = {t.get_gid() for ax in fig.axes for t in ax.texts if t.get_gid()}
        assert keys == set(cfgs_by_key), (name, len(keys), len(cfgs_by_key))

        def of_panel(ax):
            return [cfgs_by_key[t.get_gid()] for t in ax.texts if t.get_gid()]

    elif name == "step_time.png":
        return check_step_time(fig)
    elif name in ("loss_reference.png", "seed_spread.png"):
        return  # one configuration, or one axis of named configurations: no panels to tell apart
    else:

        def of_panel(ax):
            return [cfgs_by_key[ax.get_gid()]]

    check_titles(name, fig, of_panel)


def check_step_time(fig) -> None:
    titles = [ax.get_title() for ax in panels(fig)]
    assert len(set(titles)) == len(titles) and all("x" in t for t in titles), titles
    for ax in panels(fig):
        assert {line.get_color() for line in ax.lines} <= set(COLORS.values())


def check_look(name: str, fig) -> None:
    """torch red and JAX blue wherever a line stands for a backend; epochs in whole numbers."""
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        for text, handle in zip(legend.get_texts(), legend.legend_handles):
            backend = {"torch": "torch", "JAX": "jax"}.get(text.get_text().split(" ")[0])
            if backend and hasattr(handle, "get_color"):
                assert handle.get_color() == COLORS[backend], (name, text.get_text())
    for ax in fig.axes:
        if ax.get_xlabel() == "epoch":
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert all(float(t).is_integer() for t in ticks), (name, ticks)


def test_a_grid_report_names_what_varies_in_every_panel(tmp_path):
    records = grid_records()
    page = build(records, tmp_path)
    cfgs = {first_cfg(recs).key(): first_cfg(recs) for recs in page.pairs.values()}
    assert set(page.figures) >= {"loss_grid.png", "accuracy_epochs.png", *HEATMAPS}
    for name, fig in page.figures.items():
        check_figure(name, fig, cfgs)
        check_look(name, fig)
        assert (tmp_path / name).stat().st_size > 10_000
    # lr 1's losses ran to 800: those panels are on a symlog axis, and the figure says so
    grid = page.figures["loss_grid.png"]
    runaway = [ax for ax in panels(grid) if "lr 1," in ax.get_title() + ","]
    assert runaway and all(ax.get_yscale() == "symlog" for ax in runaway)
    assert "symlog" in grid._suptitle.get_text()
    # torch − JAX: red above 0 for torch, blue for JAX, centred on 0
    diff = page.figures["accuracy_heatmap_diff.png"]
    for ax in panels(diff):
        image = ax.images[0]
        assert image.norm.vmin == -image.norm.vmax and image.get_cmap().name.startswith("RdBu_r")


def test_best_of_compares_one_configuration_in_both_backends(tmp_path):
    records = grid_records()
    for r in records:  # torch's best at lr 1e-3 is one configuration, JAX's another
        c = config_of(r)
        if c.learning_rate == 1e-3 and c.output == "logits" and c.activation == "relu":
            bump = (r["backend"] == "torch") == (c.hidden_size == 400 and c.batch_size == 100)
            r["epochs"][-1]["test_accuracy"] += 0.01 if bump else 0
    page = build(records, tmp_path)
    chosen = accuracy.best_per_lr(page.pairs)
    assert all(set(recs) == {"torch", "jax"} for recs in chosen)
    fig = page.figures["accuracy_epochs.png"]
    for ax in panels(fig):
        assert {line.get_color() for line in ax.lines} == set(COLORS.values())


def test_a_smoke_report_titles_each_panel_by_its_output(tmp_path):
    """--config smoke: two configurations that differ only in output; neither panel may carry the
    other's title."""
    records = []
    for output in ("logits", "softmax"):
        cfg = Config(hidden_size=64, batch_size=600, epochs=3, output=output)
        records += [record("torch", cfg, 0.9), record("jax", cfg, 0.9)]
    page = build(records, tmp_path)
    titles = sorted(ax.get_title() for ax in panels(page.figures["loss_grid.png"]))
    assert titles == ["logits output", "softmax output"]
    for name, fig in page.figures.items():
        check_look(name, fig)


def test_the_grid_slice_of_the_loss_figure_is_chosen_and_said():
    pairs = pairs_of(grid_records())
    ref = loss.reference(pairs)
    fig, note = loss.fig_loss_grid(pairs, ref)
    shown = [first_cfg(pairs[ax.get_gid()]) for ax in panels(fig)]
    # All 32 fit no 12 panels: the reference's architecture, activation and output, over every
    # learning rate and batch size
    assert len(shown) == 4 and varying(shown) == ["batch_size", "learning_rate"]
    assert {(c.hidden_size, c.activation, c.output) for c in shown} == {(500, "relu", "logits")}
    assert "4 of the 32 configurations, a slice chosen on purpose" in note
    assert "1x500, relu, logits output" in fig._suptitle.get_text()


@pytest.mark.parametrize("name", ["cpu-grid", "cpu-grid-reduced"])
def test_the_committed_grid_heatmaps_hold_every_configuration(name):
    records, _ = scan_results(ROOT / "docs" / "results" / name / "results.jsonl")
    pairs = Page(records, ROOT).pairs
    fc = accuracy.facets(pairs)
    fig = accuracy.fig_acc_heatmaps(fc, "diff")
    keys = {t.get_gid() for ax in fig.axes for t in ax.texts if t.get_gid()}
    assert keys == set(pairs) and len(keys) == {"cpu-grid": 432, "cpu-grid-reduced": 232}[name]
    titles = [ax.get_title() for ax in panels(fig)]
    assert len(titles) == len(set(titles)) == 16
    fig.clf()
