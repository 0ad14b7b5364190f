"""Several training processes on this CPU, started as torchrun starts them (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in the environment), on gloo;
and the tiny runs they and the single-process references train."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from edgesr.distill import trainer as distill_trainer
from edgesr.distill.trainer import Distiller
from edgesr.train.checkpoint import resume as resume_from
from edgesr.train.loop import fit, stop_on_signals
from edgesr.train.run_folder import CHECKPOINT_FILE, MetricsLog
from edgesr.train.trainer import Trainer
from tests.cli_helpers import ROOT
from tests.distill_helpers import tiny_recipe

#: a distillation with everything that must agree across ranks: a pool with cached targets and
#: a refitted student, generators making half of each batch (rank 0's rows are pool crops,
#: rank 1's generator samples), CMI with standardised features and a bank, persistent z
POOLED = {"samples": {"priors": ["dead-leaves"], "pool_images": 3, "pool_size": 16, "patch": 8,
                      "generator_share": 0.5},
          "student": {"width": 4, "depth": 6, "init": "teacher-refit"}, "progressive": {"stages": 1, "steps": [6]},
          "cmi": {"bank_size": 8, "negatives": 4, "head_dim": 8, "standardize": True},
          "generator": {"lr_sizes": [8, 8], "channels": 8, "z_dim": 16, "z_lr": 0.1,
                        "optim": {"name": "adam", "lr": 1e-3, "schedule": "constant"}},
          "checkpoint_every": 100}
#: the paper's shape: generators only, CMI, a progressive student growing at step 3
GROWING = {"progressive": {"stages": 2, "steps": [3]}, "checkpoint_every": 100}
#: LR-space students as quick-edge trains them: over-parameterised, x3 and x4 sharing a wider
#: body, x2 on its own and updated twice a step (its extra updates average gradients by hand)
LR = {"scales": [2, 3, 4], "batch_size": 4,
      "student": {"arch": "lr-rep", "width": 4, "depth": 4, "shared_body": True,
                  "per_scale": [{"scale": 2, "steps": 2}, {"scale": 3, "width": 6}, {"scale": 4, "width": 6}]},
      "samples": {"priors": ["dead-leaves"], "pool_images": 3, "pool_size": 24, "lr_patch": 4,
                  "generator_share": 0.0},
      "student_optim": {"name": "adam", "lr": 1e-3}, "progressive": {"stages": 1, "steps": [4]},
      "checkpoint_every": 100}


#: the student step (a step without a generator step) whose KD loss a NaN scenario poisons
NAN_STEP = 2


@contextmanager
def nan_kd_at(trainer: Distiller, step: int, on: bool = True) -> Iterator[None]:
    """The KD loss is NaN at ``step`` of ``trainer`` (where ``on``: one rank alone)."""
    clean = distill_trainer.kd_loss

    def kd(t_out, s_out, kind="l1", margin=0):
        loss = clean(t_out, s_out, kind, margin)
        return loss * float("nan") if on and trainer.step == step else loss

    distill_trainer.kd_loss = kd
    try:
        yield
    finally:
        distill_trainer.kd_loss = clean


def distill_recipe(kind: str):
    return tiny_recipe(**{"pooled": POOLED, "growing": GROWING, "lr": LR}[kind])


def train(trainer: Trainer, run_dir: Path, resume: bool = False, stop_at: int | None = None) -> Trainer:
    """What ``train_in_folder`` does around :func:`fit`, without the progress bar; a stop
    request (as SIGTERM makes) after step ``stop_at``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        resume_from(trainer, run_dir / CHECKPOINT_FILE)
    trainer.begin(resume)
    metrics = MetricsLog(run_dir / "metrics.jsonl", trainer.step if resume else None) if trainer.world.main else None
    try:
        with stop_on_signals() as stop:

            def on_step(step: int, _record: dict) -> None:
                if step == stop_at:
                    stop(signal.SIGTERM, None)

            fit(trainer, run_dir, metrics, stop, on_step)
    finally:
        if metrics:
            metrics.close()
    return trainer


def snapshot(trainer: Trainer) -> dict:
    """What a rank ends with: its method's state, its step and torch's generator state."""
    return {"state": trainer.state_dict(), "step": trainer.step, "rng": torch.get_rng_state(),
            "log": dict(trainer.losses.sums)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, size: int, port: int) -> dict[str, str]:
    return {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size),
            "LOCAL_WORLD_SIZE": str(size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1", "EDGESR_DIST_TIMEOUT": "60",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


def start_ranks(argv: list[str], size: int = 2, env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    """``size`` processes of ``python argv``, ranks of one world."""
    port = free_port()
    return [subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**rank_env(r, size, port), **(env or {})}) for r in range(size)]


def run_ranks(argv: list[str], size: int = 2, timeout: float = 300) -> list[tuple[int, str, str]]:
    """Run ``size`` ranks of ``python argv`` to the end: ``(returncode, stdout, stderr)`` per rank."""
    procs = start_ranks(argv, size)
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out
