"""Reading and writing VDSR weights in the formats met in practice, without running their code.

* **pytorch-vdsr pickle**: the paper's teacher is ``torch.save`` of a whole module from a 2017
  torch (legacy, non-zip format). ``torch.load`` would need that project's ``vdsr.py`` on the
  path and would execute whatever the pickle names. We parse it with an unpickler that
  resolves *no* global except a handful of inert containers: every class becomes an inert
  stand-in, and only the tensors are kept.
* **torch state dict** (``.pth``/``.pt``, zip format): ``torch.load(weights_only=True)``.
* **safetensors**: the format edgesr writes (students, shipped teachers), with metadata.

All readers return ``{our parameter name: tensor}``; names from pytorch-vdsr are mapped
(``input`` -> ``head``, ``residual_layer.i`` -> ``body.i``, ``output`` -> ``tail``).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import torch

from ..errors import EdgesrError
from ..untrusted import check_archive, read_json
from .legacy_pickle import read_legacy_pickle
from .srnet import SRNet
from .vdsr import VDSR

_PYTORCH_VDSR_NAMES = [
    (re.compile(r"^input\.weight$"), "head.weight"),
    (re.compile(r"^residual_layer\.(\d+)\.conv\.weight$"), r"body.\1.conv.weight"),
    (re.compile(r"^output\.weight$"), "tail.weight"),
]


def _canonical_name(name: str) -> str:
    """Our name for a pytorch-vdsr one, ``module.`` (DataParallel) prefix stripped. The patterns
    are anchored and none matches another's replacement, so applying them all renames at most once."""
    name = name.removeprefix("module.")
    for pattern, repl in _PYTORCH_VDSR_NAMES:
        name = pattern.sub(repl, name)
    return name


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    data = path.read_bytes()
    if data[:8] and path.suffix == ".safetensors" or data[8:9] == b"{":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    if zipfile.is_zipfile(io.BytesIO(data)):
        check_archive(data)
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            for key in ("state_dict", "model", "params"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ValueError("no state dict of tensors inside")
        return {str(k): v for k, v in obj.items()}, {}
    arrays = read_legacy_pickle(data)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}, {}


def _checked(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Our names, float32, after two checks on what the file claims: its tensors hold no more
    bytes than the file (a zip checkpoint may hold stride-0 views of one float as a
    terabyte-sized tensor, which ``.float()`` would materialise) and every value is finite (NaN
    weights export and run, and upscale every image to black)."""
    size = path.stat().st_size
    total = sum(v.numel() * v.element_size() for v in state.values())
    if total > size:
        raise EdgesrError(f"cannot read weights from {path}: its tensors claim {total} bytes, more than the "
                          f"{size}-byte file holds (a forged file?)")
    out = {}
    for name, value in state.items():
        value = value.float()
        if not bool(torch.isfinite(value).all()):
            raise EdgesrError(f"{path}: {_canonical_name(name)[:60]} holds NaN or infinite values: "
                              "not usable weights (did its training diverge?)")
        out[_canonical_name(name)] = value
    return out


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parameters (our names, float32, finite) and metadata of a weights file in any supported format."""
    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"weights file not found: {path}")
    try:
        state, meta = _read_state(path)
    except Exception as exc:  # any parse failure means a bad file, whatever the library raised
        raise EdgesrError(
            f"cannot read weights from {path}: truncated, corrupt or not a VDSR checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'})"
        ) from None
    return _checked(state, path), meta


_BODY = re.compile(r"body\.(\d+)\.conv\.weight")


def _vdsr_shape(state: dict[str, torch.Tensor], source: str) -> tuple[int, int]:
    """The ``(width, depth)`` of the VDSR ``state`` holds, from its names and shapes alone,
    checked whole before anything is allocated: a file's shapes are the file's word, and a
    100000-wide head would have the network ask for 360 GB."""
    from .registry import MAX_DEPTH, MAX_WIDTH

    missing = [k for k in ("head.weight", "tail.weight") if k not in state]
    if missing:
        raise EdgesrError(f"{source} is not a VDSR checkpoint: missing {', '.join(missing)}")
    head = tuple(state["head.weight"].shape)
    if len(head) != 4 or head[1:] != (1, 3, 3):
        raise EdgesrError(f"{source}: head.weight has shape {head}, not a VDSR head (width, 1, 3, 3)")
    width = head[0]
    if not 1 <= width <= MAX_WIDTH:
        raise EdgesrError(f"{source}: a {width}-wide VDSR; edgesr reads widths from 1 to {MAX_WIDTH}")
    blocks = sorted(int(m.group(1)) for k in state if (m := _BODY.fullmatch(k)))
    if not blocks:
        raise EdgesrError(f"{source}: a VDSR with only a head and a tail (no body.N.conv.weight); "
                          "it needs at least one body block")
    if len(blocks) + 2 > MAX_DEPTH:
        raise EdgesrError(f"{source}: a {len(blocks) + 2}-layer VDSR; edgesr reads depths up to {MAX_DEPTH}")
    expected = {"head.weight": (width, 1, 3, 3), "tail.weight": (1, width, 3, 3),
                **{f"body.{i}.conv.weight": (width, width, 3, 3) for i in range(len(blocks))}}
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise EdgesrError(f"{source} does not match a {width}-wide, {len(blocks) + 2}-layer VDSR: {detail}")
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise EdgesrError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {shape}")
    return width, len(blocks) + 2


def model_from_state(state: dict[str, torch.Tensor], source: str = "weights",
                     meta: dict[str, str] | None = None) -> SRNet:
    """Build the network ``state`` holds: the student family its metadata names (``arch``,
    written by :func:`save_safetensors`), else a VDSR whose width and depth the tensor shapes give."""
    if meta and "arch" in meta:
        return _registered_from_state(state, source, meta["arch"])
    width, depth = _vdsr_shape(state, source)
    model = VDSR(width, depth=depth)
    model.load_state_dict(state, strict=True)
    return model


def _registered_from_state(state: dict[str, torch.Tensor], source: str, config_text: str) -> SRNet:
    """A registered family's network from its saved config, every tensor's name and shape
    checked against it before loading."""
    from .registry import build_saved

    try:
        config = read_json(config_text)
    except ValueError as exc:
        raise EdgesrError(f"{source}: metadata field 'arch' is {exc}") from None
    model = build_saved(config, source)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise EdgesrError(f"{source} does not match its {config['arch']} config: {detail}")
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise EdgesrError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict(state, strict=True)
    return model


def save_safetensors(model: SRNet, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``model``'s inference form (folded: :mod:`.reparam`; float32) and string metadata
    atomically as safetensors. A registered student's family and knobs go in ``arch``."""
    import json

    from safetensors.torch import save

    from ..io import write_bytes
    from .reparam import folded

    model = folded(model)
    meta = {"format": "edgesr-vdsr" if isinstance(model, VDSR) else "edgesr-student", **(metadata or {})}
    if isinstance(model, VDSR):
        meta.update(width=str(model.width), depth=str(model.depth))
    if model.arch:
        meta["arch"] = json.dumps(model.config())
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(path, save(state, metadata=meta))


def student_files(folder: Path, stem: str, model: torch.nn.Module) -> dict[int | None, Path]:
    """Where a run saves its student: ``stem.safetensors`` for a network that serves every
    scale (key None), ``stem_x<s>.safetensors`` for each network of a ScaleSet (key s)."""
    from .srnet import ScaleSet

    if isinstance(model, ScaleSet):
        return {s: folder / f"{stem}_x{s}.safetensors" for s in model.scales}
    return {None: folder / f"{stem}.safetensors"}
