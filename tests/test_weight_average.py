"""The student's weight average (``student.ema``): the recursion it keeps, its first steps, its
checkpoint state."""

import pytest
import torch
from torch import nn

from edgesr.train.weight_average import WeightAverage


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 1))


def test_the_average_follows_its_recursion_with_shorter_memory_at_first():
    net = _net()
    avg = WeightAverage(net, decay=0.5)
    expected = [p.detach().clone() for p in net.parameters()]
    for n in range(6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        avg.update(net)
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, 0.31, 0.38, then 0.5
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, net.parameters())]
    assert avg.updates == 6
    for e, a in zip(expected, avg.net.parameters()):
        torch.testing.assert_close(a, e)
    assert not any(p.requires_grad for p in avg.net.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_a_shared_weight_is_averaged_once():
    """A network whose modules share a weight (as a shared-body ScaleSet does) keeps it shared."""
    net = _net()
    net.append(net[0])  # the same conv twice
    avg = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        net[0].weight.mul_(2)
    avg.update(net)
    assert avg.net[0].weight is avg.net[3].weight
    torch.testing.assert_close(avg.net[0].weight, 0.1 * net[0].weight / 2 + 0.9 * net[0].weight)


def test_state_round_trips_and_a_bad_count_is_refused():
    net = _net()
    a = WeightAverage(net, 0.9)
    with torch.no_grad():
        next(net.parameters()).add_(1)
    a.update(net)
    b = WeightAverage(_net(), 0.9)
    b.load_state_dict(a.state_dict())
    assert b.updates == 1 and all(torch.equal(x, y) for x, y in zip(a.net.parameters(), b.net.parameters()))
    for bad in ({"net": a.net.state_dict(), "updates": -1}, {"net": a.net.state_dict(), "updates": 1.5},
                {"net": a.net.state_dict()}, [1, 2]):
        with pytest.raises(ValueError, match="count of updates"):
            b.load_state_dict(bad)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_a_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), decay)
