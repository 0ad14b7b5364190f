"""The closed-form refit: exact when nothing is pruned, and each fit lowers the error it targets."""

import torch
import torch.nn.functional as F

from edgesr.models import VDSR
from edgesr.models.prune import prune_to_width
from edgesr.models.refit import channel_importance, layerwise_forward, refit_student, solve_conv


def _teacher(width: int = 8, depth: int = 6, seed: int = 0) -> VDSR:
    torch.manual_seed(seed)
    return VDSR(width, depth).eval().requires_grad_(False)


def _inputs(n: int = 6, size: int = 20, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)


def test_full_width_refit_gives_back_the_teacher():
    teacher = _teacher()
    result = refit_student(teacher, teacher.width, _inputs(), ridge=0.0)
    for (name, w_t), w_s in zip(teacher.state_dict().items(), result.student.state_dict().values()):
        assert torch.allclose(w_s, w_t, atol=1e-3, rtol=1e-3), name  # float32 normal equations
    x = _inputs(2, seed=5)
    assert (result.student(x) - teacher(x)).abs().max() < 1e-4
    assert max(result.errors) < 1e-8


def test_teacher_output_is_returned_for_caching():
    teacher = _teacher()
    x = _inputs()
    result = refit_student(teacher, 4, x)
    assert torch.allclose(result.teacher_output, teacher(x), atol=1e-6)
    assert torch.equal(result.teacher_output, layerwise_forward(teacher, x))  # a resume recomputes it


@torch.no_grad()
def test_each_refitted_layer_beats_the_pruned_weights_on_its_own_target():
    """Layer by layer, on the same (student-own) inputs, the fit lowers the error it minimises
    below that of the teacher's own filters for those channels (what pruning would keep)."""
    teacher, x = _teacher(width=12, depth=6), _inputs(8)
    width = 6
    refit = refit_student(teacher, width, x, ridge=1e-6).student
    convs = teacher.convs()
    s_act, t_act = x, x
    keeps = []
    for i, t_conv in enumerate(convs[:-1]):
        t_pre = F.conv2d(t_act, t_conv.weight, padding=1)
        keep = channel_importance(torch.relu(t_pre), convs[i + 1].weight).argsort(descending=True)[:width]
        keeps.append(keep.sort().values)
        target = t_pre[:, keeps[-1]]
        fitted = refit.convs()[i].weight
        baseline = t_conv.weight[keeps[-1]] if i == 0 else t_conv.weight[keeps[-1]][:, keeps[-2]]
        err_fit = float((F.conv2d(s_act, fitted, padding=1) - target).square().mean())
        err_base = float((F.conv2d(s_act, baseline, padding=1) - target).square().mean())
        if i == 0:  # the head sees the same input as the teacher's: its own filters are already exact
            assert err_fit <= err_base + 1e-9
        else:
            assert err_fit < 0.9 * err_base, (i, err_fit, err_base)
        s_act, t_act = torch.relu(F.conv2d(s_act, fitted, padding=1)), torch.relu(t_pre)


@torch.no_grad()
def test_refit_lifts_a_pruned_student_towards_the_teacher():
    teacher, x = _teacher(width=12, depth=8), _inputs(8, 24)
    held_out = _inputs(4, 24, seed=9)
    pruned = prune_to_width(teacher, 6)
    refit = refit_student(teacher, 6, x).student
    err = lambda s: float((s(held_out) - teacher(held_out)).square().mean())  # noqa: E731
    assert err(refit) < 0.5 * err(pruned)


def test_early_progressive_stage_has_fewer_blocks_and_fits_the_whole_residual():
    teacher, x = _teacher(width=8, depth=8), _inputs()
    result = refit_student(teacher, 4, x, blocks=2)
    assert result.student.blocks == 2 and len(result.errors) == 4  # head, 2 blocks, tail
    assert torch.allclose(result.teacher_output, teacher(x), atol=1e-6)


def test_solve_conv_recovers_a_known_conv_from_a_pixel_subset():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 4, 3, 3, generator=g)
    inputs = torch.randn(4, 4, 16, 16, generator=g)
    targets = F.conv2d(inputs, w, padding=1)
    got = solve_conv(inputs, targets, ridge=0.0, pixels=0.5, generator=g)
    assert torch.allclose(got, w, atol=1e-4)


def test_sampled_columns_are_the_unfold_columns_at_the_kept_positions():
    from edgesr.models.refit import _sampled_columns

    x = torch.randn(3, 4, 9, 7)
    tgt = torch.randn(3, 2, 9 * 7)
    g = torch.Generator().manual_seed(1)
    cols, t = _sampled_columns(x, tgt, 0.3, g)
    keep = torch.randperm(63, generator=torch.Generator().manual_seed(1))[: int(0.3 * 63)]
    full = F.unfold(x, 3, padding=1)
    torch.testing.assert_close(cols, full[:, :, keep])
    torch.testing.assert_close(t, tgt[:, :, keep])


def test_refit_records_the_teacher_channels_each_block_stands_for():
    """The correspondence the feature loss uses: at full width every block keeps all channels
    and its features are the teacher's (loss 0); a narrow student's features are far closer to
    the channels it was fitted to than to any other choice of as many channels."""
    from edgesr.distill.losses import feature_loss

    teacher = _teacher()
    x = _inputs()
    full = refit_student(teacher, teacher.width, x, ridge=0.0)
    assert len(full.kept) == teacher.blocks
    assert all(torch.equal(k, torch.arange(teacher.width)) for k in full.kept)
    with torch.no_grad():
        t_feats, s_feats = teacher.forward_features(x)[1], full.student.forward_features(x)[1]
    assert float(feature_loss(t_feats, s_feats, torch.stack(full.kept))) < 1e-3

    narrow = refit_student(teacher, 4, x)
    kept = torch.stack(narrow.kept)
    assert kept.shape == (teacher.blocks, 4)
    assert all(bool((k[1:] > k[:-1]).all()) and int(k.max()) < teacher.width for k in kept)
    with torch.no_grad():
        s_feats = narrow.student.forward_features(x)[1]
    fitted = float(feature_loss(t_feats, s_feats, kept))
    others = torch.stack([torch.tensor([c for c in range(teacher.width) if c not in k][:4]) for k in kept])
    assert fitted < 0.5 * float(feature_loss(t_feats, s_feats, others))
