"""Recipes: YAML files validated into typed, frozen dataclasses; CLI overrides; saved with each run.

Every hyperparameter of a job lives in its recipe, so a run folder's ``recipe.yaml`` is enough
to reproduce it. Validation is strict: an unknown key or a value of the wrong type is an error
that names the key (``student_optim.lr: expected a number, got 'fast'``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import EdgesrError

T = TypeVar("T")


def _fail(key: str, msg: str) -> typing.NoReturn:
    raise EdgesrError(f"recipe key {key}: {msg}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except EdgesrError as exc:
                errors.append(str(exc))
        _fail(key, f"got {value!r}, which matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            _fail(key, f"expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            _fail(key, f"expected a list, got {value!r}")
        (inner, *_) = get_args(tp) or (Any,)
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            _fail(key, f"expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(key, f"expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported recipe type {tp} at {key}")


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types name the key."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _fail(prefix + unknown[0], f"unknown key (known: {', '.join(fields)})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        missing = [n for n, f in fields.items() if n not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        _fail(prefix + (missing[0] if missing else "?"), f"required ({exc})")
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj


def to_dict(obj: Any) -> Any:
    """A plain (YAML-safe) view of a recipe dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a recipe mapping."""
    for item in overrides:
        if "=" not in item:
            raise EdgesrError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise EdgesrError(f"override {key}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ./recipes, then the project's own recipes/."""
    return [Path.cwd() / "recipes", Path(__file__).resolve().parents[1] / "recipes"]


def find_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix or "/" in name_or_path:
        raise EdgesrError(f"recipe not found: {name_or_path}")
    for d in recipe_dirs():
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    known = sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise EdgesrError(f"unknown recipe {name_or_path!r}: give a YAML path or one of {', '.join(known)}")


def load_recipe(cls: type[T], name_or_path: str, overrides: list[str] | None = None) -> T:
    """Read, override and validate a recipe file into ``cls``."""
    path = find_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EdgesrError(f"recipe {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise EdgesrError(f"recipe {path} must be a mapping of keys to values")
    return from_dict(cls, apply_overrides(data, overrides or []))


def dump_recipe(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
