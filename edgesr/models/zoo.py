"""Named teachers, in the style of torchvision's weight enums.

Each entry says where its file comes from, how to verify it, what format it is in, and the
PSNR it is published at and measured at with edgesr's protocol. ``resolve`` finds the file:
an explicit path first, then the copy shipped inside the package, then the cache
(``$EDGESR_HOME``, default ``~/.cache/edgesr``), then a checksum-verified download.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path

from torch import nn

from ..cache import cache_dir
from ..errors import EdgesrError
from .formats import model_from_state, read_weights
from .vdsr import VDSR

PSNRTable = dict[str, dict[int, float]]


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable, verifiable set of weights and what it is known to score."""

    name: str
    url: str
    sha256: str
    filename: str
    license: str
    #: a copy shipped in ``edgesr/weights`` (safetensors of the same tensors), if any
    embedded: str | None = None
    published_psnr: PSNRTable = field(default_factory=dict)
    measured_psnr: PSNRTable = field(default_factory=dict)


class Teachers(Enum):
    """The teacher zoo. ``Teachers.DEFAULT`` is what ``edgesr distill`` uses."""

    PYTORCH_VDSR = WeightsEntry(
        name="pytorch-vdsr",
        url=(
            "https://github.com/twtygqyy/pytorch-vdsr/raw/"
            "514b021044018baf909e79f48392783daa592888/model/model_epoch_50.pth"
        ),
        sha256="eab4d79ae5a6e5acef4c55e46015aed225ade207679bcb6695b07af8fb18e876",
        filename="vdsr_pytorch_x234.pth",
        license="MIT (c) 2017- Jiu XU; Rakuten, Inc; Rakuten Institute of Technology",
        embedded="pytorch_vdsr_x234.safetensors",
        published_psnr={"Set5": {2: 37.65, 3: 33.77, 4: 31.45}},
        measured_psnr={
            "Set5": {2: 37.653, 3: 33.773, 4: 31.465},
            "Set14": {2: 33.063, 3: 29.849, 4: 28.085},
        },
    )
    EDGESR_VDSR = WeightsEntry(
        name="edgesr-vdsr",
        url="",  # shipped with the package only
        sha256="",
        filename="edgesr_vdsr_x234_fp16.safetensors",
        license="MIT (edgesr); trained on train291 (T91 + BSDS300 train images, no licence stated)",
        embedded="edgesr_vdsr_x234_fp16.safetensors",
        published_psnr={},
        # stored in fp16; measured on the CPU with `edgesr eval` (how it was made: README, "Train a teacher")
        measured_psnr={
            "Set5": {2: 37.562, 3: 33.666, 4: 31.360},
            "Set14": {2: 33.065, 3: 29.803, 4: 27.993},
        },
    )
    #: the paper's teacher: students distilled from edgesr-vdsr score lower (README, "Train a teacher")
    DEFAULT = PYTORCH_VDSR


def entry(name: str) -> WeightsEntry:
    for t in Teachers:
        if t.value.name == name:
            return t.value
    known = ", ".join(sorted({t.value.name for t in Teachers}))
    raise EdgesrError(f"unknown model {name!r}: give a weights file path or one of {known}")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(e: WeightsEntry, dest: Path) -> None:
    from ..io import write_bytes

    try:
        with urllib.request.urlopen(e.url, timeout=30) as r:
            data = r.read()
    except Exception as exc:
        raise EdgesrError(
            f"{e.name} is not in the cache and could not be downloaded ({type(exc).__name__}); "
            f"fetch {e.url} to {dest}, or pass the file's path instead of the name"
        ) from None
    if hashlib.sha256(data).hexdigest() != e.sha256:
        raise EdgesrError(f"download of {e.name} failed its sha256 check; nothing was saved")
    write_bytes(dest, data)


def is_zoo_name(model: str) -> bool:
    """Whether ``model`` names a zoo entry: a bare name (no suffix, no folder) that is not an
    existing file. Anything else is a path."""
    path = Path(model).expanduser()
    return not (path.suffix or os.sep in model or "/" in model or path.exists())


def resolve(model: str, download: bool = True) -> Path:
    """The local file for a path or a zoo name (see module docstring for the order)."""
    path = Path(model).expanduser()
    if not is_zoo_name(model):
        if not path.is_file():
            raise EdgesrError(f"weights file not found: {model}")
        return path
    e = entry(model)
    if e.embedded:
        shipped = resources.files("edgesr.weights") / e.embedded
        if shipped.is_file():
            return Path(str(shipped))
    cached = cache_dir() / e.filename
    if cached.is_file():
        if sha256_of(cached) != e.sha256:
            raise EdgesrError(f"cached {cached} fails its sha256 check: delete it and try again")
        return cached
    if not download:
        raise EdgesrError(f"{e.name} is not in {cache_dir()}: place {e.filename} there or pass a path")
    _download(e, cached)
    return cached


def load_model(model: str, download: bool = True) -> tuple[VDSR, dict[str, str]]:
    """A VDSR (eval mode, CPU, float32) from a zoo name or a weights path, with its metadata.

    The metadata always carries ``sha256`` (of the file read) and ``source``.
    """
    path = resolve(model, download=download)
    state, meta = read_weights(path)
    net = model_from_state(state, source=str(path), meta=meta).eval()
    meta = {**meta, "sha256": sha256_of(path), "source": str(model)}
    return net, meta


#: the weights files a run folder holds, in the order a folder given as ``--model`` is searched
RUN_WEIGHTS = ("student", "teacher")


def weights_in_run(folder: str | Path, scale: int | None) -> Path:
    """The weights file of run folder ``folder`` that upscales by ``scale``: the scale's own
    ``student_x<s>.safetensors`` where the run trained one network per scale, else the run's
    one ``student.safetensors`` (or ``teacher.safetensors``). One line names what the folder
    has when nothing fits."""
    folder = Path(folder)
    per_scale = sorted(folder.glob("student_x*.safetensors"))
    if per_scale:
        if scale is None:
            raise EdgesrError(f"{folder} has one student per scale ({', '.join(p.name for p in per_scale)}): "
                              "give --scale")
        own = folder / f"student_x{scale}.safetensors"
        if not own.is_file():
            have = ", ".join("x" + p.stem.removeprefix("student_x") for p in per_scale)
            raise EdgesrError(f"{folder} has no student for x{scale}: it was trained for {have}")
        return own
    for stem in RUN_WEIGHTS:
        if (folder / f"{stem}.safetensors").is_file():
            return folder / f"{stem}.safetensors"
    raise EdgesrError(f"{folder} holds no trained weights (no student*.safetensors or teacher.safetensors: "
                      "is the run finished?)")


def model_path(model: str, scale: int | None = None) -> str:
    """``model`` itself, or for a run folder the weights file in it for ``scale``."""
    return str(weights_in_run(model, scale)) if Path(model).expanduser().is_dir() else model


def load_for_scales(model: str, scales: list[int]) -> tuple[nn.Module, dict[str, str]]:
    """What upscales by every one of ``scales``: the model (zoo name, file or run folder), or,
    for a run folder of per-scale students, a ScaleSet of those students; a network built for
    one scale asked for another is a one-line error. The metadata is the first file's."""
    from .srnet import ScaleSet

    if Path(model).expanduser().is_dir() and sorted(Path(model).glob("student_x*.safetensors")):
        loaded = {s: load_model(str(weights_in_run(model, s))) for s in scales}
        return ScaleSet({s: net for s, (net, _) in loaded.items()}).eval(), loaded[scales[0]][1]
    net, meta = load_model(model_path(model))
    wrong = [s for s in scales if net.scale is not None and s != net.scale]
    if wrong:
        raise EdgesrError(f"{model} upscales by x{net.scale} only (an LR-space network), not x{wrong[0]}")
    return net, meta
