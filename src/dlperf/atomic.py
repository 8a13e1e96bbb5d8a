"""Atomic file and directory writes: a reader sees the old state or the whole new one, never half.

Write to a temporary sibling (same filesystem, so ``os.replace`` is atomic), fsync, then rename.
On any exception the temporary is removed and the target is left untouched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a result file should have the usual permissions
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` (an old ``path`` is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """``obj`` as JSON at ``path``, atomically; keys in the order given, a final newline."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=indent, default=str)
        handle.write("\n")
    return Path(path)


def write_csv(path: str | os.PathLike, frame, **to_csv_kwargs) -> Path:
    """A pandas frame as CSV at ``path``, atomically, without its index unless asked."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_write(path, newline="") as handle:
        frame.to_csv(handle, **to_csv_kwargs)
    return Path(path)


def atomic_copy(source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy ``source`` to ``dest`` so that ``dest`` is either absent or complete."""
    with open(source, "rb") as src, atomic_write(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return Path(dest)
