"""Student networks by name, as timm's ``register_model`` / ``create_model``.

A family is one file in :mod:`edgesr.models.students` that registers a builder with
:func:`register_student`; the recipe's ``student.arch`` (and ``--set student.arch=...``) picks
it, ``edgesr students`` lists it. Families differ in where they work: ``bicubic``-input
networks (VDSR) run at the output resolution on the MATLAB-bicubic upscaled image and serve
every scale with one network; ``lr``-input networks run on the LR image and upsample once at
the end with a pixel shuffle, so they are built for one scale and a run trains one per scale.

A saved student carries ``config()`` (the family and its knobs, JSON in the file's metadata),
from which :func:`build_saved` rebuilds its inference form. Saved weights are always folded
(:mod:`edgesr.models.reparam`), so the over-parameterised form never leaves training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import EdgesrError
from ..scales import MAX_SCALE, MIN_SCALE
from .reparam import overparameterise
from .srnet import SRNet

#: the largest network a recipe or a file may ask for: wider or deeper than any SR student
#: (the teacher is 64 x 20) and small enough to allocate anywhere (256^2 x 9 x 64 floats: 151 MB)
MAX_WIDTH = 256
MAX_DEPTH = 64
#: the 720p output frame multiply-adds are counted for
FRAME = (1280, 720)


@dataclass(frozen=True)
class Family:
    """One registered student family and its defaults."""

    name: str
    #: one line for ``edgesr students``
    summary: str
    #: ``bicubic`` or ``lr`` (see the module docstring)
    input_kind: str
    #: ``builder(scale=, width=, depth=, anchor=)`` -> the inference-form network
    builder: Callable[..., SRNet]
    width: int
    depth: int
    #: the anchors it takes (an ``lr`` family's fixed upsampling; the first is its default)
    anchors: tuple[str, ...] = ()
    #: the over-parameterisation it trains with by default (0: none)
    reparam: int = 0
    min_depth: int = 3


_FAMILIES: dict[str, Family] = {}


def register_student(name: str, *, summary: str, input_kind: str, width: int, depth: int,
                     anchors: tuple[str, ...] = (), reparam: int = 0, min_depth: int = 3
                     ) -> Callable[[Callable[..., SRNet]], Callable[..., SRNet]]:
    """Register ``builder`` as family ``name`` (a decorator)."""

    def decorate(builder: Callable[..., SRNet]) -> Callable[..., SRNet]:
        if name in _FAMILIES:
            raise ValueError(f"student family {name!r} is registered twice")
        if input_kind not in ("bicubic", "lr"):
            raise ValueError(f"input_kind must be bicubic or lr, got {input_kind!r}")
        _FAMILIES[name] = Family(name, summary, input_kind, builder, width, depth, anchors, reparam, min_depth)
        return builder

    return decorate


def families() -> list[Family]:
    from . import students  # noqa: F401  (registers every family)

    return list(_FAMILIES.values())


def family(name: str) -> Family:
    known = {f.name: f for f in families()}
    if name not in known:
        raise EdgesrError(f"unknown student arch {name!r}: use one of {', '.join(known)} (edgesr students lists them)")
    return known[name]


def _check_size(fam: Family, width: int, depth: int) -> None:
    if not 1 <= width <= MAX_WIDTH:
        raise EdgesrError(f"student width must be in [1, {MAX_WIDTH}], got {width}")
    if not fam.min_depth <= depth <= MAX_DEPTH:
        raise EdgesrError(f"{fam.name} depth must be in [{fam.min_depth}, {MAX_DEPTH}], got {depth}")


def create_student(arch: str, scale: int | None = None, width: int | None = None, depth: int | None = None,
                   anchor: str | None = None, reparam: int | None = None) -> SRNet:
    """A new network of family ``arch`` (its defaults where a knob is None), over-parameterised
    for training when ``reparam`` (or the family's default) is above 0."""
    fam = family(arch)
    width = fam.width if width is None else width
    depth = fam.depth if depth is None else depth
    _check_size(fam, width, depth)
    if anchor is not None and anchor not in fam.anchors:
        takes = f"takes {', '.join(fam.anchors)}" if fam.anchors else "has no anchor to choose"
        raise EdgesrError(f"student arch {arch} {takes}, not anchor {anchor!r}")
    if fam.input_kind == "lr" and scale is None:
        raise ValueError(f"{arch} works at LR and is built for one scale: give scale")
    net = fam.builder(scale=scale, width=width, depth=depth, anchor=anchor or (fam.anchors[0] if fam.anchors else None))
    net.arch = fam.name
    expand = fam.reparam if reparam is None else reparam
    if expand:
        overparameterise(net, expand)
    return net


def build_saved(config: Any, source: str) -> SRNet:
    """The inference form a saved ``config()`` describes, or a one-line error naming ``source``."""
    if not isinstance(config, dict) or not isinstance(config.get("arch"), str):
        raise EdgesrError(f"{source}: metadata field 'arch' is not a student config")
    ints = {}
    for key in ("width", "depth", "scale"):
        value = config.get(key)
        if value is None and key == "scale":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdgesrError(f"{source}: student config {key} is not an integer ({str(value)[:40]!r})")
        ints[key] = value
    scale = ints.get("scale")
    if scale is not None and not MIN_SCALE <= scale <= MAX_SCALE:
        raise EdgesrError(f"{source}: student config scale {scale} is outside [{MIN_SCALE}, {MAX_SCALE}]")
    anchor = config.get("anchor")
    if anchor is not None and not isinstance(anchor, str):
        raise EdgesrError(f"{source}: student config anchor is not a name")
    try:
        return create_student(config["arch"], scale, ints["width"], ints["depth"], anchor, reparam=0)
    except EdgesrError as exc:
        raise EdgesrError(f"{source}: {exc}") from None


def macs_per_frame(net: SRNet, scale: int, frame: tuple[int, int] = FRAME) -> int:
    """Multiply-adds of the learned convs for one ``frame`` of *output* (the fixed anchor and
    the in-graph bicubic, at most 16 per output pixel, are left out). Every learned conv runs at
    the network's input resolution: the output's for ``bicubic`` networks, 1/scale^2 of it for ``lr``."""
    per_pixel = sum(c.weight.numel() if hasattr(c, "weight") and c.weight.dim() == 4 else 0 for c in net.convs())
    pixels = frame[0] * frame[1]
    return per_pixel * (pixels if net.input_kind == "bicubic" else pixels // (scale * scale))


def parameters(net: SRNet) -> int:
    """Learned parameters of the inference form (an over-parameterised net is counted folded)."""
    from .reparam import folded

    return sum(p.numel() for p in folded(net).parameters())
