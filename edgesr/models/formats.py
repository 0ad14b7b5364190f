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

import collections
import io
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import EdgesrError
from .srnet import SRNet
from .vdsr import VDSR

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class _Inert:
    """Stand-in for any class a checkpoint names: records its state, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


class _StorageRef:
    def __init__(self, key: str, dtype: np.dtype) -> None:
        self.key, self.dtype = key, dtype


class _TensorRef:
    """What ``torch._utils._rebuild_tensor(_v2)`` is unpickled as: where the tensor's data lies."""

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_ignored) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __setstate__(self, state) -> None:  # Parameter's hooks/requires_grad: irrelevant here
        pass


def _parameter(data, *_ignored):
    return data


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _TensorRef
        if (module, name) in (("torch._utils", "_rebuild_parameter"), ("torch.nn.parameter", "Parameter")):
            return _parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        return _Inert

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "module":  # (class, source file, source): the source is never executed
            return _Inert
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        return _StorageRef(str(pid[2]), np.dtype(pid[1]))


def _collect_parameters(obj, prefix: str, out: dict[str, _TensorRef], seen: set[int]) -> None:
    """Walk a tree of stand-in modules the way ``nn.Module.state_dict`` names parameters."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    state = getattr(obj, "__dict__", {})
    for pname, value in (state.get("_parameters") or {}).items():
        if isinstance(value, _TensorRef):
            out[prefix + pname] = value
    for child_name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect_parameters(child, f"{prefix}{child_name}.", out, seen)


def read_legacy_pickle(data: bytes) -> dict[str, np.ndarray]:
    """Parameters of a legacy-format ``torch.save`` of a whole module (or a dict holding one)."""
    f = io.BytesIO(data)
    load = lambda: _SafeUnpickler(f, encoding="latin1").load()  # noqa: E731  (py2 pickles)
    if load() != _LEGACY_MAGIC:
        raise ValueError("not a legacy torch checkpoint")
    load()  # protocol version
    sys_info = load()
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    root = load()
    keys = load()
    model = root.get("model", root) if isinstance(root, dict) else root
    params: dict[str, _TensorRef] = {}
    if isinstance(model, dict):
        params = {k: v for k, v in model.items() if isinstance(v, _TensorRef)}
    else:
        _collect_parameters(model, "", params, set())
    dtypes = {ref.storage.key: ref.storage.dtype for ref in params.values()}
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(dtypes.get(str(key), np.float32))
        buf = f.read(count * dtype.itemsize)
        if len(buf) != count * dtype.itemsize:
            raise ValueError("checkpoint is truncated")
        storages[str(key)] = np.frombuffer(buf, dtype=dtype)
    out = {}
    for name, ref in params.items():
        flat = storages[ref.storage.key]
        itemsize = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], shape=ref.size, strides=tuple(s * itemsize for s in ref.stride)
        ).copy()
    return out


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
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            for key in ("state_dict", "model", "params"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ValueError("no state dict of tensors inside")
        return dict(obj), {}
    arrays = read_legacy_pickle(data)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}, {}


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parameters (our names, float32) and metadata of a weights file in any supported format."""
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
    return {_canonical_name(k): v.float() for k, v in state.items()}, meta


def model_from_state(state: dict[str, torch.Tensor], source: str = "weights",
                     meta: dict[str, str] | None = None) -> SRNet:
    """Build the network ``state`` holds: the student family its metadata names (``arch``,
    written by :func:`save_safetensors`), else a VDSR whose width and depth the tensor shapes give."""
    if meta and "arch" in meta:
        return _registered_from_state(state, source, meta["arch"])
    if "head.weight" not in state or "tail.weight" not in state:
        raise EdgesrError(
            f"{source} is not a VDSR checkpoint: missing "
            + ", ".join(k for k in ("head.weight", "tail.weight") if k not in state)
        )
    width = state["head.weight"].shape[0]
    blocks = sum(1 for k in state if re.fullmatch(r"body\.\d+\.conv\.weight", k))
    model = VDSR(width, depth=blocks + 2)
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise EdgesrError(f"{source} does not match a {width}-wide, {blocks + 2}-layer VDSR: {detail}")
    for k, v in model.state_dict().items():
        if state[k].shape != v.shape:
            raise EdgesrError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict(state, strict=True)
    return model


def _registered_from_state(state: dict[str, torch.Tensor], source: str, config_text: str) -> SRNet:
    """A registered family's network from its saved config, every tensor's name and shape
    checked against it before loading."""
    import json

    from .registry import build_saved

    try:
        config = json.loads(config_text)
    except (ValueError, RecursionError):
        raise EdgesrError(f"{source}: metadata field 'arch' is not valid JSON") from None
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
