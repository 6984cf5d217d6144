"""First and second load of a dataset, in fresh Python processes and fresh temp caches.

    python benchmarks/bench_data_load.py [--dataset mnist] [--data-dir DIR] [--repeats 5]

First load: gunzip + parse + md5 of the four files, then the .npy cache written (a new,
empty cache each time). Second load: the arrays memory-mapped from that cache, timed both
in the same process right after the first load and in a new process. Only the
`load_dataset` call is timed, not Python or numpy start-up. A memory map defers the
reading, so the time of a first pass over every byte is printed too, and so is what a
plain `np.load` of the same files (the loader before the map) costs in both places.
Prints medians and the ratio first/second; a benchmark, not a test (targets: first
<= 1 s, second <= 50 ms).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The imports below need the sys.path line(s) above: the benchmarks run as scripts from any
# folder, so the checkout goes first on the path; hence `noqa: E402` on each.

from shared.cli import ArgumentParser, fail  # noqa: E402
from shared.data import SPLITS, DataError, cache_dir, find_files, read_idx  # noqa: E402

# One child process. argv: repo root, dataset, data dir, what to time. It prints a JSON dict.
#   first:  first load, then at once the second (load_dataset, memory-mapped), then a pass over
#           every byte
#   first+read: first load, then at once a plain np.load of the cached arrays (the old second load)
#   second: a second load in a new process, then a pass over every byte
#   read:   a plain np.load of the cached arrays in a new process
CHILD = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from shared.data import ARRAY_NAMES, cache_dir, load_dataset
name, data_dir, what = sys.argv[2:5]
out, clock = {}, time.perf_counter
def timed(key, fn):
    t = clock(); value = fn(); out[key] = clock() - t; return value
def load():
    return load_dataset(name, data_dir, verbose=False)
def read():
    arrays = cache_dir(name) / "arrays"
    return [np.load(arrays / f"{k}.npy", allow_pickle=False) for k in ARRAY_NAMES]
def touch(ds):
    return sum(int(getattr(ds, k).sum()) for k in ARRAY_NAMES)
if what.startswith("first"):
    first = timed("first_s", load)
    assert "md5 verified" in first.source, first.source
if what in ("first", "second"):
    ds = timed("second_s", load)
    assert "arrays cached" in ds.source, ds.source
    timed("touch_s", lambda: touch(ds))
if what in ("first+read", "read"):
    timed("read_s", read)
print(json.dumps(out))
"""


PROG = "bench_data_load"


def child(what: str, dataset: str, data_dir: str, cache: str) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    env.pop("MLP_TWINS_DATA", None)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), dataset, data_dir, what],
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        fail(f"child process ({what}) failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}", PROG)
    return json.loads(r.stdout)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the four IDX files (default: $MLP_TWINS_DATA, else the product's cache, where "
        "`python -m shared.data fetch` puts them)",
    )
    p.add_argument("--repeats", type=int, default=5, help="processes per measurement (default: 5)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        fail(f"--repeats: got {args.repeats}; allowed: an integer >= 1", PROG)
    data_dir = args.data_dir or os.environ.get("MLP_TWINS_DATA") or str(cache_dir(args.dataset))
    files = find_files(data_dir, args.dataset) if os.path.isdir(data_dir) else None
    if files is None:
        fail(
            f"--data-dir {data_dir!r}: no such folder, or no {args.dataset} IDX files in it; "
            "expected a "
            f"folder holding the four ({', '.join(SPLITS)}), pass --data-dir DIR",
            PROG,
        )
    try:  # check every file here, so a bad one is named once and not as a child process's failure
        for stem, path in files.items():
            read_idx(path, args.dataset, stem)
    except DataError as e:
        fail(str(e), PROG)

    runs: dict[str, list[dict]] = {"first": [], "first+read": [], "second": [], "read": []}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        for i in range(args.repeats):
            for what in ("first", "first+read"):  # each in a cache of its own, new and empty
                runs[what].append(
                    child(what, args.dataset, data_dir, os.path.join(tmp, f"{what}{i}"))
                )
            for what in ("second", "read"):  # the cache the last "first" made
                runs[what].append(
                    child(what, args.dataset, data_dir, os.path.join(tmp, f"first{i}"))
                )

    def med(what: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[what])

    first, second = med("first", "first_s"), med("second", "second_s")
    print(
        f"bench_data_load: {args.dataset} from {data_dir}; {os.cpu_count()} CPUs; "
        f"medians of {args.repeats} processes"
    )
    print(
        f"  first load (gunzip, parse, md5, write .npy cache)  {first:9.3f} s   "
        f"[target <= 1 s: {'ok' if first <= 1 else 'MISSED'}]"
    )
    print(
        f"  second load, new process (memory-mapped cache)     {1e3 * second:9.1f} ms  "
        f"[target <= 50 ms: {'ok' if second <= 0.05 else 'MISSED'}]"
    )
    print(
        f"  second load, same process right after the first    "
        f"{1e3 * med('first', 'second_s'):9.1f} ms"
    )
    print(f"  ratio first / second (new process)                 {first / second:9.0f} x")
    print(
        f"  then a first pass over every byte (page-ins)       "
        f"{1e3 * med('second', 'touch_s'):9.1f} ms"
    )
    print("  plain np.load of the cache instead of the map:")
    print(
        f"    in a new process                                 "
        f"{1e3 * med('read', 'read_s'):9.1f} ms"
    )
    print(
        f"    in the same process right after the first load   "
        f"{1e3 * med('first+read', 'read_s'):9.1f} ms"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        fail(str(e), PROG)
