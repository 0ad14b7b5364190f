"""Rich tables of SR scores (shared by eval, distill and bench). No torch."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from .evaluate import Score


def scores_table(scores: Sequence[Score], title: str = "") -> Table:
    table = Table(title=title)
    for col in ("set", "scale", "images", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain dB"):
        table.add_column(col, justify="right" if col not in ("set",) else "left")
    for s in scores:
        table.add_row(s.set, f"x{s.scale}", str(s.images), f"{s.psnr:.3f}", f"{s.ssim:.4f}",
                      f"{s.bicubic_psnr:.3f}", f"{s.bicubic_ssim:.4f}", f"{s.psnr - s.bicubic_psnr:+.3f}")
    return table
