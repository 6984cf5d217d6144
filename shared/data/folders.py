"""Where the four IDX files may sit in a folder: flat, in <name>/, or in torchvision's
MNIST/raw/."""

from __future__ import annotations

import os
import pathlib

from shared.data.idx import SPLITS, DataError, verify_md5

TORCHVISION_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _layouts(directory: pathlib.Path, name: str) -> list[pathlib.Path]:
    """The folders that may hold the files: flat, <name>/, torchvision's MNIST/raw/ (or both)."""
    tv = TORCHVISION_DIR[name]
    return [directory, directory / name, directory / tv / "raw", directory / name / tv / "raw"]


def _files_in(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    found = {}
    for stem in SPLITS:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
    return found


def find_files(directory: str | os.PathLike, name: str) -> dict[str, pathlib.Path] | None:
    """The four IDX files (stem -> path, `.gz` preferred) in the first layout that has them all."""
    for folder in _layouts(pathlib.Path(directory), name):
        found = _files_in(folder)
        if len(found) == len(SPLITS):
            return found
    return None


def _explicit_files(directory, name: str, origin: str) -> dict[str, pathlib.Path]:
    """find_files, or a DataError saying what is missing where."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise DataError(
            f"{origin} {str(directory)!r}: no such folder; expected a folder holding "
            f"the four {name} IDX files ({', '.join(SPLITS)}, each .gz or extracted)"
        )
    files = find_files(d, name)
    if files is not None:
        return files
    best = max(_layouts(d, name), key=lambda f: len(_files_in(f)))
    missing = [s for s in SPLITS if s not in _files_in(best)]
    raise DataError(
        f"{origin} {str(directory)!r}: no complete set of {name} IDX files (missing in {best}: "
        f"{', '.join(missing)}); expected all four ({', '.join(SPLITS)}, each .gz or extracted) "
        f"in it, in {name}/, or in {TORCHVISION_DIR[name]}/raw/"
    )


def verified_files(directory, name: str, origin: str) -> dict[str, pathlib.Path]:
    """The four files of `name` in `directory` (any layout above), each with its published md5;
    a DataError naming the first missing or wrong one otherwise."""
    files = _explicit_files(directory, name, origin)
    for stem, path in files.items():
        verify_md5(path, name, stem)
    return files
