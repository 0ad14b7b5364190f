"""An exponential moving average of a network's weights (Polyak averaging), kept beside the
network a run trains: the average of the last few thousand steps' weights can sit lower in a
valley than the weights of any one step, which still move with each batch's gradient."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``net``'s weights averaged over the steps since this was made (a copy of ``net`` now)."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        #: the averaged network: what validation and the saved student use
        self.net = copy.deepcopy(net).requires_grad_(False)
        #: updates so far; the first ones average over fewer steps, so that the refitted or
        #: pruned weights a run starts from do not weigh on the average for thousands of steps
        self.updates = 0

    def update(self, net: nn.Module) -> None:
        """Move the average towards ``net``'s weights now (parameters and buffers alike)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for avg, cur in zip(self._tensors(self.net), self._tensors(net), strict=True):
                if avg.is_floating_point():
                    avg.lerp_(cur, 1 - d)
                else:
                    avg.copy_(cur)
        self.updates += 1

    @staticmethod
    def _tensors(net: nn.Module) -> list[torch.Tensor]:
        return [*net.parameters(), *net.buffers()]

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        updates = state.get("updates") if isinstance(state, dict) else None
        if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
            raise ValueError("the student's weight average holds no count of updates")
        self.net.load_state_dict(state["net"])
        self.updates = updates
