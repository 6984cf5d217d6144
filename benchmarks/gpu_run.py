"""The checks of benchmarks/gpu_run.sh, in Python so that they are tested: the preflight, the GPU's
label, each stage's "done" criterion, and the summary that comes back with the results.

    python benchmarks/gpu_run.py preflight DATA_DIR [--gpu]   # prints the label; else one line, 2
    python benchmarks/gpu_run.py done tests LOG               # exit 0 if the stage is done, else
    python benchmarks/gpu_run.py done bench LOG ROWS          # one line saying why, exit 1
    python benchmarks/gpu_run.py done grid RESULTS.jsonl
    python benchmarks/gpu_run.py summary DEST STATES

Why: a GPU call is short and rare, so a stage counts as done only when its own criterion holds
(a skipped test or an `error` record is not done), and a bad setup is said in seconds, not after
every stage has failed.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The imports below need the sys.path line above (a script run from any folder); hence E402.

from comparison.results import latest, scan_results  # noqa: E402
from shared.data import DataError, verified_files  # noqa: E402

# Words of a GPU's reported name that are not its model: the vendor, the product line, the form
# factor, the memory ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "Tesla T4").
_NOT_MODEL = re.compile(
    r"nvidia|amd|tesla|geforce|quadro|instinct|radeon"  # vendors, product lines
    r"|pcie|sxm\d*|nvl|nvlink|mig|\d+g\.\d+gb"  # form factors, a MIG slice
    r"|\d+gb|hbm\d*e?"  # memory
)
_LINES = ("rtx", "gtx", "titan")  # "GeForce RTX 4090" -> rtx4090: the line belongs to the model


def gpu_label(name: str) -> str:
    """The GPU model in a folder name: "NVIDIA H100 80GB HBM3" -> "h100", "Tesla T4" -> "t4",
    "NVIDIA GeForce RTX 4090" -> "rtx4090"; "gpu" when the name holds no model."""
    words = [w for w in re.split(r"[\s\-_/()]+", name.lower()) if w]
    words = [w for w in words if not _NOT_MODEL.fullmatch(w)]
    if not words:
        return "gpu"
    model = words[0] + words[1] if words[0] in _LINES and len(words) > 1 else words[0]
    return re.sub(r"[^a-z0-9]", "", model) or "gpu"


def check_data(data_dir: str) -> str | None:
    """Why DATA_DIR cannot feed every stage (the four MNIST .gz files, md5-checked), or None."""
    folder = pathlib.Path(data_dir)
    try:
        files = verified_files(folder, "mnist", "DATA_DIR")
    except DataError as e:
        return f"{e} (gpu_run.sh reads MNIST from DATA_DIR only: the four .gz files)"
    extracted = sorted(p.name for p in files.values() if p.suffix != ".gz")
    if extracted:
        return (
            f"DATA_DIR {str(folder)!r}: {', '.join(extracted)} extracted; the tests need the four "
            ".gz files as published (gpu_run.sh reads MNIST from DATA_DIR only)"
        )
    return None


# What the stages import beyond numpy: the twins' frameworks, the test runner, the report's plots.
MODULES = ("torch", "jax", "flax", "optax", "pytest", "matplotlib")


def check_modules() -> str | None:
    """Which module a stage needs is not installed (found without importing it), or None."""
    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (every stage needs {', '.join(MODULES)})"
    return None


def check_gpu() -> tuple[str | None, str]:
    """(why torch or JAX sees no GPU, or None; the GPU's name as torch reports it)."""
    import torch

    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (torch.cuda.is_available() is False)", ""
    name = torch.cuda.get_device_name()
    import jax

    try:
        jax_gpus = jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib
        jax_gpus = []
    if not jax_gpus:
        return f"torch sees {name}, but JAX sees no GPU (a CPU-only jaxlib?)", name
    return None, name


def preflight(data_dir: str, gpu: bool) -> tuple[str | None, str]:
    """(what is wrong, or None; the label of this run's folder): the data and the modules first
    (no framework import, so they are said in a second), then the GPU as torch and JAX see it."""
    why = check_data(data_dir) or check_modules()
    if why or not gpu:
        return why, "cpu-dry"
    why, name = check_gpu()
    return why, gpu_label(name)


# ------------------------------------------------------------------ each stage's criterion

# pytest's last line, -q or not: "=== 12 passed, 1 skipped in 9.30s ===", "no tests ran in 0.01s"
_SUMMARY = re.compile(r"^=*\s*(no tests ran|\d+ \w+(?:, \d+ \w+)*) in [\d.]+s\b")
_COUNT = re.compile(r"(\d+) (\w+)")
_ALLOWED = {"passed", "deselected", "warning", "warnings"}


def tests_done(log: str) -> str | None:
    """Why a pytest log is not a finished, clean run (its summary line: something passed, nothing
    skipped, failed or errored), or None."""
    summaries = [line for line in log.splitlines() if _SUMMARY.match(line.strip())]
    if not summaries:
        return "no pytest summary line (cut before the end?)"
    summary = _SUMMARY.match(summaries[-1].strip()).group(1)
    counts = {word: int(n) for n, word in _COUNT.findall(summary)}
    bad = {word: n for word, n in counts.items() if word not in _ALLOWED and n}
    if bad:
        return f"pytest: {summary} (a skip or a failure is not done)"
    if not counts.get("passed"):
        return f"pytest: {summary} (nothing passed)"
    return None


def bench_done(log: str, rows: int) -> str | None:
    """Why a benchmark's log lacks its table (`rows` rows after the `| config` header), or None."""
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| config ")), None)
    if start is None:
        return "no table printed (cut or failed before the end?)"
    got = sum(1 for line in lines[start + 2 :] if line.startswith("| "))
    if got < rows:
        return f"{got} of {rows} table rows printed"
    return None


def grid_done(results: pathlib.Path) -> str | None:
    """Why the grid's results are not finished: no records, or a run whose last record is an
    `error` (compare.py trains those again on the next call); else None."""
    records, bad = scan_results(results)
    if bad:
        return f"{results}: line {bad[0]} is not a record"
    if not records:
        return f"{results}: no records"
    errors = [r for r in latest(records) if r["status"] == "error"]
    if errors:
        first = errors[0]
        return (
            f"{len(errors)} runs ended in an error (the next call retries them); first: "
            f"{first['backend']}: {(first.get('error') or '')[:200]}"
        )
    return None


# ------------------------------------------------------------------ the summary


def summary(dest: pathlib.Path, states: pathlib.Path) -> str:
    """summary.md: the plan and what became of each stage (STATES: one tab-separated line per
    stage: name, planned s, state, s taken, why), the grid's records, the benchmark tables."""
    rows = [line.split("\t") for line in states.read_text().splitlines() if line.strip()]
    md = [f"# GPU run: {dest.name}", ""]
    md += ["| stage | planned s | state | s | why |", "|---|---|---|---|---|"]
    cells = [[cell.replace("|", "\\|") for cell in row + [""] * (5 - len(row))] for row in rows]
    md += ["| " + " | ".join(row) + " |" for row in cells]
    records, _ = scan_results(dest / "results.jsonl")
    if records:
        runs = latest(records)
        counts = {s: sum(r["status"] == s for r in runs) for s in ("ok", "diverged", "error")}
        devices = sorted({r["device"] for r in runs})
        md += ["", f"grid: {len(runs)} runs ({counts}); devices: {', '.join(devices)}"]
    for name in ("bench_sweep", "bench_host", "bench_step"):
        log = dest / f"{name}.log"
        if log.exists():
            table = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if line.startswith(("| ", "|---", "devices:"))
            ]
            md += ["", f"## {name}", "", *table]
    return "\n".join(md) + "\n"


def main(argv: list[str]) -> int:
    match argv:
        case ["preflight", data_dir, *flag] if flag in ([], ["--gpu"]):
            why, label = preflight(data_dir, gpu=flag == ["--gpu"])
            if why:
                print(f"gpu_run.sh: preflight: {why}", file=sys.stderr)
                return 2
            print(label)
            return 0
        case ["done", "tests", log]:
            why = tests_done(pathlib.Path(log).read_text(errors="replace"))
        case ["done", "bench", log, rows]:
            why = bench_done(pathlib.Path(log).read_text(errors="replace"), int(rows))
        case ["done", "grid", results]:
            why = grid_done(pathlib.Path(results))
        case ["summary", dest, states]:
            text = summary(pathlib.Path(dest), pathlib.Path(states))
            (pathlib.Path(dest) / "summary.md").write_text(text)
            return 0
        case _:
            print(f"gpu_run.py: error: got {argv}; allowed: see its docstring", file=sys.stderr)
            return 2
    if why:
        print(why)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
