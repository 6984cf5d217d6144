"""Atomic writes, framework-free: a file or a folder replaced whole or not at all, so that a run
killed while writing leaves the previous one (checkpoints, the data cache, TensorBoard's runs).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yields a temporary path beside `path`; on success it replaces `path` at once (os.replace),
    so that a run killed while writing leaves the previous file or none, never half of one."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        os.replace(tmp, path)
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike):
    """atomic_file for a folder (Orbax writes one): yields a fresh temporary folder path beside
    `path`, renamed to `path` on success. A previous folder is moved aside first and deleted after,
    so a kill leaves the previous one, the new one, or (between two renames) none."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.rmdir()  # Orbax creates the folder itself
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        _remove(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    finally:
        _remove(tmp)


def _remove(path: pathlib.Path) -> None:
    """Delete a file or a folder, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
