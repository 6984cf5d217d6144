"""One config type for every run, presets by name, and grid expansion.

A *run* is one frozen `Config`; a *grid* is a base `Config` plus axes (field -> values), expanded
in a fixed order (axes in field order), so `--list` and the results file agree on what "run 17"
is. The lab report's learning rates are kept literal (docs/configs.md)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import pathlib
from dataclasses import dataclass, fields
from typing import Any

try:  # Python 3.11+ has tomllib; older ones use the tomli backport.
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

DATASETS = ("mnist", "fashion-mnist")
ACTIVATIONS = ("relu", "leaky_relu")
OUTPUTS = ("logits", "softmax")
INITS = ("shared", "native")
DTYPES = ("float32", "float64")
N_TRAIN = 60_000  # both datasets have 60000 training images

# The literal learning rates of the lab report: 10e-1, 10e-3, 10e-5, 10e-7.
GRID_LEARNING_RATES = (10e-1, 10e-3, 10e-5, 10e-7)  # == (1.0, 1e-2, 1e-4, 1e-6)


class ConfigError(ValueError):
    """Bad config input. `str(err)` is one line naming the field, the value and what is allowed."""


@dataclass(frozen=True)
class Config:
    """Everything that defines one training run (both backends read the same fields)."""

    dataset: str = "mnist"
    hidden_size: int = 500  # units per hidden layer
    hidden_layers: int = 1  # number of Linear+activation blocks before the output Linear
    activation: str = "relu"  # relu | leaky_relu (negative slope 0.01 in both frameworks)
    output: str = "logits"  # logits | softmax (softmax = the lab report's double softmax)
    batch_size: int = 100
    learning_rate: float = 1e-3
    epochs: int = 5
    seed: int = 0  # drives the batch order and the shared initial weights
    # shared: identical weights in both backends; native: each framework's default
    init: str = "shared"
    tf32: bool = False  # allow TF32 matmuls on GPU (speed runs only; off = true float32)
    dtype: str = "float32"  # float32 | float64 (float64: whole-run parity of the twins, see tests)
    # torch: the train step under torch.compile (CUDA graphs on a GPU); JAX's is always jitted.
    compile: bool = False

    def __post_init__(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        _check_int("hidden_size", self.hidden_size, 1, 65_536)
        _check_int("hidden_layers", self.hidden_layers, 0, 64)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("output", self.output, OUTPUTS)
        _check_int("batch_size", self.batch_size, 1, N_TRAIN)
        lr = self.learning_rate
        if (
            isinstance(lr, bool)
            or not isinstance(lr, (int, float))
            or not math.isfinite(lr)
            or lr <= 0
        ):
            raise ConfigError(
                f"learning_rate: got {lr!r}; allowed: a finite number > 0 (e.g. 1e-3)"
            )
        object.__setattr__(self, "learning_rate", float(lr))
        _check_int("epochs", self.epochs, 1, 1000)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_choice("init", self.init, INITS)
        if not isinstance(self.tf32, bool):
            raise ConfigError(f"tf32: got {self.tf32!r}; allowed: true or false")
        _check_choice("dtype", self.dtype, DTYPES)
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile: got {self.compile!r}; allowed: true or false")

    @property
    def layer_sizes(self) -> list[int]:
        """[784, hidden, ..., hidden, 10]: in/out features of every Linear layer."""
        return [784] + [self.hidden_size] * self.hidden_layers + [10]

    @property
    def steps_per_epoch(self) -> int:
        # The last partial batch is dropped (see shared/batches.py).
        return N_TRAIN // self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self, brief: bool = False) -> str:
        """The run on one line: every field that makes it, as compare.py's log lines and --list
        show it ("mnist 784-500-10 relu logits batch=100 lr=0.001 epochs=5 seed=0 init=shared");
        `brief`: the fields a grid varies, as the report's tables show them ("1x500 relu logits
        b100 lr0.001")."""
        if brief:
            return (
                f"{self.hidden_layers}x{self.hidden_size} {self.activation} {self.output} "
                f"b{self.batch_size} lr{self.learning_rate:g}"
            )
        extras = (" tf32" if self.tf32 else "") + (" float64" if self.dtype == "float64" else "")
        extras += " compile" if self.compile else ""  # else two runs would print the same line
        return (
            f"{self.dataset} {'-'.join(map(str, self.layer_sizes))} {self.activation} "
            f"{self.output} batch={self.batch_size} lr={self.learning_rate:g} "
            f"epochs={self.epochs} seed={self.seed} init={self.init}{extras}"
        )

    def key(self) -> str:
        """A stable identifier of the run, used to skip finished runs on resume."""
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: got {value!r}; allowed: {' | '.join(allowed)}")


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name}: got {value!r}; allowed: an integer from {lo} to {hi}")


FIELD_NAMES = tuple(f.name for f in fields(Config))
_FIELD_TYPES = {f.name: f.type for f in fields(Config)}


# ---------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """A base config plus axes; `runs()` expands it (the cartesian product, axes in field order)."""

    name: str
    base: Config
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def runs(self) -> list[Config]:
        if not self.axes:
            return [self.base]
        ordered = sorted(self.axes, key=lambda kv: FIELD_NAMES.index(kv[0]))
        names = [n for n, _ in ordered]
        return [
            dataclasses.replace(self.base, **dict(zip(names, combo)))
            for combo in itertools.product(*(vals for _, vals in ordered))
        ]

    def with_overrides(self, overrides: dict[str, tuple[Any, ...]]) -> Grid:
        """Apply `--set` values: one value sets the field everywhere, several make an axis."""
        axes = dict(self.axes)
        base_changes = {}
        for name, values in overrides.items():
            axes.pop(name, None)
            if len(values) == 1:
                base_changes[name] = values[0]
            else:
                axes[name] = tuple(values)
        try:
            base = dataclasses.replace(self.base, **base_changes)
        except TypeError as e:  # pragma: no cover - names are checked in parse_value
            raise ConfigError(str(e)) from None
        grid = Grid(self.name, base, tuple(axes.items()))
        grid.runs()  # validate every combination now, not halfway through a grid
        for name, values in grid.axes:
            # A repeated value (400,400 or 10e-1,1.0) would make two runs with one key, and
            # resume would take the second for done.
            repeated = [v for i, v in enumerate(values) if v in values[:i]]
            if repeated:
                raise ConfigError(
                    f"{name}: value {repeated[0]!r} given twice; allowed: distinct values"
                )
        return grid


PRESETS: dict[str, Grid] = {
    # The tutorial: pytorch-tutorial's feed-forward net, 784-500-10, Adam 1e-3, batch 100, 5 epochs.
    "baseline": Grid("baseline", Config()),
    # The lab report's grid: 3 x 3 x 3 x 4 x 2 x 2 = 432 runs. Every run trains 8 epochs and is
    # evaluated after each one, so the results for 3..8 epochs are the first k epochs of these.
    "grid": Grid(
        "grid",
        Config(epochs=8),
        (
            ("hidden_size", (400, 500, 600)),
            ("hidden_layers", (1, 2, 3)),
            ("batch_size", (100, 300, 600)),
            ("learning_rate", GRID_LEARNING_RATES),
            ("activation", ACTIVATIONS),
            ("output", OUTPUTS),
        ),
    ),
    # A few seconds on a CPU: small net, large batches, both output variants.
    "smoke": Grid(
        "smoke",
        Config(hidden_size=64, batch_size=600, epochs=2),
        (("output", OUTPUTS),),
    ),
}


def parse_value(name: str, text: str) -> Any:
    """Parse one `--set` value for field `name` (`1e-3`, `relu`, `true`, `10e-1`)."""
    if name not in _FIELD_TYPES:
        raise ConfigError(f"unknown config field {name!r}; allowed: {', '.join(FIELD_NAMES)}")
    kind = _FIELD_TYPES[name]
    text = text.strip()
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}: got {text!r}; allowed: an integer") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(
                f"{name}: got {text!r}; allowed: a number such as 1e-3 or 10e-3"
            ) from None
    if kind == "bool":
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name}: got {text!r}; allowed: true or false")
    return text


def parse_set(items: list[str]) -> dict[str, tuple[Any, ...]]:
    """`["hidden_size=400,500", "lr=..."]` -> {"hidden_size": (400, 500), ...}."""
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r}: expected key=value or key=v1,v2 (keys: {', '.join(FIELD_NAMES)})"
            )
        name, _, text = item.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(
                f"--set {item!r}: no field name before '='; allowed: {', '.join(FIELD_NAMES)}"
            )
        values = [v for v in text.split(",")]
        if not text.strip() or any(not v.strip() for v in values):
            raise ConfigError(
                f"--set {item!r}: empty value for {name}; allowed: {name}=VALUE or {name}=V1,V2"
            )
        out[name] = tuple(parse_value(name, v) for v in values)
    return out


def load_toml(path: str | pathlib.Path) -> Grid:
    """A TOML file of Config fields; a list value makes an axis. `preset = "grid"` starts from a
    preset.

    preset = "baseline"
    hidden_size = [400, 600]
    learning_rate = 1e-3
    """
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"--config {str(path)!r}: no such file; allowed: {', '.join(PRESETS)} or a .toml file"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(
            f"--config {str(path)!r}: cannot read TOML ({' '.join(str(e).split())})"
        ) from None
    preset = data.pop("preset", "baseline")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"preset: got {preset!r}; allowed: {' | '.join(PRESETS)}")
    overrides: dict[str, tuple[Any, ...]] = {}
    for name, value in data.items():
        if name not in _FIELD_TYPES:
            allowed = ", ".join(FIELD_NAMES)
            raise ConfigError(
                f"{path.name}: unknown config field {name!r}; allowed: preset, {allowed}"
            )
        values = tuple(value) if isinstance(value, list) else (value,)
        if not values:
            raise ConfigError(f"{name}: empty list in {path.name}")
        if _FIELD_TYPES[name] == "float":  # TOML `1` is an int; accept it as a learning rate
            values = tuple(
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values
            )
        overrides[name] = values
    return dataclasses.replace(PRESETS[preset], name=path.stem).with_overrides(overrides)


def resolve(config: str, sets: list[str] | None = None) -> Grid:
    """`--config NAME|FILE.toml` plus `--set` items -> a validated Grid."""
    if config in PRESETS:
        grid = PRESETS[config]
    elif config.endswith(".toml"):
        grid = load_toml(config)
    else:
        raise ConfigError(
            f"--config: got {config!r}; allowed: {' | '.join(PRESETS)} or a path to a .toml file"
        )
    return grid.with_overrides(parse_set(sets or []))
