import numpy as np
import pytest
import torch

from edgesr.data.benchmark import degrade
from edgesr.ops import contributions, image_to_y, imresize, modcrop
from edgesr.ops.resize_torch import imresize as imresize_t


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4, 0.7, 1.5])
def test_torch_matches_numpy(scale):
    x = np.random.default_rng(0).random((2, 3, 23, 29))
    ref = imresize(x, scale)
    out = imresize_t(torch.from_numpy(x), scale).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_weights_partition_unity_and_match_matlab_sizes():
    w, idx = contributions(12, 4, 1 / 3)
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert idx.min() >= 0 and idx.max() < 12
    assert imresize(np.zeros((255, 252)), 1 / 3).shape == (85, 84)


def test_constant_image_stays_constant():
    x = np.full((17, 19), 0.37)
    for s in (2, 3, 1 / 4):
        np.testing.assert_allclose(imresize(x, s), 0.37, atol=1e-14)


@pytest.mark.parametrize("scale", [1 / 3, 4.0])
def test_gradcheck(scale):
    x = torch.rand(1, 1, 9, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize_t(t, scale), (x,))


def test_batched_equals_single():
    x = torch.rand(5, 1, 24, 24, dtype=torch.float64)
    batched = imresize_t(x, 2)
    single = torch.cat([imresize_t(x[i : i + 1], 2) for i in range(5)])
    assert torch.equal(batched, single)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_matches_cpu():
    x = torch.rand(4, 1, 24, 24, dtype=torch.float64)
    for s in (2, 1 / 4):
        torch.testing.assert_close(imresize_t(x.cuda(), s).cpu(), imresize_t(x, s), atol=1e-12, rtol=0)


@pytest.mark.integration
def test_pipeline_reproduces_prepared_bicubic(shared_data):
    """Every image and scale of Set5 (cumulative crop) and Set14 (per-scale crop), to 1e-6."""
    from PIL import Image

    worst = 0.0
    for set_name in ("Set5", "Set14"):
        for png in sorted((shared_data / set_name / "gt").glob("*.png")):
            img = np.asarray(Image.open(png))
            cur = img
            for s in (2, 3, 4):
                cur = modcrop(cur if set_name == "Set5" else img, s)
                y = image_to_y(cur)
                ref = np.load(shared_data / set_name / "y" / f"{png.stem}_x{s}.npz")
                _, bic = degrade(y, s)
                worst = max(worst, np.abs(255 * y - ref["gt_y"]).max(), np.abs(255 * bic - ref["bicubic_y"]).max())
    assert worst < 1e-6, worst
