"""Photos of every kind through an artifact. An affine model (``0.9 y + 0.05``) makes the
expected result computable: only Y may change by the model, everything else is bicubic."""

import re

import numpy as np
import pytest
from PIL import Image, ImageOps

import tests.forged as forged
from edgesr.errors import EdgesrError
from edgesr.ops import imresize, rgb_to_ycbcr
from edgesr.runtime import open_upscaler
from edgesr.runtime.photo import Photo, encode_png, read_photo, upscale_photo, write_photo
from tests.artifacts import affine_artifact
from tests.demo_helpers import bomb_png

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


def test_pixel_limit_is_checked_on_the_header_before_decoding(tmp_path, monkeypatch):
    from edgesr.errors import EdgesrError
    from edgesr.runtime import photo

    data = bomb_png(3000, 2000)
    assert len(data) < 30_000 and photo.image_size(data) == (3000, 2000)
    monkeypatch.setattr(photo, "_read_pillow", lambda im: pytest.fail("decoded a refused image"))
    with pytest.raises(EdgesrError, match=r"the image is 3000x2000 \(6.0 MP\), more than the 4.0 MP allowed"):
        read_photo(data, max_pixels=4_000_000)
    (tmp_path / "b.png").write_bytes(data)
    with pytest.raises(EdgesrError, match=r"image .*b.png is 3000x2000"):
        read_photo(tmp_path / "b.png", max_pixels=1_000_000)


def test_bytes_and_files_read_alike_and_png_bytes_round_trip(tmp_path):
    for px in (smooth(9, 7, 3).astype(np.uint8), smooth(5, 6, 4, 65535).astype(np.uint16)):
        write_photo(tmp_path / "a.png", Photo(px))
        from_bytes = read_photo((tmp_path / "a.png").read_bytes())
        assert np.array_equal(from_bytes.pixels, read_photo(tmp_path / "a.png").pixels)
        assert np.array_equal(read_photo(encode_png(from_bytes, compress_level=1)).pixels, px)


@pytest.mark.parametrize("data, fragment", [
    (b"hello", "not a PNG, JPEG"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a PNG, JPEG"),  # EPS would run Ghostscript
    (b"", "not a PNG, JPEG"),
])
def test_unreadable_bytes_name_no_object(data, fragment):
    from edgesr.errors import EdgesrError

    with pytest.raises(EdgesrError) as info:
        read_photo(data)
    msg = str(info.value)
    assert msg.startswith("cannot read the image: ") and fragment in msg and "BytesIO" not in msg


def test_truncated_bytes(tmp_path):
    from edgesr.errors import EdgesrError

    write_photo(tmp_path / "a.png", Photo(smooth(64, 64, 3).astype(np.uint8)))
    with pytest.raises(EdgesrError, match="cannot read the image"):
        read_photo((tmp_path / "a.png").read_bytes()[:300])


def test_one_pixel_images_through_a_real_in_graph_bicubic(tmp_path):
    """An ``lr`` artifact's mirror padding needs 2 pixels; 1-pixel sides are padded as MATLAB
    pads, so with a zero residual the output is exactly MATLAB bicubic."""
    import torch

    from edgesr.artifact import ArtifactMeta
    from edgesr.export.deploy_net import DeployNet
    from tests.artifacts import export_onnx, tiny_vdsr

    net = tiny_vdsr()
    torch.nn.init.zeros_(net.tail.weight)
    meta = ArtifactMeta(scale=2, input_kind="lr", precision="fp32", model="tiny-test")
    up = open_upscaler(export_onnx(DeployNet(net, 2, "lr"), tmp_path / "lr.onnx", meta))
    for shape in [(1, 1), (1, 5), (4, 1), (3, 3)]:
        y = np.random.default_rng(0).random(shape).astype(np.float32)
        out = up.upscale_y(y, 2)
        assert out.shape == (2 * shape[0], 2 * shape[1])
        assert np.abs(out - imresize(y.astype(np.float64), 2.0)).max() < 1e-5, shape
    assert upscale_photo(up, Photo(np.full((1, 1, 3), 200, np.uint8))).pixels.shape == (2, 2, 3)


def test_bicubic_upscaler_is_matlab_bicubic():
    from edgesr.runtime.bicubic import BicubicUpscaler

    px = smooth(10, 13, 1).astype(np.uint8)
    out = upscale_photo(BicubicUpscaler(), Photo(px), 3)
    expected = np.round(np.clip(imresize(px[..., 0] / 255.0, 3.0), 0, 1) * 255)
    assert np.array_equal(out.pixels[..., 0], expected)


@pytest.mark.parametrize("make, fragment", [
    (lambda: forged.float_tiff(), "its samples are floating-point: edgesr reads 8- and 16-bit integer images"),
    (lambda: forged.tiff48(), "a TIFF of 16-bit colour samples, which Pillow reads as 8 bits"),
    (lambda: forged.tiff(np.ones((4, 4, 4), np.uint16)), "a TIFF of 16-bit colour samples"),
    (lambda: forged.tiff(np.full((4, 4), -1, np.int8), sample_format=2), "its samples are 8-bit signed integer"),
])
def test_image_data_pillow_would_lose_is_refused_in_one_line(make, fragment):
    """Pillow turns a float TIFF into 8-bit values 0-1 and a 48-bit one into its top bytes, silently."""
    with pytest.raises(EdgesrError, match=re.escape(fragment)) as err:
        read_photo(make())
    assert str(err.value).startswith("cannot read the image: ") and "\n" not in str(err.value)


def test_tiffs_edgesr_can_keep_are_read_exactly():
    gray16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 7
    got = read_photo(forged.tiff(gray16)).pixels
    assert got.dtype == np.uint16 and np.array_equal(got[..., 0], gray16)
    rgb8 = np.arange(192, dtype=np.uint8).reshape(8, 8, 3)
    assert np.array_equal(read_photo(forged.tiff(rgb8)).pixels, rgb8)


def test_benchmark_images_refuse_a_float_tiff_too(tmp_path):
    from edgesr.data.images import read_rgb8

    (tmp_path / "a.tif").write_bytes(forged.float_tiff())
    with pytest.raises(EdgesrError, match="a.tif: its samples are floating-point"):
        read_rgb8(tmp_path / "a.tif")
