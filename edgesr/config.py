"""Recipes: YAML files validated into typed, frozen dataclasses; CLI overrides; saved with each run.

Every hyperparameter of a job lives in its recipe, so a run folder's ``recipe.yaml`` is enough
to reproduce it. Validation is strict and happens before anything is written: an unknown key,
a value of the wrong type or one outside the range its type declares (``Annotated[int,
Range(1)]``) is a one-line error that names the key (``recipe key log_every: must be >= 1,
got 0``).

Relative paths (data folders, weights files: keys typed :data:`DataPath` or :data:`ModelRef`)
are resolved when a recipe is loaded, so a run does not depend on the folder it is started or
resumed from: a path written in a recipe file is relative to that file's folder (as a
compose file's or a ``pyproject.toml``'s are), a path given with ``--set`` or a command's flag,
or a default the file leaves out, to the current folder. The run folder keeps them absolute.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
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


@dataclasses.dataclass(frozen=True)
class RelativePath:
    """Marks a recipe key that holds a path (``Annotated[str, RelativePath()]``): relative
    values are resolved at load time (see the module docstring)."""

    #: a bare name (no folder, no suffix) is a name, not a path: a zoo model's
    bare_is_name: bool = False

    def resolve(self, value: str, base: Path) -> str:
        path = Path(value).expanduser()
        if path.is_absolute() or (self.bare_is_name and not (path.suffix or "/" in value or os.sep in value)):
            return str(path)
        return os.path.normpath(base / path)


#: a folder or file of data
DataPath = Annotated[str, RelativePath()]
#: a zoo name or a weights file
ModelRef = Annotated[str, RelativePath(bare_is_name=True)]


def fail(key: str, msg: str) -> typing.NoReturn:
    """The one-line error of a recipe key (for cross-key checks in a recipe's ``validate``)."""
    raise EdgesrError(f"recipe key {key}: {msg}")


#: the types a recipe value must already have, as its error names them
_PLAIN = {bool: "true or false", int: "an integer", str: "a string"}
#: every recipe integer is a 64-bit one (a seed of 2**64 overflows torch's and numpy's); a key's
#: own range may be narrower
INT_LIMIT = 2**63
#: digits a YAML integer may have (2**63 has 19): more is no recipe value, and Python refuses to
#: convert more than 4300 in any case
MAX_INT_DIGITS = 30


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
    if tp in _PLAIN:  # bool is an int to isinstance, yet true is never a recipe's integer
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            fail(key, f"expected {_PLAIN[tp]}, got {shown(value)}")
        if tp is int and not -INT_LIMIT <= value < INT_LIMIT:
            fail(key, f"must be a 64-bit integer (from -2**63 to 2**63 - 1), got {shown(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, f"expected a number, got {shown(value)}")
        if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT or not math.isfinite(value):
            fail(key, f"expected a finite number, got {shown(value)}")  # (an int past 2**1024: no float)
        return float(value)
    if tp is Any:
        return value
    raise TypeError(f"unsupported recipe type {tp} at {key}")


def shown(value: Any) -> str:
    """A value as an error quotes it: ``repr``, cut to a line (an integer of 5000 digits has no repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
        return f"an integer of more than {MAX_INT_DIGITS} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and values out of their
    declared range name the key."""
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        fail(prefix + unknown[0], f"unknown key (known: {', '.join(fields)})")
    obj = cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})  # every field has a default
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj


def resolve_paths(tp: Any, value: Any, base: Path) -> Any:
    """``value`` (plain data for type ``tp``) with its :class:`RelativePath` keys resolved against
    ``base``; anything of the wrong shape is left for :func:`from_dict` to report."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extras = get_args(tp)
        mark = next((e for e in extras if isinstance(e, RelativePath)), None)
        if mark is not None and isinstance(value, str):
            return mark.resolve(value, base)
        return resolve_paths(inner, value, base)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return resolve_paths(inner[0], value, base) if len(inner) == 1 else value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = get_args(tp) or (Any,)
        if origin is list or len(args) == 1 or args[-1] is Ellipsis:
            return [resolve_paths(args[0], v, base) for v in value]
        return [resolve_paths(t, v, base) for t, v in zip(args, value)] + list(value[len(args):])
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = get_type_hints(tp, include_extras=True)
        return {k: resolve_paths(hints[k], v, base) if k in hints else v for k, v in value.items()}
    return value


def to_dict(obj: Any) -> Any:
    """A plain (YAML-safe) view of a recipe dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


#: YAML 1.2's floats that YAML 1.1 reads as strings: an exponent without a dot or its sign (``5e-4``, ``1E5``)
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, with numbers read as a user writes them.

    PyYAML implements YAML 1.1, whose floats need a dot and a signed exponent: ``5e-4`` (the
    example of ``teacher train --help``) and ``1e-3`` are strings there, then refused as "not a
    number". YAML 1.2 reads them as floats, and so does this loader. It also refuses integers of
    more than :data:`MAX_INT_DIGITS` digits in YAML's own error, with the line, rather than
    letting Python's conversion limit raise from inside the parser."""
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        pass

    # copied list by list: add_implicit_resolver appends to the lists it shares with SafeLoader
    RecipeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        digits = len(str(node.value).lstrip("+-").replace("_", ""))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits} digits", node.start_mark)
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    RecipeLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return RecipeLoader


def parse_yaml(text: str) -> Any:
    """A recipe's YAML (a file or one ``--set`` value) as plain data; raises ``yaml.YAMLError``
    (and ``RecursionError`` for nesting beyond reason)."""
    import yaml  # the host side's (train extra); validation above needs only the standard library

    return yaml.load(text, Loader=_loader())


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a recipe mapping."""
    import yaml

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
            node[parts[-1]] = parse_yaml(raw)
        except (yaml.YAMLError, RecursionError) as exc:
            raise EdgesrError(f"override {shown(item)}: the value is not valid YAML "
                              f"({_yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else 'nested too deeply'})"
                              ) from None
    return data


def shipped_recipes() -> Path:
    """The recipes that come with edgesr: ``edgesr/recipes`` in an installed package (the
    checkout's top-level ``recipes/``, the source of truth, installed there: ``pyproject.toml``),
    that top-level folder itself in a source checkout or an editable install."""
    installed = Path(__file__).resolve().parent / "recipes"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "recipes"


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ./recipes (your own, first), then the shipped ones."""
    return [Path.cwd() / "recipes", shipped_recipes()]


@dataclasses.dataclass(frozen=True)
class RecipeEntry:
    """One named recipe as ``edgesr recipes`` lists it."""

    name: str
    path: Path
    #: the key of ``kinds`` whose schema the file validates against, or "" if none does
    kind: str
    #: the recipe's ``description`` key, or why the file is not a valid recipe
    description: str


def catalog(kinds: dict[str, type]) -> list[RecipeEntry]:
    """Every recipe name :func:`find_recipe` resolves (a name in ./recipes hides a shipped one),
    classified by the recipe class (``kinds``: label to class) that accepts it."""
    import yaml

    seen: dict[str, Path] = {}
    for d in recipe_dirs():
        for path in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            seen.setdefault(path.stem, path)
    out = []
    for name, path in sorted(seen.items()):
        try:
            data = parse_yaml(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
            out.append(RecipeEntry(name, path, "", f"unreadable ({type(exc).__name__})"))
            continue
        errors = []
        for label, cls in kinds.items():
            try:
                recipe = from_dict(cls, data if isinstance(data, dict) else {"": data})
            except EdgesrError as exc:
                errors.append(str(exc))
                continue
            out.append(RecipeEntry(name, path, label, getattr(recipe, "description", "")))
            break
        else:
            out.append(RecipeEntry(name, path, "", f"not a valid recipe: {errors[0] if errors else '?'}"))
    return out


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


def load_recipe(cls: type[T], name_or_path: str, overrides: list[str] | None = None,
                relative_to: Path | None = None) -> T:
    """Read, override and validate a recipe file into ``cls``, its paths resolved: the file's
    against ``relative_to`` (default: the file's folder), the rest against the current folder."""
    import yaml

    path = find_recipe(name_or_path)
    text = read_recipe_text(path)
    try:
        data = parse_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise EdgesrError(f"recipe {path} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise EdgesrError(f"recipe {path} nests too deeply to be a recipe") from None
    if not isinstance(data, dict):
        raise EdgesrError(f"recipe {path} must be a mapping of keys to values")
    data = resolve_paths(cls, data, relative_to or path.resolve().parent)
    recipe = from_dict(cls, apply_overrides(data, overrides or []))
    # what is still relative came from an override or a default: relative to the current folder
    return from_dict(cls, resolve_paths(cls, to_dict(recipe), Path.cwd()))


def dump_recipe(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(obj), sort_keys=False)
