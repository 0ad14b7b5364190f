"""Files and folders through an artifact: where each output goes, checked before any work.

Every output path is decided and checked up front (no input is ever a target, no two inputs
share a target, existing files only with ``overwrite``), so a bad command line changes
nothing on disk; each image is then written atomically, so an interrupted run leaves only
complete files. What a folder holds besides images is listed in the plan, so the summary can
name every file it did not upscale rather than pass over it in silence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.images import IMAGE_SUFFIXES, READ_SUFFIXES, list_images
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


@dataclass(frozen=True)
class Plan:
    """The jobs, and what the input folders hold that is not upscaled (other files, subfolders)."""

    jobs: list[Job]
    skipped: list[Path] = field(default_factory=list)

    def renamed(self) -> list[Job]:
        """Jobs whose output format differs from the input's (a GIF is written as PNG)."""
        return [j for j in self.jobs if j.src.suffix.lower() != j.dst.suffix.lower()]


def _folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The images directly in ``folder`` (sorted) and everything else in it."""
    images = list_images(folder, READ_SUFFIXES)
    return images, sorted(set(folder.iterdir()) - set(images))


def _sources(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    out: list[Path] = []
    skipped: list[Path] = []
    for p in inputs:
        if p.is_dir():
            images, others = _folder(p)
            if not images:
                held = f" (it holds {', '.join(shown(o) for o in others)})" if others else ""
                raise EdgesrError(f"no images in folder {p}{held}: edgesr reads "
                                  f"{', '.join(sorted(READ_SUFFIXES))} files")
            out += images
            skipped += others
        elif p.exists():
            out.append(p)
        else:
            raise EdgesrError(f"input not found: {p}")
    return out, skipped


def shown(path: Path) -> str:
    """A skipped entry as the summary names it: ``notes.txt``, ``raw/`` for a folder."""
    return path.name + ("/" if path.is_dir() else "")


def output_name(src: Path) -> str:
    """The name an input gets in an output folder: its own, or for a format edgesr reads but
    does not write (GIF), the same stem as PNG."""
    return src.name if src.suffix.lower() in IMAGE_SUFFIXES else src.stem + ".png"


def plan(inputs: Sequence[Path], output: Path, overwrite: bool = False) -> Plan:
    """One job per input image; ``output`` is a file for a single file input with an image
    suffix, else a folder that receives each image under its own name (:func:`output_name`)."""
    if not inputs:
        raise EdgesrError("give at least one input image or folder")
    sources, skipped = _sources(inputs)
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    # one image to an existing non-folder (a file, /dev/null): that is the target, and
    # output_format below says whether edgesr can write it
    if single_file and not output.is_dir() and (names_image(output) or output.exists()):
        jobs = [Job(sources[0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise EdgesrError(f"output {output} is a file; several images need a folder")
        jobs = [Job(s, output / output_name(s)) for s in sources]
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
    return Plan(jobs, skipped)


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
