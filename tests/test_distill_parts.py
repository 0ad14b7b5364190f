import math

import pytest
import torch

from edgesr.distill.cmi import MemoryBank, info_nce, random_views
from edgesr.distill.recipe import ProgressiveConfig
from edgesr.distill.stages import StagePlan
from edgesr.train.optim import OptimConfig, lr_at
from tests.distill_helpers import tiny_distiller


def _generator_grad(d, term: str) -> float:
    g = d.gens[2]
    for p in g.parameters():
        p.grad = None
    losses = d.generator_losses(2, g.noise(4))
    losses[term].backward()
    return sum(p.grad.abs().sum().item() for p in g.parameters() if p.grad is not None)


@pytest.mark.parametrize("term", ["adv", "rec", "cr"])
def test_every_generator_term_reaches_the_generator(term):
    d = tiny_distiller()
    d.banks[2].add(torch.randn(4, d.banks[2].data.shape[1]))  # some negatives in the bank
    assert _generator_grad(d, term) > 0


@pytest.mark.parametrize("term", ["adv", "cr"])
def test_rounded_bicubic_cuts_the_gradient(term):
    """The DFSR reference's 8-bit rounding: adversarial and contrastive terms send nothing."""
    d = tiny_distiller(generator={"lr_sizes": [8, 8], "channels": 8, "z_dim": 16, "round_bicubic": True})
    assert _generator_grad(d, term) == 0


def test_kd_and_reconstruction_values():
    from edgesr.distill.losses import adversarial_loss, kd_loss, reconstruction_loss

    t, s = torch.full((1, 1, 8, 8), 0.5), torch.full((1, 1, 8, 8), 0.25)
    assert kd_loss(t, s).item() == pytest.approx(0.25)
    assert kd_loss(t, s, "mse").item() == pytest.approx(0.0625)
    assert adversarial_loss(torch.tensor(0.25)).item() == pytest.approx(-math.log(1.25))
    # a constant HR image downscales to the same constant: L_R = |0.5 - 0.3|
    assert reconstruction_loss(t, torch.full((1, 1, 4, 4), 0.3), 2).item() == pytest.approx(0.2)


def test_info_nce_matches_hand_computation():
    # 2 batch rows + 1 bank row, 2-D embeddings
    local = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    glob = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    tau = 0.5
    sims = local @ glob.t() / tau

    def ce(row: int) -> float:
        return -sims[row, row].item() + math.log(sum(math.exp(v) for v in sims[row].tolist()))

    expected = (ce(0) + ce(1)) / 2 + ce(2)
    assert info_nce(local, glob, batch=2, temperature=tau).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_global_view_is_detached():
    local = torch.randn(3, 4, requires_grad=True)
    glob = torch.randn(3, 4, requires_grad=True)
    info_nce(local, glob, 3, 0.1).backward()
    assert local.grad.abs().sum() > 0 and glob.grad is None


def test_memory_bank_fifo_and_batch_multiple():
    bank = MemoryBank(capacity=4, dim=1, batch=2)
    for v in (1.0, 2.0, 3.0):
        bank.add(torch.full((2, 1), v))
    assert bank.data.flatten().tolist() == [3.0, 3.0, 2.0, 2.0] and bank.count == 4
    assert sorted(bank.sample(10).flatten().tolist()) == [2.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        MemoryBank(capacity=5, dim=1, batch=2)
    with pytest.raises(ValueError):
        bank.add(torch.zeros(3, 1))


def test_views_shapes_flips_and_gradient():
    x = torch.rand(6, 1, 12, 12, requires_grad=True)
    glob, local = random_views(x, pad=0, local_scale=(1.0, 1.0))
    assert glob.shape == local.shape == x.shape
    for i in range(6):  # no padding and full-size crops: each view is the image or its mirror
        assert torch.allclose(glob[i], x[i], atol=1e-5) or torch.allclose(glob[i], x[i].flip(-1), atol=1e-5)
    (glob.sum() + local.sum()).backward()
    assert x.grad.abs().sum() > 0
    _, l2 = random_views(x, pad=3, local_scale=(0.25, 0.5))
    assert not torch.allclose(l2, x)


def test_stage_plan_blocks_from_stage_index():
    plan = StagePlan(ProgressiveConfig(stages=3, steps=(10, 20, 30)), n_blocks=18)
    assert [plan.blocks(k) for k in range(3)] == [6, 12, 18]
    assert [plan.stage_of(s) for s in (0, 9, 10, 29, 30, 59)] == [0, 0, 1, 1, 2, 2]
    assert plan.step_in_stage(35) == 5 and plan.total == 60


def test_lr_schedules():
    assert lr_at(OptimConfig(lr=0.1, schedule="step", step_every=10, gamma=0.1), 25, 100) == pytest.approx(0.001)
    cos = OptimConfig(lr=1.0, schedule="cosine")
    assert lr_at(cos, 0, 100) == pytest.approx(1.0) and lr_at(cos, 100, 100) == pytest.approx(0.0)


def test_slow_convs_put_each_networks_first_convs_in_a_slower_group():
    """The first slow_convs convs of each network (a shared body once) take slow_lr times the
    learning rate, every other parameter the full rate, and nothing is in two groups."""
    from edgesr.distill.trainer import param_groups
    from edgesr.models.registry import create_student
    from edgesr.models.srnet import ScaleSet
    from edgesr.models.vdsr import VDSR
    from edgesr.train.optim import build_optimizer, set_lr

    vdsr = VDSR(4, depth=6)
    groups = param_groups(vdsr, 2, 0.1)
    assert [id(p) for p in groups[1]["params"]] == [id(vdsr.head.weight), id(vdsr.body[0].conv.weight)]
    opt = build_optimizer(groups, OptimConfig(name="adam", lr=1e-3))
    set_lr(opt, 1e-3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])
    assert param_groups(vdsr, 0, 0.1) == [{"params": list(vdsr.parameters())}]
    nets = {s: create_student("lr-plain", s, 4, 5) for s in (2, 3)}
    shared = ScaleSet(nets, shared_body=True)
    groups = param_groups(shared, 2, 0.0)
    slow = {id(p) for p in groups[1]["params"]}
    expected = {id(p) for s in (2, 3) for conv in nets[s].convs()[:2] for p in conv.parameters()}
    assert slow == expected and len(groups[1]["params"]) == len(expected) == 6  # 2 heads, 1 shared block
    assert len(groups[0]["params"]) + len(slow) == len(list(shared.parameters()))
    assert not slow & {id(p) for p in groups[0]["params"]}


def test_loss_margin_leaves_the_crop_border_out_of_the_loss():
    """A student wrong only within the margin has no loss; the margin must leave a crop."""
    from edgesr.distill.losses import inner, kd_loss
    from edgesr.errors import EdgesrError

    target = torch.rand(2, 1, 12, 12)
    student = target.clone()
    student[..., :3, :] += 1.0
    student[..., :, -3:] -= 1.0
    assert kd_loss(inner(target, 3), inner(student, 3)) == 0 < kd_loss(inner(target, 2), inner(student, 2))
    assert inner(target, 3).shape[-2:] == (6, 6) and inner(target, 0) is target
    with pytest.raises(EdgesrError, match="samples.loss_margin.*48-px crop"):
        tiny_distiller(samples={"priors": ["dead-leaves"], "pool_images": 2, "patch": 48, "loss_margin": 24},
                       student={"width": 4, "depth": 6, "init": "teacher-refit"}, progressive={"stages": 1})


def test_growth_carries_student_weights_exactly():
    d = tiny_distiller()
    for _ in range(3):
        d.train_step()
        d.step += 1
    before = {k: v.clone() for k, v in d.student.state_dict().items()}
    d._grow(1)
    after = d.student.state_dict()
    assert set(after) - set(before) == {"body.2.conv.weight", "body.3.conv.weight"}
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_unaugment_undoes_each_symmetry_of_the_square():
    from edgesr.samples.pool import augment, unaugment

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    seen = set()
    for k in range(8):
        assert torch.equal(unaugment(augment(x, k), k), x), k
        seen.add(tuple(augment(x[..., :4], k).flatten().tolist()))
    assert len(seen) == 8  # eight different symmetries, not one counted twice


def test_the_symmetry_average_is_equivariant_and_keeps_an_equivariant_function():
    """A function that prefers a direction (a one-sided difference) averaged over the eight
    symmetries commutes with each of them; an equivariant one (a blur with a symmetric kernel)
    comes out unchanged, and one view is the function itself."""
    from edgesr.samples.pool import augment, symmetry_average

    torch.manual_seed(0)
    x = torch.rand(2, 1, 6, 6)
    one_sided = lambda t: t - torch.roll(t, 1, dims=-1)  # noqa: E731
    blur = lambda t: torch.nn.functional.avg_pool2d(t, 3, 1, 1)  # noqa: E731
    assert torch.equal(symmetry_average(one_sided, x, 1), one_sided(x))
    avg = symmetry_average(one_sided, x, 8)
    assert not torch.allclose(avg, one_sided(x), atol=1e-3)
    for k in range(8):
        assert torch.allclose(symmetry_average(one_sided, augment(x, k), 8), augment(avg, k), atol=1e-6), k
    assert torch.allclose(symmetry_average(blur, x, 8), blur(x), atol=1e-6)
    assert torch.equal(symmetry_average(one_sided, x, 4, first=one_sided(x)), symmetry_average(one_sided, x, 4))
