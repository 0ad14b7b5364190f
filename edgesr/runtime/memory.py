"""What this machine's memory allows: a one-line refusal before work that could not fit.

An SR network's activations grow with the pixels it computes at once. Measured with
``edgesr bench --threads 1`` on the pytorch-vdsr teacher (64 channels, FP32, onnxruntime on the
CPU): the peak above the level before loading was 182 MB at 512x512, 595 MB at 1024x1024 and
2291 MB at 2048x2048 output, about 550 bytes per output pixel, i.e. under 9 bytes per channel.
:func:`bytes_per_pixel` allows 10 per channel of the artifact's width (64 when it does not say)
plus the input, output and test images around it: nothing is refused that the measurement
says fits.
"""

from __future__ import annotations

import os

from ..errors import EdgesrError
from .base import Upscaler

#: bytes per output pixel and per channel of the network's width (measured: about 9)
BYTES_PER_CHANNEL = 10
#: bytes per output pixel around the network: float input and output, the float64 test image
BYTES_AROUND = 32
#: the width assumed when an artifact does not record one: VDSR's, the widest edgesr ships
DEFAULT_WIDTH = 64
#: bytes per pixel of a whole photo held as the result and as its encoded copy (16-bit RGBA: 8 + 8)
BYTES_PER_RESULT_PIXEL = 16


def available_memory() -> int | None:
    """Bytes this process could still get: Linux's ``MemAvailable``, else the physical memory,
    else None (unknown: nothing is refused)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def network_width(upscaler: Upscaler) -> int:
    """The channels of the artifact's widest layer, as its export recorded them (``arch``)."""
    arch = upscaler.meta.extra.get("arch")
    width = arch.get("width") if isinstance(arch, dict) else None
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 4096:
        return DEFAULT_WIDTH  # absent or forged: assume the widest shipped network
    return width


def bytes_per_pixel(upscaler: Upscaler) -> int:
    """Estimated peak bytes per output pixel of one run of the artifact."""
    return BYTES_PER_CHANNEL * network_width(upscaler) + BYTES_AROUND


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_fits(nbytes: float, what: str, advice: str) -> None:
    """Refuse ``what`` (e.g. "timing a 8192x8192 output") when its ``nbytes`` exceed the memory
    available now; ``advice`` says what to change."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise EdgesrError(f"{what} needs about {gigabytes(nbytes)} of memory, more than the "
                          f"{gigabytes(available)} available here: {advice}")
