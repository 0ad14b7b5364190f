"""DFSR's per-scale generators: noise z -> an LR Y patch in [0, 1].

z (N(0, I), ``z_dim``) -> Linear -> ``channels x s0 x s0`` -> InstanceNorm ->
2 x [nearest x2, conv3x3, InstanceNorm, LeakyReLU(0.2)] -> conv3x3 -> tanh -> (t + 1) / 2,
with ``s0 = lr_size / 4``. One generator per scale, sized so that every HR patch has the same
size (LR 24/16/12 for x2/x3/x4 -> HR 48).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, lr_size: int, z_dim: int = 256, channels: int = 128) -> None:
        super().__init__()
        if lr_size % 4:
            raise ValueError(f"generator LR size must be a multiple of 4, got {lr_size}")
        self.lr_size, self.z_dim, self.channels = lr_size, z_dim, channels
        self.s0 = lr_size // 4
        self.fc = nn.Linear(z_dim, channels * self.s0 * self.s0)
        half = channels // 2
        self.net = nn.Sequential(
            nn.InstanceNorm2d(channels, affine=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=True),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, half, 3, padding=1),
            nn.InstanceNorm2d(half, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(half, 1, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.channels, self.s0, self.s0)
        return (torch.tanh(self.net(h)) + 1) / 2

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=self.fc.weight.device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` LR patches ``(n, 1, lr, lr)`` in [0, 1]."""
        return self(self.noise(n, generator))

    def config(self) -> dict:
        return {"lr_size": self.lr_size, "z_dim": self.z_dim, "channels": self.channels}


GENERATORS_FILE = "generators.safetensors"


def save_generators(gens: dict[int, Generator], run_dir: str | Path) -> Path:
    """All scales' generators in one safetensors file (keys ``x<s>.<param>``), atomically."""
    from safetensors.torch import save

    from ..io import write_bytes

    state = {f"x{s}.{k}": v.detach().float().cpu().contiguous() for s, g in gens.items()
             for k, v in g.state_dict().items()}
    meta = {"configs": json.dumps({str(s): g.config() for s, g in gens.items()})}
    path = Path(run_dir) / GENERATORS_FILE
    write_bytes(path, save(state, metadata=meta))
    return path


def load_generators(run_dir: str | Path, device: str | torch.device = "cpu") -> dict[int, Generator]:
    """The generators a distillation run saved, keyed by scale (eval mode). The file may come
    from anyone: each scale's sizes must match its weights (so nothing larger than the file is
    built), and anything else wrong is a one-line error."""
    from safetensors import safe_open

    from ..errors import EdgesrError

    path = Path(run_dir) / GENERATORS_FILE
    if not path.is_file():
        raise EdgesrError(f"{run_dir} has no {GENERATORS_FILE}: is it an edgesr distill run folder?")
    try:
        with safe_open(str(path), framework="pt") as f:
            configs = json.loads((f.metadata() or {})["configs"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        gens = {}
        for s, cfg in configs.items():
            prefix = f"x{s}."
            lr, z_dim, channels = (int(cfg[k]) for k in ("lr_size", "z_dim", "channels"))
            fc = tensors[prefix + "fc.weight"]
            if lr < 4 or lr % 4 or channels < 2 or tuple(fc.shape) != (channels * (lr // 4) ** 2, z_dim):
                raise ValueError(f"x{s}'s sizes do not match its weights")
            g = Generator(lr, z_dim, channels)
            g.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            gens[int(s)] = g.to(device).eval()
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise EdgesrError(f"{path} is not a generators file of edgesr distill "
                          f"({type(exc).__name__}{f': {detail}' if detail else ''})") from None
    return gens
