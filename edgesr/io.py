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
import secrets
import tempfile
from collections.abc import Callable, Iterator
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


def _same_or_inside(inp: Path, out: Path) -> bool:
    """Whether writing ``out`` (a file, or a folder replaced whole) would replace ``inp``: the
    same file (a link, a hard link or another spelling of it) or anything under the folder."""
    try:
        if inp.exists() and out.exists() and os.path.samefile(inp, out):
            return True
    except OSError:
        pass
    inp, out = inp.resolve(), out.resolve()
    return inp == out or out in inp.parents


def refuse_inputs(outputs: list[Path | None], inputs: list[Path | str | None]) -> None:
    """No output may be one of the command's inputs, or a folder holding one: ``--overwrite``
    replaces earlier outputs, never what the command reads (checked before any work)."""
    for out in outputs:
        for inp in inputs:
            if out is not None and inp is not None and _same_or_inside(Path(inp), Path(out)):
                raise EdgesrError(f"refusing to overwrite input {inp} with output {out}: choose another output")


def check_replaceable(folder: Path, own: Callable[[str], bool], marker: str, what: str) -> None:
    """``--overwrite`` of a folder output (a bundle, a package) replaces the folder whole, so it
    may only be one edgesr wrote: empty, or holding ``marker`` and nothing but names ``own``
    accepts (a folder of the user's own README.md is not a bundle). Anything else is a one-line
    refusal, before any work. The current folder (or one above it) is never replaced."""
    if not (folder.exists() or folder.is_symlink()):
        return
    if Path.cwd().resolve() == folder.resolve() or folder.resolve() in Path.cwd().resolve().parents:
        raise EdgesrError(f"{folder} is the current folder or holds it: give the {what} a folder of its own")
    if not folder.is_dir():
        raise EdgesrError(f"{folder} is a file, not a {what}: choose another output")
    entries = list(folder.iterdir())
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in entries if not own(p.name))
    if entries and not foreign and not (folder / marker).exists():
        raise EdgesrError(f"{folder} is not a {what} edgesr wrote (no {marker}): --overwrite replaces only those; "
                          "choose another output")
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise EdgesrError(f"{folder} holds files edgesr did not write ({shown}): --overwrite replaces only a "
                          f"{what} edgesr wrote; choose another output or move them")


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
    shown = Path(path)  # as the user wrote it, for messages
    path = Path(os.path.abspath(path))  # "." and "dir/.." have no name to put a temporary beside
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise cannot_write(shown, exc) from None
    try:
        yield tmp
        if path.exists() or path.is_symlink():
            # the old one moves aside under a temporary's name (a kill now leaves a stale
            # temporary, found by the next run), comes back if the new one cannot go in
            old = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}.old{TEMP_SUFFIX}")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(old, path)
                raise
            _remove(old)  # a symbolic link goes, not what it points to
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(shown, exc) from None
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    """Delete a file, a symbolic link (not its target) or a folder tree, quietly."""
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """The temporaries of atomic writes in ``folder`` (files and folders), of the output called
    ``name`` or of any: what a process killed while writing leaves (SIGKILL, or SIGTERM, which
    runs no cleanup). Only safe to delete while no other process writes there."""
    import glob

    if name is None:
        return sorted(folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))
    prefix = f"{TEMP_PREFIX}{name}."

    def own(p: Path) -> bool:  # ".a.<random>.tmp" is a's, ".a.png.<random>.tmp" a.png's
        token = p.name[len(prefix):-len(TEMP_SUFFIX)].removesuffix(".old")
        return bool(token) and "." not in token

    return sorted(p for p in folder.glob(f"{glob.escape(prefix)}*{TEMP_SUFFIX}") if own(p))


def remove_stale(path: str | Path) -> list[Path]:
    """Delete the temporaries a killed write of ``path`` left beside it (its own only: other
    outputs' are left to their writers); returns them. Writers call it before writing ``path``."""
    path = Path(os.path.abspath(path))
    found = stale_temporaries(path.parent, path.name) if path.parent.is_dir() else []
    for tmp in found:
        _remove(tmp)
    return found
