"""edgesr's cache folder (``$EDGESR_HOME``, default ``~/.cache/edgesr``) and the scores kept in it.

Downloaded weights go there (:mod:`edgesr.models.zoo`), and so do benchmark scores that can
never change: a model's PSNR/SSIM on one set at one scale is fixed by its weights' checksum,
the set's file contents and the evaluation protocol. A distillation's teacher and bicubic rows
are read from here after the first run instead of being recomputed. The package ships such
scores for its own teachers (``edgesr/weights/scores/<sha256>.json``, written by ``edgesr eval``
into an empty ``$EDGESR_HOME`` and copied there): they only match the same weights on the very
same files, so a first run on the shared benchmark sets does not spend minutes re-measuring a
teacher whose numbers never change. No torch here.

A cache file is outside input: anything in it that does not read back as the scores it should
hold is ignored (and rewritten), never trusted.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import suppress
from importlib import resources
from pathlib import Path

from .data.benchmark import BenchmarkSet
from .evaluate import Score
from .untrusted import read_json

#: bump when the evaluation protocol changes (shave, clipping, SSIM window...): old entries then miss
PROTOCOL = 1
_FIELDS = {"set": str, "scale": int, "images": int, "psnr": float, "ssim": float, "bicubic_psnr": float,
           "bicubic_ssim": float}


def cache_dir() -> Path:
    return Path(os.environ.get("EDGESR_HOME", Path.home() / ".cache" / "edgesr"))


_fingerprints: dict[tuple, str] = {}


def set_fingerprint(bset: BenchmarkSet, scale: int) -> str:
    """sha256 over the names and bytes of the files the set's pairs at ``scale`` are made from
    (hashed once per process while the files are unchanged)."""
    files = bset.files(scale)
    stamp = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _fingerprints:
        h = hashlib.sha256()
        for path in files:
            h.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        _fingerprints[stamp] = h.hexdigest()
    return _fingerprints[stamp]


def _valid(entry: object) -> bool:
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
        return False
    return all(isinstance(entry[k], t) or (t is float and isinstance(entry[k], int) and not isinstance(entry[k], bool))
               for k, t in _FIELDS.items())


class ScoreCache:
    """The cached scores of one model (weights ``sha256``), keyed by set contents, scale, SSIM on/off.

    ``read=False`` only writes (``edgesr eval`` measures afresh, and leaves its rows for later runs).
    """

    def __init__(self, sha256: str, root: Path | None = None, read: bool = True) -> None:
        if not sha256 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        self.path = (root or cache_dir()) / "scores" / f"{sha256}.json"
        self.read = read
        self._entries = self._read(self.path)
        #: the package's own measurements of its teachers: read, never written
        self._shipped = self._read(Path(str(resources.files("edgesr.weights"))) / "scores" / f"{sha256}.json")

    @staticmethod
    def _read(path: Path) -> dict[str, dict]:
        try:
            data = read_json(path.read_bytes())
        except (OSError, ValueError):  # ValueError: invalid, not UTF-8 or nested beyond reason
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and _valid(v)}

    @staticmethod
    def key(bset: BenchmarkSet, scale: int, with_ssim: bool) -> str:
        return f"protocol={PROTOCOL}|{set_fingerprint(bset, scale)}|x{scale}|ssim={with_ssim}"

    def get(self, bset: BenchmarkSet, scale: int, with_ssim: bool) -> Score | None:
        key = self.key(bset, scale, with_ssim)
        entry = (self._entries.get(key) or self._shipped.get(key)) if self.read else None
        return Score(**entry) if entry else None

    def put(self, bset: BenchmarkSet, score: Score, with_ssim: bool) -> None:
        """Keep ``score``; a cache that cannot be written is only a slower next run."""
        from .io import OutputError, write_json

        self._entries[self.key(bset, score.scale, with_ssim)] = score.to_dict()
        with suppress(OutputError):  # what write_json raises for every OSError
            write_json(self.path, self._entries)
