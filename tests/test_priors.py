"""The procedural priors: images in the teacher's luma range, reproducible from a seed, and
with the structure each one claims (flat disks, anti-aliased edges, textured interiors)."""

import numpy as np
import pytest

from edgesr.samples.priors import PRIORS, Y_HIGH, Y_LOW, prior_images


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_prior_images_are_reproducible_luma_images(name):
    a = prior_images([name], [], 3, 32, seed=5)
    assert a.shape == (3, 32, 32) and a.dtype == np.float32
    assert a.min() >= Y_LOW - 1e-6 and a.max() <= Y_HIGH + 1e-6
    np.testing.assert_array_equal(a, prior_images([name], [], 3, 32, seed=5))
    assert not np.array_equal(a, prior_images([name], [], 3, 32, seed=6))
    assert a.std(axis=(1, 2)).min() > 0.02  # every image has content


def _flat_share(images: np.ndarray) -> float:
    """Share of horizontally neighbouring pixels that are exactly equal."""
    return float((images[:, :, 1:] == images[:, :, :-1]).mean())


def test_leaves_are_flat_disks_and_the_variants_add_what_they_claim():
    rng = np.random.default_rng
    flat = _flat_share(PRIORS["dead-leaves"](4, 48, rng(0)))
    antialiased = _flat_share(PRIORS["dead-leaves-aa"](4, 48, rng(0)))
    textured = _flat_share(PRIORS["textured-leaves"](4, 48, rng(0)))
    # flat disks: most neighbours share a grey; anti-aliasing blends the edge pixels only;
    # shading and textures leave almost no two neighbours equal
    assert flat > 0.6
    assert 0.3 < antialiased < flat - 0.1
    assert textured < 0.05


def test_mixture_counts_follow_the_weights():
    images = prior_images(["dead-leaves", "pink-noise"], [3, 1], 8, 16, seed=0)
    assert images.shape == (8, 16, 16)
    # the first 6 come from dead leaves (piecewise flat), the last 2 from pink noise
    assert min(_flat_share(images[i:i + 1]) for i in range(6)) > 0.3
    assert max(_flat_share(images[i:i + 1]) for i in range(6, 8)) < 0.2
