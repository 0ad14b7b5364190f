"""VDSR-half, the paper's student: VDSR at half the teacher's width, on the bicubic-upscaled
image (every layer at the output resolution), one network for every scale. The paper recipes
and ``quick`` train it; it is what the teacher-refit initialisation and progressive stages
are written for."""

from __future__ import annotations

from ..registry import register_student
from ..vdsr import DEPTH, STUDENT_WIDTH, VDSR


@register_student("vdsr-half", input_kind="bicubic", width=STUDENT_WIDTH, depth=DEPTH,
                  summary="the paper's student: VDSR at half width, every layer at the output resolution")
def vdsr_half(scale: int | None, width: int, depth: int, anchor: str | None) -> VDSR:
    return VDSR(width, depth)
