"""Photos of every kind through an artifact. An affine model (``0.9 y + 0.05``) makes the
expected result computable: only Y may change by the model, everything else is bicubic."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from edgesr.ops import imresize, rgb_to_ycbcr
from edgesr.runtime import open_upscaler
from edgesr.runtime.photo import Photo, read_photo, upscale_photo, write_photo
from tests.artifacts import affine_artifact

A, B = 0.9, 0.05


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    return open_upscaler(affine_artifact(tmp_path_factory.mktemp("art") / "affine.onnx", A, B))


def smooth(h: int, w: int, c: int, maxval: int = 255, seed: int = 0) -> np.ndarray:
    """Mid-range smooth pixels, so the affine Y stays in gamut and nothing clips."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = [0.5 + 0.2 * np.sin(3 * xx + k) * np.cos(2 * yy - k) + 0.02 * rng.random((h, w)) for k in range(c)]
    return np.round(np.stack(base, -1) * maxval)


def test_rgb_luma_through_model_chroma_bicubic(affine):
    px = smooth(20, 26, 3).astype(np.uint8)
    out = upscale_photo(affine, Photo(px), 2)
    assert out.pixels.shape == (40, 52, 3) and out.pixels.dtype == np.uint8
    got = rgb_to_ycbcr(out.pixels / 255.0)
    ycc = rgb_to_ycbcr(px / 255.0)
    expected = [A * imresize(ycc[..., 0], 2.0) + B, imresize(ycc[..., 1], 2.0), imresize(ycc[..., 2], 2.0)]
    for c in range(3):  # 8-bit rounding of R, G, B moves Y/Cb/Cr by at most ~1/255
        assert np.abs(got[..., c] - expected[c]).max() < 1.2 / 255, c


def test_grayscale_stays_gray(affine):
    px = smooth(15, 11, 1).astype(np.uint8)
    out = upscale_photo(affine, Photo(px), 3)
    assert out.mode == "L" and out.pixels.shape == (45, 33, 1)
    expected = np.round((A * imresize(px[..., 0] / 255.0, 3.0) + B) * 255)
    assert np.abs(out.pixels[..., 0] - expected).max() <= 1


def test_alpha_is_bicubic(affine):
    px = smooth(16, 18, 4).astype(np.uint8)
    out = upscale_photo(affine, Photo(px), 2)
    assert out.mode == "RGBA"
    expected = np.round(np.clip(imresize(px[..., 3] / 255.0, 2.0), 0, 1) * 255)
    assert np.abs(out.pixels[..., 3] - expected).max() <= 1
    assert np.abs(out.pixels[..., 3].astype(int) - out.pixels[..., 1]).max() > 5  # not a copy of colour


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_keeps_16_bits(tmp_path, affine, channels):
    px = smooth(12, 14, channels, 65535).astype(np.uint16)
    write_photo(tmp_path / "in.png", Photo(px))
    back = read_photo(tmp_path / "in.png")
    assert back.bits == 16 and np.array_equal(back.pixels, px)
    out = upscale_photo(affine, back, 2)
    write_photo(tmp_path / "out.png", out)
    again = read_photo(tmp_path / "out.png")
    assert again.bits == 16 and np.array_equal(again.pixels, out.pixels)
    assert np.any(out.pixels % 257 != 0)  # finer than 8 bits
    y = out.pixels[..., 0] / 65535.0 if channels == 1 else rgb_to_ycbcr(out.pixels[..., :3] / 65535.0)[..., 0]
    y_in = px[..., 0] / 65535.0 if channels == 1 else rgb_to_ycbcr(px[..., :3] / 65535.0)[..., 0]
    assert np.abs(y - (A * imresize(y_in, 2.0) + B)).max() < 2e-4


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(tmp_path, orientation):
    img = Image.fromarray(smooth(6, 10, 3).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "o.jpg") as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_photo(tmp_path / "o.jpg").pixels
    assert got.shape == upright.shape and np.array_equal(got, upright)
    assert got.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))


def test_palette_with_transparency_keeps_alpha(tmp_path):
    img = Image.fromarray(smooth(8, 8, 3).astype(np.uint8)).convert("P")
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    assert read_photo(tmp_path / "p.png").mode == "RGBA"
