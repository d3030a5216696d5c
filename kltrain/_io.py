"""Result files that survive interruption: checked output folders, atomic writes, config hashes.

A result file is either the old version or the new one, never half of each:
every write goes to a temporary file in the same folder, then ``os.replace``
renames it over the target (atomic on POSIX and Windows within one file system).
Output folders are created and probed *before* any work, so that a bad ``--out``
costs nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path


def prepare_dir(path, what: str = "--out") -> Path:
    """Create ``path`` (and parents) and prove it writable; ValueError naming it otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:  # a path under a file, a read-only folder, a full disk
        raise ValueError(f"{what} {str(path)!r} is not a writable folder: {err.strerror or err}") from None
    return path


def prepare_file(path, what: str = "--json") -> Path:
    """Check that a file can be written at ``path`` (its folder is created now)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder, not a file")
    prepare_dir(path.parent if str(path.parent) else ".", what=f"the folder of {what}")
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, indent=None) -> Path:
    """Strict JSON (non-finite floats become null, so every reader can parse the file)."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=indent, allow_nan=False))


def atomic_write_csv(path, header, rows) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def jsonable(obj):
    """Replace NaN/±inf floats by None, recursively (json's NaN is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def config_hash(config: dict) -> str:
    """12 hex digits of SHA-256 over the config's sorted JSON: equal configs, equal hashes."""
    text = json.dumps(jsonable(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
