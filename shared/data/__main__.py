"""`python -m shared.data fetch mnist fashion-mnist`: put the published files on disk before
anything needs them (the tests, a machine that will be offline later), and say where they are.

Exit 0 when every dataset named is on disk, verified; 1 with one line naming the files and the
ways to provide them when one cannot be; 2 for a bad flag or dataset name."""

from __future__ import annotations

from shared.cli import ArgumentParser, fail
from shared.data import DataError, fetch
from shared.data.idx import MD5


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m shared.data", description="The datasets the project trains on."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd = commands.add_parser(
        "fetch", help="download (md5-checked) what is missing from the cache, say where it is"
    )
    cmd.add_argument(
        "names", nargs="+", choices=tuple(MD5), metavar="DATASET", help=" | ".join(MD5)
    )
    cmd.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="a folder already holding the files: only checked (default: $MLP_TWINS_DATA)",
    )
    args = parser.parse_args(argv)
    for name in dict.fromkeys(args.names):  # each once, in the order given
        try:
            folder, how = fetch(name, args.data_dir)
        except DataError as e:
            fail(str(e), prog="python -m shared.data fetch", code=1)
        print(f"{name}: {folder} ({how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
