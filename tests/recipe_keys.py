"""The recipe schema read back: every numeric key and the range its type declares, so tests can
cover each key (and each key added later) without a hand-kept list."""

from __future__ import annotations

import dataclasses
import types
from typing import Annotated, Union, get_args, get_origin, get_type_hints

from edgesr.config import Range


def numeric_keys(cls: type, prefix: str = "") -> dict[str, Range | None]:
    """Every numeric key of recipe class ``cls`` (``section.key``; ``key[]`` for the values of a
    list) with the range its type declares, or None where it declares none."""
    out: dict[str, Range | None] = {}
    for name, tp in get_type_hints(cls, include_extras=True).items():
        key = prefix + name
        if get_origin(tp) in (Union, types.UnionType):
            (tp,) = [a for a in get_args(tp) if a is not type(None)]
        if get_origin(tp) in (list, tuple):
            tp, key = get_args(tp)[0], key + "[]"
        if dataclasses.is_dataclass(tp):
            out.update(numeric_keys(tp, key + "."))
            continue
        extras: tuple = ()
        if get_origin(tp) is Annotated:
            tp, *extras = get_args(tp)
        if tp in (int, float):
            out[key] = next((e for e in extras if isinstance(e, Range)), None)
    return out


