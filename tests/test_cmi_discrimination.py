"""CMI must be able to tell its samples apart: on the samples of a fresh DFSR generator (what
CMI starts from), with the real teacher's pooled features, the projection head learns
instance discrimination far above chance once the features are standardised, and stays near
chance on the raw features (cosine ~0.98 between samples)."""

import numpy as np
import pytest
import torch

from edgesr.distill.cmi import ProjectionHead, info_nce, instance_accuracy, pooled_features, random_views, standardize
from edgesr.distill.generator import Generator
from edgesr.models.zoo import load_model
from edgesr.ops.resize_torch import imresize

N, VIEWS, STEPS = 32, 4, 250


@pytest.fixture(scope="module")
def view_features():
    """Teacher features of ``VIEWS`` fixed pairs of views of ``N`` samples of a fresh generator."""
    torch.manual_seed(0)
    teacher, _ = load_model("pytorch-vdsr")
    lr = Generator(12).sample(N)
    out = []
    with torch.no_grad():
        for _ in range(VIEWS):
            views = random_views(lr, 2, (0.25, 1.0))
            out.append([pooled_features(teacher.forward_features(imresize(v, 2.0).clamp(0, 1))[1]) for v in views])
    return out


def _train_head(view_features, standardised: bool) -> float:
    torch.manual_seed(1)
    head = ProjectionHead(view_features[0][0].shape[1], 64)
    opt = torch.optim.Adam(head.parameters(), 1e-3)
    for step in range(STEPS):
        glob, local = view_features[step % VIEWS]
        feats = torch.cat([local, glob])
        p_local, p_global = head(standardize(feats) if standardised else feats).chunk(2)
        loss = info_nce(p_local, p_global, N, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accs = []
        for glob, local in view_features:
            feats = torch.cat([local, glob])
            p_local, p_global = head(standardize(feats) if standardised else feats).chunk(2)
            accs.append(float(instance_accuracy(p_local, p_global, N)))
    return float(np.mean(accs))


def test_standardised_features_let_the_head_tell_samples_apart(view_features):
    chance = 1 / N
    raw, std = _train_head(view_features, False), _train_head(view_features, True)
    assert std > 8 * chance, (raw, std)
    assert raw < 4 * chance, (raw, std)


def test_instance_accuracy_counts_own_view_matches():
    a = torch.eye(4)
    assert float(instance_accuracy(a, a, 4)) == 1.0
    assert float(instance_accuracy(a, a.roll(1, dims=0), 4)) == 0.0
