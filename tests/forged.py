"""Generators of forged files, as an attacker writes them: small, exact, each made in a few lines.

They live with the tests (nothing in the package writes such files): the bad-input matrix
(``tests/test_hostile_inputs.py``), the fuzz test of the legacy reader and
``benchmarks/hostile_matrix.py`` all make their inputs here.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """Pickled as torch's persistent id of a storage: ``("storage", FloatStorage, key, ...)``."""

    def __init__(self, key: str) -> None:
        self.key = key


class _View:
    """Pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, with
    whatever offset, size and stride it is given (any Python objects)."""

    def __init__(self, key: str, offset, size, stride) -> None:
        self.args = (_Storage(key), offset, size, stride)

    def __reduce__(self):
        import torch._utils

        return torch._utils._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict())


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            import torch

            return ("storage", torch.FloatStorage, obj.key, "cpu", 0, None)
        return None


def legacy_pickle(views: dict[str, tuple], storages: dict[str, Sequence[float]],
                  declared: dict[str, int] | None = None) -> bytes:
    """A legacy-format (non-zip) ``torch.save`` of a state dict: ``views`` maps a parameter
    name to ``(storage key, offset, size, stride)``, ``storages`` a key to its float32 values;
    ``declared`` overrides the element count a storage's header claims."""
    f = io.BytesIO()
    for obj in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(obj, f, protocol=2)
    root = collections.OrderedDict((name, _View(*v)) for name, v in views.items())
    _Pickler(f, protocol=2).dump(root)
    pickle.dump(list(storages), f, protocol=2)
    for key, values in storages.items():
        arr = np.asarray(values, np.float32)
        f.write(struct.pack("<q", (declared or {}).get(key, arr.size)) + arr.tobytes())
    return f.getvalue()


def vdsr_views(width: int, blocks: int, storage: str = "0") -> dict[str, tuple]:
    """Contiguous VDSR-shaped views, all over one storage from its start (a plausible teacher)."""
    shapes = {"head.weight": (width, 1, 3, 3), **{f"body.{i}.conv.weight": (width, width, 3, 3)
                                                   for i in range(blocks)}, "tail.weight": (1, width, 3, 3)}
    out = {}
    for name, shape in shapes.items():
        strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        out[name] = (storage, 0, shape, strides)
    return out


def view_past_storage() -> bytes:
    """The issue's 369-byte file: one tensor view far larger than its 4-float storage (read with
    ``as_strided``, a segmentation fault)."""
    return legacy_pickle({"head.weight": ("0", 0, (64, 1, 3, 3), (9, 9, 3, 1 << 40))}, {"0": [1.0] * 4})


def vdsr_over_tiny_storage() -> bytes:
    """The issue's 452-byte file: plausible VDSR shapes over a 4-float storage (read with
    ``as_strided``, an export of process heap bytes)."""
    return legacy_pickle(vdsr_views(4, 1), {"0": [1.0] * 4})


def state_dict_file(path: Path, state: dict) -> Path:
    """A zip-format ``torch.save`` of ``state`` (tensors named as edgesr names them)."""
    import torch

    torch.save(state, path)
    return path


def zip_bomb_checkpoint(path: Path, declared: int = 1 << 34) -> Path:
    """A zip whose one member declares ``declared`` bytes (16 GiB) in a few hundred: its central
    directory is edited, nothing is compressed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    data = bytearray(buf.getvalue())
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 24:cd + 28] = struct.pack("<I", min(declared, 0xFFFFFFFF))
    path.write_bytes(bytes(data))
    return path


def deep_json(depth: int = 100_000) -> str:
    """``[[[...]]]`` ``depth`` deep: ``json.loads`` raises RecursionError on it."""
    return "[" * depth + "]" * depth


def tiff(pixels: np.ndarray, sample_format: int = 1) -> bytes:
    """An uncompressed little-endian TIFF of ``pixels`` (``HxWxC`` or ``HxW``, any integer or
    float dtype) exactly as it is: what cameras and scientific tools write, and Pillow cannot
    write itself (16-bit colour)."""
    px = pixels if pixels.ndim == 3 else pixels[..., None]
    h, w, c = px.shape
    data = np.ascontiguousarray(px).astype(px.dtype.newbyteorder("<")).tobytes()
    bits = px.dtype.itemsize * 8
    extra_at = 8 + len(data)  # BitsPerSample/SampleFormat lists of more than 2 values live here
    shorts = struct.pack(f"<{c}H", *[bits] * c) + struct.pack(f"<{c}H", *[sample_format] * c)
    ifd_at = extra_at + len(shorts)

    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        return struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 and count == 1
                                                       else struct.pack("<I", value))

    listed = lambda values_at, value: (values_at if c > 2 else value)  # noqa: E731
    entries = [entry(256, 4, 1, w), entry(257, 4, 1, h), entry(258, 3, c, listed(extra_at, bits)),
               entry(259, 3, 1, 1), entry(262, 3, 1, 2 if c >= 3 else 1), entry(273, 4, 1, 8),
               entry(277, 3, 1, c), entry(278, 4, 1, h), entry(279, 4, 1, len(data)), entry(284, 3, 1, 1)]
    if c >= 4:
        entries.append(entry(338, 3, 1, 2))  # ExtraSamples: unassociated alpha
    entries.append(entry(339, 3, c, listed(extra_at + 2 * c, sample_format)))
    ifd = struct.pack("<H", len(entries)) + b"".join(sorted(entries)) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_at) + data + shorts + ifd


def float_tiff(h: int = 8, w: int = 8) -> bytes:
    """A float32 grayscale TIFF with values in [0, 0.15] (Pillow: mode F; to 8 bits: all 0)."""
    return tiff(np.linspace(0, 0.15, h * w, dtype=np.float32).reshape(h, w), sample_format=3)


def tiff48(h: int = 8, w: int = 8) -> bytes:
    """A 48-bit RGB TIFF whose low bytes matter (Pillow reads its top 8 bits only)."""
    return tiff(np.arange(h * w * 3, dtype=np.uint16).reshape(h, w, 3) * 257 + 1)
