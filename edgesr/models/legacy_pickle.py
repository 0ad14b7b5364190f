"""The legacy (non-zip) ``torch.save`` format, read without running its code or trusting its numbers.

The paper's teacher is ``torch.save`` of a whole module from a 2017 torch. ``torch.load`` would
need that project's ``vdsr.py`` on the path and would execute whatever the pickle names, so we
parse it with an unpickler that resolves *no* global except a handful of inert containers:
every class becomes an inert stand-in, and only the tensors are kept.

Every number in such a file is the author's, not ours: a tensor's size, stride and offset into
its storage, the storage's length, its element type. A view past the end of its storage, read
with ``as_strided``, reads the process's heap (or faults); a stride of 0 over a size of 10^12
allocates terabytes. So each view is checked against its storage with exact integer arithmetic
before any memory is touched, and then gathered by bounds-checked indexing, never by strides:
a file can only ever give back bytes of its own storages, and no more elements than it holds.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}
#: no weight has more dimensions; a "tensor" of more is a forged one
MAX_DIMS = 8


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
    """What ``torch._utils._rebuild_tensor(_v2)`` is unpickled as: where the tensor's data lies
    (as the file claims: see :func:`_view`)."""

    def __init__(self, storage, offset=None, size=None, stride=None, *_ignored) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

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
        if not isinstance(pid, tuple) or len(pid) < 3:
            raise pickle.UnpicklingError("malformed persistent id")
        kind = pid[0]
        if kind == "module":  # (class, source file, source): the source is never executed
            return _Inert
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {str(kind)[:40]!r}")
        if not any(pid[1] is t for t in _STORAGE_DTYPES.values()):
            raise pickle.UnpicklingError("unsupported storage type")
        return _StorageRef(str(pid[2]), np.dtype(pid[1]))


def _collect_parameters(obj, prefix: str, out: dict[str, _TensorRef], seen: set[int]) -> None:
    """Walk a tree of stand-in modules the way ``nn.Module.state_dict`` names parameters."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    state = getattr(obj, "__dict__", {})
    for pname, value in (state.get("_parameters") or {}).items():
        if isinstance(value, _TensorRef):
            out[prefix + str(pname)] = value
    for child_name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect_parameters(child, f"{prefix}{child_name}.", out, seen)


def _index(value, what: str) -> int:
    """A non-negative Python integer, or ValueError (bools, floats and numpy scalars included)."""
    if type(value) is not int or value < 0:
        raise ValueError(f"tensor {what} {str(value)[:40]!r} is not a non-negative integer")
    return value


def _view(ref: _TensorRef, storage: np.ndarray, name: str) -> np.ndarray:
    """The tensor ``ref`` describes, copied out of ``storage`` after checking that every element
    it reads lies inside it. The check is exact (Python integers do not overflow); the gather is
    numpy fancy indexing, itself bounds-checked, so even a wrong check could only raise."""
    if not isinstance(ref.size, (tuple, list)) or not isinstance(ref.stride, (tuple, list)):
        raise ValueError(f"{name}: size and stride must be tuples")
    if len(ref.size) != len(ref.stride) or len(ref.size) > MAX_DIMS:
        raise ValueError(f"{name}: {len(ref.size)} sizes and {len(ref.stride)} strides (at most {MAX_DIMS})")
    size = tuple(_index(s, "size") for s in ref.size)
    stride = tuple(_index(s, "stride") for s in ref.stride)
    offset = _index(ref.offset, "offset")
    n = len(storage)
    if any(s > n for s in size):  # also bounds an empty tensor's other dimensions
        raise ValueError(f"{name}: size {size} exceeds its storage of {n} elements")
    count = math.prod(size)
    if count == 0:
        if offset > n:
            raise ValueError(f"{name}: offset {offset} is past its storage of {n} elements")
        return np.empty(size, storage.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= n or count > n:
        raise ValueError(f"{name}: a {size} view with strides {stride} at offset {offset} reads past its "
                         f"storage of {n} elements")
    idx = np.full((), offset, np.int64)
    for axis, (s, st) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[axis] = s
        idx = idx + (np.arange(s, dtype=np.int64) * (st if s > 1 else 0)).reshape(shape)
    return storage[idx]


def read_legacy_pickle(data: bytes) -> dict[str, np.ndarray]:
    """Parameters of a legacy-format ``torch.save`` of a whole module (or a dict holding one).

    Anything malformed raises (``ValueError``, ``pickle.UnpicklingError``, ...): callers turn
    any exception into one line about the file. The arrays returned hold, in all, no more
    bytes than ``data``."""
    f = io.BytesIO(data)
    load = lambda: _SafeUnpickler(f, encoding="latin1").load()  # noqa: E731  (py2 pickles)
    if load() != _LEGACY_MAGIC:
        raise ValueError("not a legacy torch checkpoint")
    load()  # protocol version
    sys_info = load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    root = load()
    keys = load()
    if not isinstance(keys, list):
        raise ValueError("the storage key list is not a list")
    model = root.get("model", root) if isinstance(root, dict) else root
    params: dict[str, _TensorRef] = {}
    if isinstance(model, dict):
        params = {str(k): v for k, v in model.items() if isinstance(v, _TensorRef)}
    else:
        _collect_parameters(model, "", params, set())
    dtypes: dict[str, np.dtype] = {}
    for name, ref in params.items():
        if not isinstance(ref.storage, _StorageRef):
            raise ValueError(f"{name} has no storage")
        if dtypes.setdefault(ref.storage.key, ref.storage.dtype) != ref.storage.dtype:
            raise ValueError(f"storage {ref.storage.key[:40]!r} is named with two element types")
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("checkpoint is truncated")
        (count,) = struct.unpack("<q", head)
        dtype = np.dtype(dtypes.get(str(key), np.float32))
        if count < 0 or count * dtype.itemsize > len(data):
            raise ValueError(f"storage {str(key)[:40]!r} declares {count} elements, more than the file holds")
        buf = f.read(count * dtype.itemsize)
        if len(buf) != count * dtype.itemsize:
            raise ValueError("checkpoint is truncated")
        storages[str(key)] = np.frombuffer(buf, dtype=dtype)
    out, total = {}, 0
    for name, ref in params.items():
        if ref.storage.key not in storages:
            raise ValueError(f"{name}: its storage is not in the file")
        out[name] = _view(ref, storages[ref.storage.key], name)
        total += out[name].nbytes
        if total > len(data):  # views may overlap, but never to more than the file holds
            raise ValueError("the tensors' views add up to more bytes than the file")
    return out
