"""Recipes: YAML files validated into typed, frozen dataclasses; CLI overrides; saved with each run.

Every hyperparameter of a job lives in its recipe, so a run folder's ``recipe.yaml`` is enough
to reproduce it. Validation is strict and happens before anything is written: an unknown key,
a value of the wrong type or one outside the range its type declares (``Annotated[int,
Range(1)]``) is a one-line error that names the key (``recipe key log_every: must be >= 1,
got 0``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import EdgesrError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a numeric recipe key, declared in its type: ``Annotated[int, Range(1)]``.

    ``low``/``high`` are inclusive unless ``*_open``; ``None`` leaves that side unbounded.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: float) -> bool:
        above = self.low is None or (v > self.low if self.low_open else v >= self.low)
        below = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


#: the ranges recipes use most, by name
Count = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
NonNegative = Annotated[float, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]
#: momentum-like factors: 1 would never forget
Decay = Annotated[float, Range(0, 1, high_open=True)]
#: shares of a whole: 0 is nothing, 1 everything
Share = Annotated[float, Range(0, 1, low_open=True)]


def fail(key: str, msg: str) -> typing.NoReturn:
    """The one-line error of a recipe key (for cross-key checks in a recipe's ``validate``)."""
    raise EdgesrError(f"recipe key {key}: {msg}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        value = _coerce(value, base, key)
        for extra in extras:
            if isinstance(extra, Range) and value not in extra:
                fail(key, f"must be {extra}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # recipes use unions only as Optional
        return _coerce(value, inner, key)
    if origin is Literal:
        if value not in get_args(tp):
            fail(key, f"expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            fail(key, f"expected a list, got {value!r}")
        args = get_args(tp) or (Any,)
        any_length = origin is list or len(args) == 1 or args[-1] is Ellipsis
        if not any_length and len(value) != len(args):
            fail(key, f"expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, args[0] if any_length else args[i], f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(key, f"expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            fail(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            fail(key, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail(key, f"expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported recipe type {tp} at {key}")


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and values out of their
    declared range name the key."""
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        fail(prefix + unknown[0], f"unknown key (known: {', '.join(fields)})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    obj = cls(**kwargs)  # every field has a default
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
    import yaml  # the host side's (train extra); validation above needs only the standard library

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
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except (yaml.YAMLError, RecursionError):
            raise EdgesrError(f"override {item!r}: the value is not valid YAML") from None
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


#: no recipe comes near this; a larger "recipe" is some other file given by mistake
MAX_RECIPE_BYTES = 1 << 20


def read_recipe_text(path: Path) -> str:
    """A recipe file's text, or a one-line error for what is not a (small) text file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise EdgesrError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise EdgesrError(f"recipe {path} is over {MAX_RECIPE_BYTES >> 20} MB: not a recipe (a YAML text file)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EdgesrError(f"recipe {path} is binary data (an image? weights?), not a YAML text file") from None


def _yaml_problem(exc: Exception) -> str:
    """What PyYAML found wrong, and where: ``expected ',' or ']', but got '<stream end>' (line 3)``."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if not problem:
        return str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def load_recipe(cls: type[T], name_or_path: str, overrides: list[str] | None = None) -> T:
    """Read, override and validate a recipe file into ``cls``."""
    import yaml

    path = find_recipe(name_or_path)
    text = read_recipe_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise EdgesrError(f"recipe {path} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise EdgesrError(f"recipe {path} nests too deeply to be a recipe") from None
    if not isinstance(data, dict):
        raise EdgesrError(f"recipe {path} must be a mapping of keys to values")
    return from_dict(cls, apply_overrides(data, overrides or []))


def dump_recipe(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(obj), sort_keys=False)
