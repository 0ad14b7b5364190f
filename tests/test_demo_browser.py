"""The demo page in a real browser: Debian's headless Chromium driven by Playwright.

A person's path through the page, with the shipped teacher exported to ONNX and ``edgesr demo``
running as on a device (torch unimportable): upload a Set5 image, wait for the result, check
that it is the scale times the input and that its PSNR against the ground truth is the one
``edgesr upscale`` gets for the same file, move the slider, look at the pixels, download; then
errors shown in the page. Screenshots go to ``$EDGESR_TEST_ARTIFACTS`` (else the test's folder).

The browser is the system one (``apt-get install chromium``), never one Playwright downloads.
Where it or Playwright is missing the test skips with the reason; with
``EDGESR_REQUIRE_BROWSER=1`` (CI) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgesr.ops import image_to_y, imresize, modcrop, psnr
from tests.cli_helpers import run_cli
from tests.demo_helpers import bomb_png, demo_process

pytestmark = pytest.mark.integration

SCALE = 2
IMAGE = "butterfly"  # Set5: 256x256 ground truth, 128x128 input; sharp edges show what the model does
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(reason: str):
    if os.environ.get("EDGESR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (EDGESR_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    """A fresh headless Chromium (own profile folder), or a skip/fail saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    exe = os.environ.get("EDGESR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        _missing("no chromium on PATH (apt-get install chromium, or set EDGESR_CHROMIUM)")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True,
                                                       args=CHROMIUM_ARGS, accept_downloads=True,
                                                       viewport={"width": 1100, "height": 900})
        yield context
        context.close()


@pytest.fixture(scope="module")
def teacher_onnx(tmp_path_factory):
    """The shipped pytorch-vdsr teacher as a x2 ``lr`` ONNX artifact (offline: weights are in the package)."""
    from edgesr.export.pipeline import ExportRequest, export_model

    out = tmp_path_factory.mktemp("model") / "pytorch-vdsr_x2.onnx"
    export_model(ExportRequest("pytorch-vdsr", "onnx", SCALE, out=out))
    return out


@pytest.fixture(scope="module")
def lr_image(shared_data, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The Set5 image's MATLAB-bicubic LR version as an RGB PNG, and its (modcropped) ground truth."""
    gt = modcrop(np.asarray(Image.open(shared_data / "Set5" / "gt" / f"{IMAGE}.png").convert("RGB")), SCALE)
    lr = np.moveaxis(imresize(np.moveaxis(gt / 255.0, -1, 0), 1 / SCALE), 0, -1)
    path = tmp_path_factory.mktemp("upload") / f"{IMAGE}.png"
    Image.fromarray(np.round(np.clip(lr, 0, 1) * 255).astype(np.uint8)).save(path)
    return path, gt


def y_psnr(img: np.ndarray, gt: np.ndarray) -> float:
    """The SR protocol: Y (BT.601) on 0..255, ``scale`` pixels shaved."""
    return psnr(image_to_y(img) * 255, image_to_y(gt) * 255, border=SCALE)


def shown_pixels(page, selector: str) -> np.ndarray:
    """An ``<img>``'s pixels as the page has them (drawn to a canvas: the page's CSP lets it
    show blob: images, not fetch them)."""
    w, h, data = page.evaluate("""(sel) => {
        const img = document.querySelector(sel);
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
    }""", selector)
    return np.asarray(data, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def loupe_centre(page, canvas_id: str) -> list[int]:
    return page.evaluate("""(id) => {
        const c = document.getElementById(id);
        return Array.from(c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data);
    }""", canvas_id)


def test_page_in_a_real_browser(chromium, teacher_onnx, lr_image, tmp_path):
    artifacts = Path(os.environ.get("EDGESR_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    lr_path, gt = lr_image
    lr_w, lr_h = Image.open(lr_path).size

    # what the command line makes of the same file, torch unimportable like the server
    cli_out = tmp_path / "cli.png"
    r = run_cli("upscale", str(lr_path), "-o", str(cli_out), "--model", str(teacher_onnx), "--threads", "1",
                block_torch=True)
    assert r.returncode == 0, r.stderr
    cli = np.asarray(Image.open(cli_out))

    with demo_process("--model", str(teacher_onnx), "--port", "0", "--threads", "1") as (proc, port, _):
        page = chromium.new_page()
        js_errors: list[str] = []
        page.on("pageerror", lambda exc: js_errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']")
        assert "pytorch-vdsr" in page.inner_text("#model") and "FP32" in page.inner_text("#model-info")
        assert "onnxruntime" in page.inner_text("#model-info")

        # upload and wait for the result: model on the right, MATLAB bicubic on the left
        page.set_input_files("#file", str(lr_path))
        page.wait_for_selector("#status:has-text('Done')", timeout=120_000)
        assert page.inner_text("#error") == ""
        size = page.evaluate("() => [document.getElementById('img-right').naturalWidth, "
                             "document.getElementById('img-right').naturalHeight]")
        assert size == [SCALE * lr_w, SCALE * lr_h]
        assert f"{lr_w}x{lr_h} → {SCALE * lr_w}x{SCALE * lr_h}" in page.inner_text("#sizes")
        timing = page.inner_text("#timing")
        assert timing.count("s on the server") == 2 and "model" in timing

        # the page's bicubic really is MATLAB bicubic, and the model beats it
        left = shown_pixels(page, "#img-left")
        bicubic = np.round(np.clip(np.moveaxis(imresize(np.moveaxis(np.asarray(Image.open(lr_path)) / 255.0, -1, 0),
                                                        float(SCALE)), 0, -1), 0, 1) * 255)
        assert np.abs(left.astype(int) - bicubic).max() <= 1

        # the split slider, by keyboard-accessible range input and by dragging the image
        page.fill("#split", "25")
        assert "25%" in page.eval_on_selector("#img-right", "e => e.style.clipPath")
        box = page.locator("#compare").bounding_box()
        page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.45 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.45 * box["height"], steps=5)
        page.mouse.up()
        assert abs(float(page.input_value("#split")) - 70) < 2
        assert "70" in page.eval_on_selector("#divider", "e => e.style.left")
        # the pixel loupe shows both sides at the pointed spot, and they differ
        l_px, r_px = loupe_centre(page, "zoom-left"), loupe_centre(page, "zoom-right")
        assert l_px[3] == 255 and l_px != [17, 17, 17, 255] and l_px != r_px

        page.screenshot(path=str(artifacts / "demo.png"), full_page=True)

        # download: same name with a suffix, the same pixels as `edgesr upscale`
        with page.expect_download() as info:
            page.click("#download")
        download = info.value
        assert download.suggested_filename == f"{IMAGE}_x{SCALE}.png"
        download.save_as(tmp_path / "downloaded.png")
        got = np.asarray(Image.open(tmp_path / "downloaded.png"))
        assert got.shape == (SCALE * lr_h, SCALE * lr_w, 3) == gt.shape
        page_psnr, cli_psnr = y_psnr(got, gt), y_psnr(cli, gt)
        assert page_psnr == cli_psnr and np.array_equal(got, cli)
        assert page_psnr > y_psnr(left, gt) + 1.0, (page_psnr, y_psnr(left, gt))  # the real teacher, not bicubic

        # phone width: nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "demo_phone.png"), full_page=True)
        page.set_viewport_size({"width": 1100, "height": 900})

        # errors in plain words, in the page
        notes = tmp_path / "notes.txt"
        notes.write_text("not a picture")
        page.set_input_files("#file", str(notes))
        page.wait_for_selector("#error:not([hidden])")
        assert "Cannot read the image: not a PNG, JPEG" in page.inner_text("#error")
        huge = tmp_path / "huge.png"
        huge.write_bytes(bomb_png(3000, 2000))
        page.set_input_files("#file", str(huge))
        page.wait_for_selector("#error:has-text('MP allowed')")
        assert "3000x2000 (6.0 MP), more than the 4.0 MP allowed" in page.inner_text("#error")
        page.screenshot(path=str(artifacts / "demo_error.png"))
        assert js_errors == []
        page.close()
    print(f"\nPSNR {IMAGE} x{SCALE}: page {page_psnr:.3f} dB = edgesr upscale {cli_psnr:.3f} dB "
          f"(bicubic {y_psnr(left, gt):.3f} dB); screenshots in {artifacts}")
