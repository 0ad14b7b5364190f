"""Files and folders through an artifact: where each output goes, checked before any work.

Every output path is decided and checked up front (no input is ever a target, no two inputs
share a target, existing files only with ``overwrite``), so a bad command line changes
nothing on disk; each image is then written atomically, so an interrupted run leaves only
complete files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.images import list_images
from ..errors import EdgesrError
from ..io import remove_stale
from .base import Upscaler
from .memory import BYTES_PER_RESULT_PIXEL, check_fits
from .photo import (
    TooManyPixels,
    check_result,
    image_size,
    names_image,
    output_format,
    read_photo,
    upscale_photo,
    write_photo,
)
from .tiling import DEFAULT_TILE

#: the largest result ``edgesr upscale`` makes unless ``--max-mp`` raises it: 64 MP (8000x8000),
#: about 1 GB as the result and its encoded copy; checked on the file's header, before decoding
DEFAULT_MAX_MP = 64.0


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def _sources(inputs: Sequence[Path]) -> list[Path]:
    out = []
    for p in inputs:
        if p.is_dir():
            images = list_images(p)
            if not images:
                raise EdgesrError(f"no images in folder {p}")
            out += images
        elif p.exists():
            out.append(p)
        else:
            raise EdgesrError(f"input not found: {p}")
    return out


def plan_jobs(inputs: Sequence[Path], output: Path, overwrite: bool = False) -> list[Job]:
    """One job per input image; ``output`` is a file for a single file input with an image
    suffix, else a folder that receives each image under its own name."""
    if not inputs:
        raise EdgesrError("give at least one input image or folder")
    sources = _sources(inputs)
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    # one image to an existing non-folder (a file, /dev/null): that is the target, and
    # output_format below says whether edgesr can write it
    if single_file and not output.is_dir() and (names_image(output) or output.exists()):
        jobs = [Job(sources[0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise EdgesrError(f"output {output} is a file; several images need a folder")
        jobs = [Job(s, output / s.name) for s in sources]
    resolved_inputs = {s.resolve(): s for s in sources}
    seen: dict[Path, Path] = {}
    for job in jobs:
        output_format(job.dst)
        dst = job.dst.resolve()
        if dst in resolved_inputs:
            raise EdgesrError(f"refusing to overwrite input {resolved_inputs[dst]}: choose another -o")
        if dst in seen:
            raise EdgesrError(f"{seen[dst]} and {job.src} would both be written to {job.dst}")
        seen[dst] = job.src
        if job.dst.exists() and not overwrite:
            raise EdgesrError(f"{job.dst} exists: pass --overwrite to replace it")
    return jobs


def max_output_pixels(max_mp: float) -> int:
    """``--max-mp`` in pixels: a finite number of megapixels above 0."""
    if not (math.isfinite(max_mp) and max_mp > 0):
        raise EdgesrError(f"--max-mp must be a number of megapixels above 0, got {max_mp!r}")
    return max(1, round(max_mp * 1e6))


def check_source(src: Path, scale: int, max_pixels: int) -> int:
    """Refuse ``src`` from its header when its result would exceed ``max_pixels`` or the memory
    available; the largest input that may then be decoded."""
    width, height = image_size(src)
    try:
        check_result(width, height, scale, max_pixels)
    except TooManyPixels as exc:
        raise TooManyPixels(f"image {src} is {width}x{height}: {exc} (--max-mp raises the limit)") from None
    out = width * height * scale * scale
    check_fits(out * BYTES_PER_RESULT_PIXEL, f"the x{scale} result of image {src} ({width * scale}x{height * scale})",
               "crop or shrink it first")
    return max_pixels // (scale * scale)


def upscale_file(upscaler: Upscaler, job: Job, scale: int | None = None, tile: int = DEFAULT_TILE,
                 margin: int | None = None, on_tile: Callable[[int, int], None] | None = None,
                 max_pixels: int = round(DEFAULT_MAX_MP * 1e6)) -> None:
    """Upscale one job; ``max_pixels`` bounds the result, checked before decoding; the
    temporaries an earlier, killed write of its output left go first."""
    largest_input = check_source(job.src, scale or upscaler.meta.scale, max_pixels)
    remove_stale(job.dst)
    photo = read_photo(job.src, max_pixels=largest_input)
    write_photo(job.dst, upscale_photo(upscaler, photo, scale, tile, margin, on_tile))
