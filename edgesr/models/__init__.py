"""VDSR networks, weight formats and the teacher zoo."""

from .vdsr import STUDENT_WIDTH, TEACHER_WIDTH, VDSR, student_arch, teacher_arch

__all__ = ["STUDENT_WIDTH", "TEACHER_WIDTH", "VDSR", "student_arch", "teacher_arch"]
