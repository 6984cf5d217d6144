"""The page's head, the first part of its first screen: what ran (the configurations, the
backends and the engine that trained them) and where (devices, library versions)."""

from __future__ import annotations

from collections import defaultdict

from comparison.progress import plural
from comparison.report.common import BACKENDS, NAMES, Page, first_cfg
from shared.config import FIELD_NAMES, Config

# Versions as a reader looks for them: each backend's libraries, then what both use.
VERSION_ORDER = ("torch", "torchvision", "jax", "jaxlib", "flax", "optax", "python", "numpy")

ENGINES = {
    "loop": "the loop engine (impls/*/train.py: one run at a time)",
    "sweep": (
        "the sweep engine (impls/*/sweep.py: the configurations that differ only in learning "
        "rate, activation and output train at once, as one batched model)"
    ),
}


def section(page: Page) -> list[str]:
    return [
        "# mlp-twins: PyTorch vs JAX report",
        "",
        "**What ran.** " + what_ran(page) + compiled_note(page),
        "",
        "**Where.** " + where(page.records),
        "",
    ]


def what_ran(page: Page) -> str:
    """Configurations (a configuration: one network, its training settings and its seed), runs
    (one configuration trained by one backend), the grid they form, and the engine."""
    configs = [first_cfg(recs) for recs in page.pairs.values()]
    head = (
        f"{plural(len(configs), 'configuration')}, {plural(len(page.records), 'run')} "
        f"({', '.join(page.backends)}; a run is one configuration trained by one backend)"
    )
    engines = sorted({r.get("engine", "loop") for r in page.records})
    engine = " Trained by " + " and ".join(ENGINES[e] for e in engines) + "."
    if len(configs) == 1:
        return f"{head}: {configs[0].describe()}.{engine}"
    return f"{head}: {grid_text(configs)}.{engine}"


def compiled_note(page: Page) -> str:
    """What the page did with the runs of `--set compile=false,true`: each backend's compiled runs
    shown in Step speed only; "" when there are none."""
    notes = []
    for backend in BACKENDS:
        aside = [r for r in page.set_aside if r["backend"] == backend]
        if aside:
            one = len(aside) == 1
            notes.append(
                f"{plural(len(aside), NAMES[backend] + ' compiled run')} (config compile true) "
                f"{'is' if one else 'are'} shown in Step speed only: "
                f"{'its eager twin stands for it' if one else 'their eager twins stand for them'} "
                "elsewhere"
            )
    return (" Besides, " + "; ".join(notes) + ".") if notes else ""


def grid_text(configs: list) -> str:
    """The fields that vary as `--set` names them ("hidden_size 400 / 500 × ..."), how many of
    their combinations ran, and the fields every configuration shares."""
    values = {n: sorted({getattr(c, n) for c in configs}, key=_order(n)) for n in FIELD_NAMES}
    varied = [n for n in FIELD_NAMES if len(values[n]) > 1]
    combos = 1
    for n in varied:
        combos *= len(values[n])
    axes = " × ".join(f"{n} {' / '.join(_value(n, v) for v in values[n])}" for n in varied)
    share = ", ".join(
        GLOSS.get((n, values[n][0]), f"{n} {_value(n, values[n][0])}")
        for n in FIELD_NAMES
        if n not in varied and (n, values[n][0]) not in UNSAID
    )
    ran = "all" if len(configs) == combos else f"{len(configs)} of the {combos}"
    return f"{axes} ({ran} combinations); every one with {share}"


def _order(name: str):
    """Values in the order the tables use: learning rates from the largest down, other numbers
    up, words with Config's default (relu, logits, float32) first."""
    default = getattr(Config(), name)
    if name == "learning_rate":
        return lambda v: -v
    if isinstance(default, str):
        return lambda v: (v != default, v)
    return lambda v: v


# Shared values the page does not name: torch's eager path, the default (and all that records
# written before the compile switch ran).
UNSAID = {("compile", False)}

# What a value means, where the name alone does not say it.
GLOSS = {
    ("compile", True): "compile true (each twin's fast step: impls/*/fast.py)",
    ("init", "shared"): "init shared (the same initial weights in both backends)",
    ("init", "native"): "init native (each framework's own initialisation)",
}


def _value(name: str, v) -> str:
    if name == "learning_rate":
        return f"{v:g}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def where(records: list[dict]) -> str:
    """Devices per backend (one line when both share it), the CPU count, the library versions."""
    devices: dict[str, set[str]] = defaultdict(set)
    for r in records:
        devices[r["backend"]].add(r.get("device") or "not recorded")
    names = {d for ds in devices.values() for d in ds}
    if len(names) == 1:
        text = f"Device: {names.pop()} ({'both backends' if len(devices) > 1 else 'its backend'})"
    else:
        text = "Devices: " + "; ".join(f"{b} {', '.join(sorted(d))}" for b, d in devices.items())
    cpus = {r["load_at_start"]["cpus"] for r in records if r.get("load_at_start")}
    if cpus:
        text += f", on a machine with {' / '.join(map(str, sorted(cpus)))} CPUs"
    return text + ". Versions: " + versions_text(records) + "."


def versions_text(records: list[dict]) -> str:
    """ "torch 2.14.1, ..., numpy 2.4.6"; a library found at several versions lists each."""
    found: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for name, v in r.get("versions", {}).items():
            found[name].add(str(v))
    rank = {n: i for i, n in enumerate(VERSION_ORDER)}
    order = sorted(found, key=lambda n: (rank.get(n, len(rank)), n))
    return ", ".join(f"{n} {' / '.join(sorted(found[n]))}" for n in order) or "not recorded"
