"""Files and folders through an artifact: where each output goes, checked before any work.

Every output path is decided and checked up front (no input is ever a target, no two inputs
share a target, existing files only with ``overwrite``), so a bad command line changes
nothing on disk; each image is then written atomically, so an interrupted run leaves only
complete files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.images import list_images
from ..errors import EdgesrError
from ..io import remove_stale
from .base import Upscaler
from .photo import names_image, output_format, read_photo, upscale_photo, write_photo
from .tiling import DEFAULT_TILE


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


def upscale_file(upscaler: Upscaler, job: Job, scale: int | None = None, tile: int = DEFAULT_TILE,
                 margin: int | None = None, on_tile: Callable[[int, int], None] | None = None) -> None:
    """Upscale one job; the temporaries an earlier, killed write of its output left go first."""
    remove_stale(job.dst)
    photo = read_photo(job.src)
    write_photo(job.dst, upscale_photo(upscaler, photo, scale, tile, margin, on_tile))
