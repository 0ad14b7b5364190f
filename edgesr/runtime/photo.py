"""Real photos through an SR artifact: colour via Y/CbCr, grayscale, alpha, 16-bit, EXIF.

VDSR-family models see only luma, so a colour photo goes to YCbCr (MATLAB BT.601, the same
transform as training and evaluation), Y through the network, Cb/Cr and alpha through the
MATLAB bicubic. Pixels keep their bit depth (8 or 16) end to end. Pillow reads and writes
everything except 16-bit colour PNG, which it silently truncates to 8 bits; pypng handles
those. EXIF orientation is applied on reading, so outputs are upright without a tag.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..data.images import IMAGE_SUFFIXES, READ_FORMATS, depth_problem
from ..errors import EdgesrError
from ..io import atomic_path
from ..ops import imresize, rgb_to_ycbcr, ycbcr_to_rgb
from .base import Upscaler
from .tiling import DEFAULT_TILE, upscale_tiled

#: channel layouts kept through the pipeline, by number of channels
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TooManyPixels(EdgesrError):
    """An image over a pixel limit, known from its header (callers may answer it differently)."""


#: JPEG quality of a JPEG written from a file that was not one (Pillow's default, 75, visibly
#: blurs what the model sharpened)
JPEG_QUALITY = 95


@dataclass
class Photo:
    """``pixels``: ``HxWxC`` uint8 or uint16, upright; C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.

    ``jpeg``: how the source JPEG was encoded (its quantization tables and chroma subsampling),
    so that a JPEG written from it keeps its quality instead of Pillow's default 75.
    """

    pixels: np.ndarray
    jpeg: dict = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return MODES[self.pixels.shape[2]]

    @property
    def bits(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "RGBA")


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``HxWxC`` array, as Pillow's ``exif_transpose``."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def _png_is_16bit(head: bytes) -> bool:
    return len(head) >= 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16


def _read_png16(fp: BinaryIO) -> np.ndarray:
    import png

    fp.seek(0)
    width, height, rows, info = png.Reader(file=fp).asDirect()
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return arr.reshape(height, width, info["planes"])


def _read_pillow(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise EdgesrError(f"{im.mode} pixels outside 0..65535 are not supported")
        return arr.astype(np.uint16)[..., None]
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None]
    if im.mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    if im.mode in ("RGBA", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


@contextmanager
def _opened(source: str | Path | bytes) -> Iterator[BinaryIO]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    else:
        with open(source, "rb") as f:
            yield f


def _open_image(f: BinaryIO):
    """Pillow on ``f``, header only, trying :data:`READ_FORMATS` and nothing else.

    Pillow's warning above ~89 MP is silenced: the callers check the header's size against
    their own limit first (``upscale --max-mp``, the demo's), and above ~179 MP Pillow refuses.
    """
    import warnings

    from PIL import Image

    Image.init()  # registers every plugin: ``formats=`` looks each name up among them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f, formats=READ_FORMATS)


def _describe(source: str | Path | bytes) -> str:
    """How messages name the image: its path, or "the image" for bytes (an upload has no path)."""
    return "the image" if isinstance(source, bytes) else f"image {source}"


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Any failure inside as a one-line "cannot read" error naming ``what``, with a short reason
    that never echoes the file's path or object."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except EdgesrError as exc:
        raise EdgesrError(f"cannot read {what}: {exc}") from None
    except Image.DecompressionBombError:
        raise TooManyPixels(f"cannot read {what}: it declares more than the "
                            f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP Pillow decodes") from None
    except UnidentifiedImageError:
        raise EdgesrError(f"cannot read {what}: not a {', '.join(READ_FORMATS[:-1])} or {READ_FORMATS[-1]} file"
                          ) from None
    except Exception as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise EdgesrError(f"cannot read {what}: {type(exc).__name__}{f' ({detail})' if detail else ''}") from None


def image_size(source: str | Path | bytes) -> tuple[int, int]:
    """``(width, height)`` as the file's header declares it, without decoding any pixel."""
    with _reading(_describe(source)), _opened(source) as f, _open_image(f) as im:
        return im.size


def check_pixels(width: int, height: int, max_pixels: int, what: str = "the image") -> None:
    """Refuse an image above ``max_pixels``; called on header sizes, before decoding."""
    if width * height > max_pixels:
        raise TooManyPixels(f"{what} is {width}x{height} ({width * height / 1e6:.1f} MP), more than the "
                            f"{max_pixels / 1e6:.1f} MP allowed")


def check_result(width: int, height: int, scale: int, max_pixels: int, allowed: str = "allowed") -> None:
    """Refuse an image whose ``scale`` times larger result is above ``max_pixels``; called on
    header sizes, before decoding (``allowed`` ends the message: who sets the limit)."""
    out_w, out_h = width * scale, height * scale
    if out_w * out_h > max_pixels:
        raise TooManyPixels(f"the x{scale} result would be {out_w}x{out_h} ({out_w * out_h / 1e6:.1f} MP), more "
                            f"than the {max_pixels / 1e6:.1f} MP {allowed}")


def read_photo(source: str | Path | bytes, max_pixels: int | None = None) -> Photo:
    """An upright photo from an image file or its bytes (16-bit PNGs kept at 16 bits).

    ``max_pixels`` is checked on the size the header declares, before decoding: a 140 kB PNG
    can declare 12000x12000 pixels (a decompression bomb). Without it Pillow's own guard
    (about 179 MP) still applies. Only :data:`READ_FORMATS` are read.
    """
    what = _describe(source)
    with _reading(what), _opened(source) as f, _open_image(f) as im:
        size = im.size
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and im.format != "MPO":  # MPO: a phone photo whose first frame is the picture
            raise EdgesrError(f"it has {frames} frames (an animation or a multi-page file); edgesr "
                              "upscales still images: save the frame you want as a PNG")
        problem = depth_problem(im)
        if problem:
            raise EdgesrError(problem)
        if max_pixels is None or size[0] * size[1] <= max_pixels:
            orientation = int(im.getexif().get(0x0112, 1))
            jpeg = _jpeg_encoding(im)
            f.seek(0)
            pixels = _read_png16(f) if _png_is_16bit(f.read(26)) else _read_pillow(im)
    if max_pixels is not None:
        check_pixels(*size, max_pixels, what)
    if pixels.size == 0:
        raise EdgesrError(f"{what} is empty ({pixels.shape[1]}x{pixels.shape[0]})")
    return Photo(orient(pixels, orientation), jpeg)


def _jpeg_encoding(im) -> dict:
    """A JPEG's quantization tables and subsampling as Pillow's ``save`` options (``{}`` for
    other formats): writing with them keeps the input's quality."""
    if im.format not in ("JPEG", "MPO") or not getattr(im, "quantization", None):
        return {}
    from PIL import JpegImagePlugin

    options: dict = {"qtables": [list(t) for _, t in sorted(im.quantization.items())]}
    sampling = JpegImagePlugin.get_sampling(im)
    if sampling >= 0:
        options["subsampling"] = sampling
    return options


def _save(fp: BinaryIO, photo: Photo, fmt: str, **options) -> None:
    from PIL import Image

    pixels = photo.pixels
    if fmt == "PNG" and photo.bits == 16:
        import png

        h, w, c = pixels.shape
        level = options.get("compress_level")
        writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16, compression=level)
        writer.write(fp, pixels.reshape(h, w * c))
        return
    if photo.bits == 16:
        pixels = np.round(pixels / 257.0).astype(np.uint8)
    img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels, MODES[pixels.shape[2]])
    img.save(fp, format=fmt, **options)


def names_image(path: Path) -> bool:
    """Whether ``path``'s suffix is an image format's (one edgesr writes or not)."""
    from PIL import Image

    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in Image.registered_extensions()


def output_format(path: Path) -> str:
    """The Pillow format ``path`` is written in, from its suffix: one of :data:`IMAGE_SUFFIXES`
    (still images without palette loss), else a one-line error listing them."""
    from PIL import Image

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise EdgesrError(f"cannot write {path}: edgesr writes {', '.join(sorted(IMAGE_SUFFIXES))} images")
    return Image.registered_extensions()[path.suffix.lower()]


def write_photo(path: str | Path, photo: Photo) -> None:
    """Write atomically; 16 bits survive in PNG, other formats get 8 bits; a JPEG with the
    source JPEG's tables, else at quality :data:`JPEG_QUALITY`."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "JPEG" and photo.has_alpha:
        raise EdgesrError(f"cannot write {path.name}: JPEG has no alpha channel, use .png")
    options = (photo.jpeg or {"quality": JPEG_QUALITY}) if fmt == "JPEG" else {}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _save(f, photo, fmt, **options)


def encode_png(photo: Photo, compress_level: int = 6) -> bytes:
    """The photo as PNG bytes (16 bits kept), for replies that never touch the disk.

    ``compress_level`` (0-9) trades size for time, as zlib's levels do.
    """
    buf = io.BytesIO()
    _save(buf, photo, "PNG", compress_level=compress_level)
    return buf.getvalue()


def _sr_region(upscaler: Upscaler, scale: int, maxval: float, dtype) -> Callable[[np.ndarray], np.ndarray]:
    """The per-tile photo pipeline: integers in, the network on Y, bicubic on the rest, integers out."""

    def run(region: np.ndarray) -> np.ndarray:
        x = region.astype(np.float64) / maxval
        colour = x.shape[2] >= 3
        if colour:
            ycc = rgb_to_ycbcr(x[..., :3])
            y, rest = ycc[..., 0], [ycc[..., 1], ycc[..., 2]]
        else:
            y, rest = x[..., 0], []
        if x.shape[2] in (2, 4):
            rest.append(x[..., -1])
        sr_y = upscaler.upscale_y(y, scale).astype(np.float64)
        up = [imresize(c, float(scale)) for c in rest]
        if colour:
            out = [*np.moveaxis(ycbcr_to_rgb(np.stack([sr_y, up[0], up[1]], axis=-1)), -1, 0), *up[2:]]
        else:
            out = [sr_y, *up]
        return np.round(np.clip(np.stack(out, axis=-1), 0.0, 1.0) * maxval).astype(dtype)

    return run


def upscale_photo(upscaler: Upscaler, photo: Photo, scale: int | None = None, tile: int = DEFAULT_TILE,
                  margin: int | None = None, on_tile: Callable[[int, int], None] | None = None) -> Photo:
    """The photo ``scale`` times larger (the artifact's scale by default), tiled above ``tile``
    with ``margin`` LR pixels of context per tile (default: what the artifact needs)."""
    scale = scale or upscaler.meta.scale
    upscaler.check_scale(scale)
    margin = upscaler.margin(scale) if margin is None else margin
    px = photo.pixels
    maxval = 65535.0 if photo.bits == 16 else 255.0
    out = np.empty((px.shape[0] * scale, px.shape[1] * scale, px.shape[2]), px.dtype)
    upscale_tiled(px, _sr_region(upscaler, scale, maxval, px.dtype), scale, out, tile, margin, on_tile)
    return Photo(out, photo.jpeg)
