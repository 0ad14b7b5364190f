"""Writing outputs: atomically, durably, with the user's file mode, and with one-line errors.

A killed job leaves either the old file or the new one, never half; a full disk, a read-only
folder or a forbidden path is an :class:`OutputError` naming the path and the operating
system's reason, with the old file (a previous checkpoint) intact and no temporary left behind.
Writers that need a file name get a temporary one beside the target, named so that
:func:`stale_temporaries` can find the ones a killed process left.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .errors import EdgesrError

#: how atomic writes name their temporaries: ``.<target name>.<random>.tmp``
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


class OutputError(EdgesrError):
    """An output could not be written (no space, no permission, read-only file system, ...).

    Unlike a bad input, it will hit every later write to the same place as well.
    """


def cannot_write(path: str | Path, exc: OSError) -> OutputError:
    """The error for ``path``: the operating system's reason, or which part of the path is a
    file where a folder should be (the OS says "File exists" or "Not a directory")."""
    path = Path(path)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return OutputError(f"cannot write {path}: {blocking} is a file, not a folder")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def refuse_existing(outputs: list[Path | None], overwrite: bool) -> None:
    """The one overwrite rule of every command that writes: an existing output is an error,
    before any work, unless ``--overwrite`` is given."""
    for path in outputs:
        if path is not None and (path.exists() or path.is_symlink()) and not overwrite:
            raise EdgesrError(f"{path} exists: pass --overwrite to replace it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk: a rename is durable only
    when the data it points to is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on some systems; the rename is still atomic
    try:
        with suppress(OSError):  # some file systems do not sync folders
            os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, it replaces ``path``.

    The file gets the mode a plain ``open`` would give (``0666 & ~umask``), whatever the writer
    did to the temporary (``mkstemp`` makes it 0600; some writers replace it with their own).
    An ``OSError`` in the block or around it is an :class:`OutputError` for ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` atomically. Serialise to bytes first, then call this: library writers
    given a file name report a full disk in their own words (torch: ``unexpected pos``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (a folder).

    For outputs that are folders (CoreML packages, deploy bundles): a failure leaves no
    half-written folder, and the old one stays until the new one is complete.
    """
    import shutil

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        yield tmp
        if path.is_dir():
            old = path.with_name(f"{TEMP_PREFIX}{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stale_temporaries(folder: Path) -> list[Path]:
    """The temporaries of atomic writes in ``folder`` (files and folders): what a process
    killed while writing leaves. Only safe to delete while no other process writes there."""
    return sorted(folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))
