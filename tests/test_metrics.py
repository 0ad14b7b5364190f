import math

import numpy as np
import pytest

from edgesr.ops import psnr, rgb_to_ycbcr, ssim, ycbcr_to_rgb


def test_psnr_known_value_clip_and_shave():
    gt = np.full((10, 10), 100.0)
    pred = gt + 10.0
    assert psnr(pred, gt) == pytest.approx(20 * math.log10(255 / 10))
    pred[0, :] = 1000.0  # clipped to 255, then shaved away
    assert psnr(pred, gt, border=1) == pytest.approx(20 * math.log10(255 / 10))
    assert psnr(gt, gt) == 100.0


def test_ycbcr_roundtrip_and_range():
    rgb = np.random.default_rng(1).random((8, 8, 3))
    ycc = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycbcr_to_rgb(ycc), rgb, atol=1e-12)
    white = rgb_to_ycbcr(np.ones((1, 1, 3)))[0, 0]
    np.testing.assert_allclose(white * 255, [235, 128, 128], atol=1e-9)


def _skimage_ssim(a, b):
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def test_ssim_matches_skimage_random():
    rng = np.random.default_rng(2)
    gt = rng.random((40, 50)) * 255
    pred = np.clip(gt + rng.normal(0, 10, gt.shape), 0, 255)
    assert ssim(pred, gt) == pytest.approx(_skimage_ssim(pred, gt), abs=1e-4)
    assert ssim(gt, gt) == pytest.approx(1.0)


@pytest.mark.integration
def test_ssim_matches_skimage_real(shared_data):
    for name in ("baby", "butterfly"):
        d = np.load(shared_data / "Set5" / "y" / f"{name}_x3.npz")
        gt, bic = d["gt_y"][3:-3, 3:-3], d["bicubic_y"][3:-3, 3:-3]
        assert ssim(bic, gt) == pytest.approx(_skimage_ssim(bic, gt), abs=1e-4)
