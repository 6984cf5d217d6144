"""What every report section uses: the records grouped by configuration, small accessors, table and
number formatting, and matplotlib set up for files (no display)."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from comparison.results import config_of, varying
from shared.config import FIELD_NAMES, Config

BACKENDS = ("torch", "jax")
COLORS = {"torch": "#ee4c2c", "jax": "#1a73e8"}  # PyTorch orange-red, JAX blue
NAMES = {"torch": "torch", "jax": "JAX"}  # as sentences write them (tables keep the record's)
STYLES = {"torch": "-", "jax": "--"}  # line styles, so that the curves part in grey print too
# A backend's paths, as the report labels them: each twin's lesson step, and its compiled fast
# step (Config.compile: impls/*/fast.py, torch.compile / a jax.jit of a pure step).
PATHS = ("torch", "torch compiled", "jax", "jax compiled")
# A run that finished with a final test accuracy under this "did not learn": twice the 10 % of
# guessing among ten classes.
DID_NOT_LEARN_BELOW = 0.20


def pairs_of(records: list[dict]) -> dict[str, dict[str, dict]]:
    """config key -> {backend: record}; the last record of a (config, backend) wins."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        out[config_of(r).key()][r["backend"]] = r
    return out


def path_of(rec: dict) -> str:
    """The path a record ran: its backend ("torch", "jax"), + " compiled" with config compile
    true; but JAX's sweep engine runs one lax.scan either way (impls/flax_mlp/sweep.py)."""
    jax_sweep = rec["backend"] == "jax" and rec.get("engine") == "sweep"
    compiled = rec["config"].get("compile", False) and not jax_sweep
    return rec["backend"] + (" compiled" if compiled else "")


def eager_key(rec: dict) -> str:
    """The key of a record's configuration with compile false: what its eager twin runs."""
    return dataclasses.replace(config_of(rec), compile=False).key()


def _split_compiled(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(`records` less the runs with config compile true whose compile-false twin (same backend)
    is there too, those runs), in the records' order: a compiled run is another path of the same
    computation (tests/test_compiled.py), shown in Step speed only."""
    eager = {(r["backend"], config_of(r).key()) for r in records if not config_of(r).compile}
    kept: list[dict] = []
    aside: list[dict] = []
    for r in records:
        twinned = config_of(r).compile and (r["backend"], eager_key(r)) in eager
        (aside if twinned else kept).append(r)
    return kept, aside


@dataclass
class Page:
    """What a section reads (the records, grouped) and where it writes its figures.

    `timed`: every record, for Step speed, which shows each path; `records` (and `pairs`): `timed`
    less the compiled runs that have an eager twin (`set_aside`), for every other section."""

    records: list[dict]
    out: pathlib.Path
    pairs: dict[str, dict[str, dict]] = field(init=False)
    backends: list[str] = field(init=False)  # those present, torch first
    timed: list[dict] = field(init=False)
    set_aside: list[dict] = field(init=False)
    figures: dict = field(init=False)  # file name -> the matplotlib Figure written there
    # An explanation given once per page: its name -> the section that gives it, for the others
    # to point to.
    explained: dict = field(init=False)

    def __post_init__(self) -> None:
        self.figures, self.explained = {}, {}
        self.records = plan_order(self.records)
        self.timed = self.records
        self.records, self.set_aside = _split_compiled(self.timed)
        self.pairs = pairs_of(self.records)
        self.backends = [b for b in BACKENDS if any(r["backend"] == b for r in self.records)]

    def save(self, fig, name: str, dpi: int, tight: bool = True) -> str:
        """Write `fig` as OUT/`name`, keep it in `figures`; returns `name` for the page's link."""
        self.figures[name] = save(fig, self.out / name, dpi, tight)
        return name

    @property
    def oks(self) -> list[dict]:
        return [r for r in self.records if ok(r)]


def plan_order(records: list[dict]) -> list[dict]:
    """The records as the plan runs them, configs in the order they first appear, each config's
    backends torch first, however they were written (as each unit or Ray task finished)."""
    first: dict[str, int] = {}
    for r in records:
        first.setdefault(json.dumps(r["config"], sort_keys=True), len(first))
    rank = {b: i for i, b in enumerate(BACKENDS)}
    return sorted(
        records,
        key=lambda r: (
            first[json.dumps(r["config"], sort_keys=True)],
            rank.get(r["backend"], len(rank)),
        ),
    )


def first_cfg(recs: dict[str, dict]) -> Config:
    """The config of a {backend: record} pair (both backends share it)."""
    return config_of(next(iter(recs.values())))


def ok(rec: dict | None) -> bool:
    return rec is not None and rec["status"] == "ok" and bool(rec["epochs"])


def learned(rec: dict | None) -> bool:
    """Finished normally with a final test accuracy of at least DID_NOT_LEARN_BELOW."""
    return ok(rec) and final_acc(rec) >= DID_NOT_LEARN_BELOW


def accuracy(epoch: dict) -> float:
    """An epoch's test accuracy to the 7 significant digits a float32 holds. Records of float64 runs
    written before the twins stored accuracy in float64 hold float32 values (8994/10000 as
    0.899399995803833), newer ones 0.8994: both read 0.8994 here, so the report never shows digits
    a record does not hold. An accuracy is a count over the test set (10,000 images, steps of
    1e-4), so the rounding loses nothing."""
    return float(f"{epoch['test_accuracy']:.7g}")


def final_acc(rec: dict) -> float:
    return accuracy(rec["epochs"][-1])


def acc_at(rec: dict, epoch: int) -> float | None:
    for e in rec["epochs"]:
        if e["epoch"] == epoch:
            return accuracy(e)
    return None


def curve(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(step numbers, training losses) of a record's stored loss curve; None (non-finite) -> NaN."""
    every = rec.get("loss_curve_every", 1) or 1
    y = np.array([np.nan if v is None else v for v in rec["loss_curve"]], dtype=float)
    return np.arange(1, len(y) + 1) * every, y


def smooth(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def arch(cfg: Config) -> str:
    return f"{cfg.hidden_layers}x{cfg.hidden_size}"


def arch_order(a: str) -> tuple[int, ...]:
    """Sort key of an arch() string: layers, then hidden size, as numbers."""
    return tuple(map(int, a.split("x")))


# How a panel names a field's value: "lr 0.01", "batch 100", "seed 3"; words as they are.
_SHORT = {"learning_rate": "lr", "batch_size": "batch", "hidden_size": "hidden", "epochs": "epochs"}


def field_text(cfg: Config, name: str) -> str:
    """One field of `cfg` as a panel or a legend names it: "lr 0.01", "batch 100", "relu",
    "float64", "seed 3", "compile true"."""
    v = getattr(cfg, name)
    if name == "learning_rate":
        return f"lr {v:g}"
    if isinstance(v, bool):
        return f"{name} {str(v).lower()}"
    if name == "output":
        return f"{v} output"
    if isinstance(v, str) and name != "init":
        return v
    return f"{_SHORT.get(name, name.replace('_', ' '))} {v}"


def label(cfg: Config, names: list[str]) -> str:
    """`cfg`'s values of the fields `names`, an architecture as "2x500": a panel's title."""
    parts = []
    if "hidden_layers" in names or "hidden_size" in names:
        parts.append(arch(cfg))
    parts += [field_text(cfg, n) for n in names if n not in ("hidden_layers", "hidden_size")]
    return ", ".join(parts)


def shared_label(everything: list[Config], shown: list[Config]) -> str:
    """What the panels `shown` share of the brief fields and the fields that vary in `everything`
    ("1x500, relu, logits output"): a figure's title says it, so that a panel's title names only
    what differs."""
    vary = varying(shown)
    named = [n for n in FIELD_NAMES if n in _BRIEF or n in varying(everything)]
    return label(shown[0], [n for n in named if n not in vary]) if shown else ""


# What a figure's title always names of a configuration, varied or not (as Config.describe(brief))
_BRIEF = ("hidden_layers", "hidden_size", "activation", "output", "batch_size", "learning_rate")


def integer_ticks(axis) -> None:
    """Whole numbers only on `axis` (epochs: there is no epoch 1.5), even over a range of one."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    lo, hi = axis.get_view_interval()
    if hi - lo < 1:  # a single epoch: half an epoch either side, so that its tick shows
        middle = round((lo + hi) / 2)
        axis.set_view_interval(middle - 0.5, middle + 0.5, ignore=True)


def backend_legend(fig, backends=BACKENDS) -> None:
    """One legend under a figure (constrained layout) whose panels all draw torch and JAX alike."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLORS[b], ls=STYLES[b], lw=1.6) for b in backends]
    labels = [NAMES[b] for b in backends]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=9)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def points(x: float, decimals: int = 2, sign: bool = False) -> str:
    """100 x with `decimals` decimals, rounded half up on x's decimal value: 0.9235 is 92.4 (and
    92.35 at two decimals), whether the record stored it as a float32 just above or just below."""
    q = (Decimal(repr(float(x))) * 100).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
    return f"{q:+}" if sign else f"{q}"


def pct(x: float | None) -> str:
    """An accuracy in % with two decimals: one image of MNIST's 10,000 is 0.01 points."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else points(x)


def plt():
    """matplotlib.pyplot on the file-only Agg backend (reports are built on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def save(fig, path: pathlib.Path, dpi: int, tight: bool = True):
    """Write `fig` to `path` and let pyplot forget it; the Figure is returned, still readable (its
    axes, titles and legends), for Page.figures and the tests that look at them."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt().close(fig)
    return fig
