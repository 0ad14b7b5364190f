"""The upscaling factors edgesr handles: integers from 2 to 8. No torch.

MATLAB's bicubic is a fixed polyphase filter for integer factors (what the in-graph bicubic of
the exports relies on); 8 bounds the factors to ones that single-image SR of this kind serves.
Recipes, command flags and exports all check against this one range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from .config import Range
from .errors import EdgesrError

MIN_SCALE, MAX_SCALE = 2, 8
#: a scale as a recipe key
Scale = Annotated[int, Range(MIN_SCALE, MAX_SCALE)]


def check_scales(scales: Sequence[int], what: str = "--scales") -> list[int]:
    """``scales`` if there is one or more, each an integer from 2 to 8, none repeated; else a
    one-line error."""
    if not scales:
        raise EdgesrError(f"{what}: give at least one scale")
    bad = [s for s in scales if not MIN_SCALE <= s <= MAX_SCALE]
    if bad:
        raise EdgesrError(f"{what}: unsupported scale(s) {bad}: use integers from {MIN_SCALE} to {MAX_SCALE}")
    if len(set(scales)) != len(scales):
        raise EdgesrError(f"{what}: a scale is repeated in {list(scales)}")
    return list(scales)
