"""Reading what anyone may have written: JSON of bounded depth, archives of bounded size. No torch.

Artifact metadata, TensorRT sidecars, safetensors metadata, score caches and checkpoints all
come from files a user may have been handed. The standard readers trust them in two ways that
end in a traceback or an exhausted machine rather than a one-line error: ``json.loads`` of
``[[[[...`` 100,000 deep raises ``RecursionError`` (and a value nested a few thousand deep
passes it, then breaks whatever walks it recursively); a zip archive may declare gigabytes of
content in a few hundred bytes. Every such reader goes through here.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

#: deeper than any JSON edgesr writes (artifact metadata nests 3 levels); deeper is a forged file
MAX_JSON_DEPTH = 32
#: containers and leaves a walk of unpickled data visits: a checkpoint holds thousands; a pickle
#: can share one list between two slots 60 levels deep (2^60 paths) or put a list inside itself
MAX_NODES = 1_000_000
#: torch writes its archives uncompressed, so their content is smaller than the file; a little
#: room is left for an archive someone re-zipped with compression
MAX_ZIP_EXPANSION = 4


def nesting(obj: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists, tuples and dicts nest in ``obj`` (a scalar: 0), counted without
    recursion and only up to ``limit + 1`` (enough to tell "too deep")."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def leaves(obj: Any, max_depth: int = MAX_JSON_DEPTH, max_nodes: int = MAX_NODES) -> Iterator[Any]:
    """Every value of nested dicts, lists and tuples that is none of them, without recursion;
    ``ValueError`` past ``max_depth`` levels or ``max_nodes`` visits (shared or cyclic
    containers, which unpickled data may hold, count once per path)."""
    stack = [(obj, 0)]
    visits = 0
    while stack:
        value, level = stack.pop()
        visits += 1
        if visits > max_nodes:
            raise ValueError(f"more than {max_nodes} values (or containers that hold themselves)")
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            yield value
            continue
        if level + 1 > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        stack.extend((child, level + 1) for child in children)


def read_json(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` for text from outside: ``ValueError`` with a short reason (which
    callers put in their one-line error) for invalid JSON and for values nested deeper than
    ``limit``, never ``RecursionError``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {limit} levels") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except ValueError:  # an integer of more digits than Python converts
        raise ValueError("not JSON (a number too long)") from None
    if nesting(value, limit) > limit:
        raise ValueError(f"nested deeper than {limit} levels")
    return value


def check_archive(data: bytes, limit: int | None = None) -> None:
    """Refuse (``ValueError``) a zip archive whose members declare, in all, more than ``limit``
    bytes (default: :data:`MAX_ZIP_EXPANSION` times the archive's own size), before anything
    reads them: what a reader may be made to allocate stays proportional to the file."""
    limit = MAX_ZIP_EXPANSION * len(data) if limit is None else limit
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"not a readable zip archive ({type(exc).__name__})") from None
    if declared > limit:
        raise ValueError(f"its archive declares {declared} bytes of content, more than {limit} for a "
                         f"{len(data)}-byte file")
