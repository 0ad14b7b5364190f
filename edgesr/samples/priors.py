"""Procedural image priors: ground-truth-like images made from nothing but random numbers.

Data-free distillation needs inputs on which the teacher behaves as it does on photographs.
Dead leaves (Matheron; Lee, Mumford and Huang 2001: occluding disks with a power-law size
distribution) reproduce what matters for super-resolution: edges at every scale and
orientation, occlusions, flat regions, and the 1/f^2 power spectrum of natural images. They
cost milliseconds, involve no image of anyone's, and make the refit, the training pool and the
INT8 calibration of a data-free run. Pink noise (random phase, 1/f^alpha spectrum) has the
spectrum without the edges. NumPy only: the images are reproducible from a seed on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

#: the luma range of 8-bit video Y (BT.601), which is what the teacher was trained on
Y_LOW, Y_HIGH = 16 / 255, 235 / 255

Prior = Callable[[int, int, np.random.Generator], np.ndarray]


def dead_leaves(n: int, size: int, rng: np.random.Generator, r_min: float = 1.0, r_max: float = 40.0,
                alpha: float = 3.0, coverage: float = 12.0, supersample: int = 1, texture: float = 0.0
                ) -> np.ndarray:
    """``n`` dead-leaves images ``(n, size, size)`` in the Y range, float32.

    Disks of radius drawn with density ~ r^-alpha on [r_min, r_max], uniform grey levels, centres
    uniform over the image and a margin; the first disk drawn is in front. ``coverage`` is the
    expected number of disks over each pixel, which leaves a share of about e^-coverage of the
    pixels uncovered; those take the image's mean. ``supersample`` > 1 renders at that many
    times the size and averages blocks down: edges anti-aliased as a camera's sensor integrates
    them, rather than staircases. ``texture`` > 0 gives each disk a linear shading and, for
    some, an oriented grating or a patch of pink noise, of amplitudes up to ``texture``: the
    smooth gradients and fine periodic detail that flat disks lack.
    """
    out = np.empty((n, size, size), np.float32)
    k = supersample
    for i in range(n):
        img = _one_dead_leaves(size * k, rng, r_min * k, r_max * k, alpha, coverage, texture, k)
        out[i] = img.reshape(size, k, size, k).mean(axis=(1, 3)) if k > 1 else img
    return out


def _one_dead_leaves(size: int, rng: np.random.Generator, r_min: float, r_max: float, alpha: float,
                     coverage: float, texture: float = 0.0, pixel: int = 1) -> np.ndarray:
    span = size + r_max  # centres range over the image and half a largest disk around it
    a1 = 1.0 - alpha
    mean_area = np.pi * _mean_r2(r_min, r_max, alpha)
    count = int(np.ceil(coverage * span * span / mean_area))
    u = rng.random(count)
    radius = (r_min**a1 + u * (r_max**a1 - r_min**a1)) ** (1.0 / a1)
    centre = rng.random((count, 2)) * span - r_max / 2
    grey = rng.uniform(Y_LOW, Y_HIGH, count).astype(np.float32)
    # every (pixel, disk) pair inside a disk, disks grouped by the square stencil that holds them
    reach = np.ceil(radius).astype(np.int64)
    pixels, disks = [], []
    for r in np.unique(reach):
        idx = np.nonzero(reach == r)[0]
        off = np.arange(-r, r + 1)
        dy, dx = (a.ravel() for a in np.meshgrid(off, off, indexing="ij"))
        cy = np.floor(centre[idx, 0])[:, None] + dy
        cx = np.floor(centre[idx, 1])[:, None] + dx
        inside = (cy + 0.5 - centre[idx, 0, None]) ** 2 + (cx + 0.5 - centre[idx, 1, None]) ** 2 \
            <= radius[idx, None] ** 2
        inside &= (cy >= 0) & (cy < size) & (cx >= 0) & (cx < size)
        pixels.append((cy[inside] * size + cx[inside]).astype(np.int64))
        disks.append(np.broadcast_to(idx[:, None], inside.shape)[inside])
    pix, disk = np.concatenate(pixels), np.concatenate(disks)
    order = np.argsort(-disk, kind="stable")  # back to front: the front-most disk is written last
    front = np.full(size * size, count, np.int64)
    front[pix[order]] = disk[order]
    covered = front < count
    img = np.empty(size * size, np.float32)
    img[covered] = grey[front[covered]]
    if texture > 0 and covered.any():
        img[covered] += _disk_textures(size, rng, centre, radius, texture, pixel, front[covered],
                                       np.nonzero(covered)[0])
        np.clip(img, Y_LOW, Y_HIGH, out=img)
    img[~covered] = img[covered].mean() if covered.any() else 0.5 * (Y_LOW + Y_HIGH)
    return img.reshape(size, size)


def _disk_textures(size: int, rng: np.random.Generator, centre: np.ndarray, radius: np.ndarray,
                   amplitude: float, pixel: int, disk: np.ndarray, where: np.ndarray) -> np.ndarray:
    """What each disk adds to its flat grey at the pixels ``where`` (``disk`` covers each): a
    linear ramp whose ends differ by up to about ``amplitude``, and for a third of the disks a
    grating (0.02-0.4 cycles a final pixel, any orientation) or a patch of pink noise, of
    amplitude up to ``amplitude``. ``pixel`` is the side of a final pixel in rendered ones."""
    count = len(radius)
    y = (where // size).astype(np.float32) + 0.5 - centre[disk, 0]
    x = (where % size).astype(np.float32) + 0.5 - centre[disk, 1]
    slope = rng.normal(0.0, amplitude / 4, (count, 2)) / np.maximum(radius, 1.0)[:, None]
    out = slope[disk, 0] * y + slope[disk, 1] * x
    kind = rng.integers(0, 6, count)  # 0: grating, 1: noise, else flat
    freq = rng.uniform(0.02, 0.4, count) * 2 * np.pi / pixel
    theta = rng.uniform(0, np.pi, count)
    phase = rng.uniform(0, 2 * np.pi, count)
    strength = rng.uniform(0, amplitude, count)[disk]
    grating = strength * np.sin(freq[disk] * (np.cos(theta[disk]) * x + np.sin(theta[disk]) * y) + phase[disk])
    noise = 0.5 * strength * _pink_field(size, rng, (1.6, 2.4)).ravel()[where]
    out += np.where(kind[disk] == 0, grating, 0.0) + np.where(kind[disk] == 1, noise, 0.0)
    return out.astype(np.float32)


def _mean_r2(r_min: float, r_max: float, alpha: float) -> float:
    """E[r^2] for the density ~ r^-alpha on [r_min, r_max]."""
    def integral(p: float) -> float:  # integral of r^(p - alpha) dr
        e = p - alpha + 1
        return np.log(r_max / r_min) if abs(e) < 1e-12 else (r_max**e - r_min**e) / e
    return integral(2.0) / integral(0.0)


def _pink_field(size: int, rng: np.random.Generator, alpha: tuple[float, float]) -> np.ndarray:
    """A ``(size, size)`` random-phase field with a 1/f^a power spectrum, ``a`` drawn from the
    ``alpha`` range after the phases; mean 0, std 1."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (rng.uniform(*alpha) / 2)
    spec[0, 0] = 0.0
    img = np.fft.irfft2(spec, s=(size, size))
    return (img - img.mean()) / (img.std() + 1e-12)


def pink_noise(n: int, size: int, rng: np.random.Generator, alpha: tuple[float, float] = (1.6, 2.4),
               contrast: tuple[float, float] = (0.04, 0.2)) -> np.ndarray:
    """``n`` images of random-phase noise with a 1/f^alpha power spectrum, in the Y range."""
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        img = _pink_field(size, rng, alpha)
        out[i] = np.clip(rng.uniform(0.25, 0.75) + img * rng.uniform(*contrast), Y_LOW, Y_HIGH)
    return out


#: the priors a recipe can name
PRIORS: dict[str, Prior] = {
    "dead-leaves": dead_leaves,
    "dead-leaves-aa": partial(dead_leaves, supersample=2),
    "textured-leaves": partial(dead_leaves, supersample=2, texture=0.15),
    "pink-noise": pink_noise,
}


def prior_images(priors: Sequence[str], weights: Sequence[float], n: int, size: int, seed: int) -> np.ndarray:
    """``n`` images ``(n, size, size)`` from the named priors, in proportion to ``weights``
    (largest remainders), reproducible from ``seed``."""
    w = np.asarray(weights if weights else [1.0] * len(priors), np.float64)
    share = n * w / w.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[: n - counts.sum()]] += 1
    rng = np.random.default_rng(seed)
    parts = [PRIORS[name](int(k), size, rng) for name, k in zip(priors, counts) if k]
    return np.concatenate(parts) if parts else np.zeros((0, size, size), np.float32)
