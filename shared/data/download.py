"""The last resort: the four .gz files from the mirrors torchvision uses, each md5-checked before
its atomic rename into the cache."""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request

from shared.data.cache import _sweep_stale, _unlink
from shared.data.idx import MD5, SPLITS, DataError, _md5_file
from shared.data.tfds_source import _one_line

# The mirrors torchvision downloads from, in its order.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

MAX_DOWNLOAD = 64 << 20  # bytes; the largest real file (Fashion train images) is 26 MB


def download(
    name: str,
    dest: pathlib.Path,
    *,
    mirrors: list[str] | None = None,
    verbose: bool = True,
    timeout: float = 30.0,
) -> dict[str, pathlib.Path]:
    """Fetch the four .gz files into `dest`, each md5-checked before its atomic rename.

    A file already in `dest` with the right md5 is kept; one with a wrong md5 is deleted.
    On failure nothing unverified is left: no partial file, and no folder this call made.
    """
    mirrors = mirrors if mirrors is not None else MIRRORS[name]
    dest = pathlib.Path(dest)
    made = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {dest}: {e}") from None
    _sweep_stale(dest)
    out = {}
    try:
        for stem in SPLITS:
            final = dest / f"{stem}.gz"
            expected = MD5[name][stem][0]
            if final.is_file():
                if _md5_file(final) == expected:
                    out[stem] = final
                    continue
                if not _unlink(final):
                    raise DataError(
                        f"{final}: md5 is not the published {expected}, and it cannot be deleted"
                    )
            errors = []
            for mirror in mirrors:
                url = f"{mirror}{stem}.gz"
                if _fetch(url, final, expected, errors, timeout, verbose):
                    out[stem] = final
                    break
            if stem not in out:
                raise DataError(f"could not download {stem}.gz: {'; '.join(errors)}")
    except BaseException:
        if made:
            try:
                dest.rmdir()  # only succeeds when empty: verified files are kept
            except OSError:
                pass
        raise
    return out


def _fetch(
    url: str, final: pathlib.Path, expected: str, errors: list[str], timeout: float, verbose: bool
) -> bool:
    """Download `url` to a temp file beside `final`; rename it there only if its md5 is
    `expected`."""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        h, size = hashlib.md5(), 0
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > MAX_DOWNLOAD:
                    errors.append(
                        f"{url}: more than {MAX_DOWNLOAD >> 20} MiB, expected the published file"
                    )
                    return False
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != expected:
            errors.append(f"{url}: md5 {h.hexdigest()}, expected the published {expected}")
            return False
        os.replace(tmp, final)
        if verbose:  # said after, not before: offline, the one line of the final error is all
            print(f"[data] downloaded {url} (md5 verified)", file=sys.stderr)
        return True
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        errors.append(f"{url}: {_one_line(getattr(e, 'reason', None) or e)}")
        return False
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)
