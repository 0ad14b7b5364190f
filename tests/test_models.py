import pytest
import torch

from edgesr.models import VDSR, student_arch, teacher_arch


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts():
    assert n_params(teacher_arch()) == 664_704
    assert n_params(student_arch()) == 166_464


def test_he_init_keeps_signal_alive():
    torch.manual_seed(0)
    net = student_arch()
    x = torch.rand(2, 1, 32, 32)
    residual = net(x) - x
    assert residual.abs().mean() > 1e-2  # PyTorch's default init would give ~1e-8


def test_grown_carries_weights_and_appends_before_tail():
    torch.manual_seed(0)
    small = VDSR(8, depth=20, blocks=6)
    big = small.grown(12)
    assert big.blocks == 12
    for k, v in small.state_dict().items():
        assert torch.equal(big.state_dict()[k], v), k
    assert not torch.equal(big.body[6].conv.weight, big.body[0].conv.weight)


def test_grown_rejects_shrinking():
    with pytest.raises(ValueError):
        VDSR(8, blocks=6).grown(3)


def test_forward_features_match_forward():
    net = VDSR(8, depth=6)
    x = torch.rand(1, 1, 12, 12)
    out, feats = net.forward_features(x)
    assert torch.equal(out, net(x)) and len(feats) == 4 and all((f >= 0).all() for f in feats)
