"""Algorithm 1: alternate imitation (student) and generation (generator + CMI head) stages,
over a progressively grown student, with checkpoint/resume, a NaN guard and monitoring.

One *cycle* = draw a scale, ``student_steps_per_gen_step`` student steps on that scale's
generator, then one step of that generator (only it makes the batch and is updated).
All randomness comes from torch's global generators, whose state is checkpointed, so a run
stopped and resumed ends with exactly the weights of an uninterrupted run (on CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..evaluate import validation_psnr
from ..models.predict import torch_predictor
from ..models.prune import prune_to_width
from ..models.vdsr import VDSR
from ..runs import (CHECKPOINT_FILE, Diverged, Interrupted, MetricsLog, StopRequest, load_checkpoint,
                    restore_rng, rng_state, save_finite_checkpoint)
from .cmi import MemoryBank, ProjectionHead, diversity, info_nce, pooled_features, random_views
from .generator import Generator
from .losses import adversarial_loss, kd_loss, reconstruction_loss, upscale
from .recipe import DistillRecipe, OptimConfig
from .schedule import StagePlan, lr_at


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Loss tensors as floats for the log (private entries, ``_``-prefixed, left out)."""
    return {key: float(v.detach()) for key, v in losses.items() if not key.startswith("_")}


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


@dataclass
class StepLog:
    """Running sums of the losses between two log lines."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


class Distiller:
    """The state of one distillation run and the steps that advance it."""

    def __init__(self, recipe: DistillRecipe, teacher: VDSR, device: torch.device,
                 val_pairs: dict | None = None) -> None:
        self.r = recipe
        self.device = device
        self.amp = device.type == "cuda" and recipe.bf16
        self.channels_last = device.type == "cuda" and recipe.channels_last
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest kernels once
        torch.manual_seed(recipe.seed)
        self.teacher = self._prepare(teacher.eval()).requires_grad_(False)
        self.plan = StagePlan(recipe.progressive, recipe.student.depth - 2)
        self.stage = 0
        self.student = self._prepare(self._initial_student())
        self.student_opt = make_optimizer(self.student.parameters(), recipe.student_optim)
        self.gens = {s: Generator(lr, recipe.generator.z_dim, recipe.generator.channels).to(device)
                     for s, lr in zip(recipe.scales, recipe.generator.lr_sizes)}
        self.gen_opts = {s: make_optimizer(g.parameters(), recipe.generator.optim) for s, g in self.gens.items()}
        feat_dim = (teacher.depth - 2) * teacher.width
        self.cmi_on = recipe.losses.w_c > 0
        self.head = ProjectionHead(feat_dim, recipe.cmi.head_dim).to(device)
        self.head_opt = torch.optim.Adam(self.head.parameters(), lr=recipe.cmi.head_lr)
        self.banks = {s: MemoryBank(recipe.cmi.bank_size, 2 * feat_dim, recipe.batch_size, device)
                      for s in recipe.scales} if self.cmi_on else {}
        self.z_pool = {s: g.noise(recipe.batch_size) for s, g in self.gens.items()} if recipe.generator.z_lr else {}
        self.step = 0
        self.scale = recipe.scales[0]
        self.bad_steps = 0
        self.elapsed = 0.0
        self.val_pairs = val_pairs or {}
        self.log = StepLog()

    # ----------------------------------------------------------------- setup
    def _prepare(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def _initial_student(self) -> VDSR:
        cfg = self.r.student
        blocks = self.plan.blocks(0)
        if cfg.init == "teacher-prune":
            return prune_to_width(self.teacher, cfg.width, blocks).train()
        student = VDSR(cfg.width, cfg.depth, blocks)
        if cfg.init == "zero-tail":
            nn.init.zeros_(student.tail.weight)
        return student.train()

    def _grow(self, stage: int) -> None:
        """Move to ``stage``: append its blocks before the tail, fresh student optimizer."""
        self.student = self._prepare(self.student.grown(self.plan.blocks(stage)).train())
        self.student_opt = make_optimizer(self.student.parameters(), self.r.student_optim)
        self.stage = stage

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def _input(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        x = upscale(lr, scale, self.r.generator.round_bicubic)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # ----------------------------------------------------------------- steps
    def student_step(self, scale: int) -> float:
        """Imitation: fit S to T on a fresh batch of the current generator (Eq. 5).

        Returns the loss, read once (the step's only device sync); a non-finite loss skips the update.
        """
        g = self.gens[scale]
        with torch.no_grad():
            lr = g(g.noise(self.r.batch_size))
            x = self._input(lr, scale)
            with self._autocast():
                t_out = self.teacher(x)
        with self._autocast():
            s_out = self.student(x)
        loss = kd_loss(t_out, s_out)
        value = loss.item()
        if not math.isfinite(value):
            return value
        self.student_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.r.student_optim.clip_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.student.parameters(), self.r.student_optim.clip_grad_norm)
        self.student_opt.step()
        return value

    def generator_losses(self, scale: int, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 13 for the generator of ``scale``: adversarial + W_R L_R + W_C L_cr (all means)."""
        r = self.r
        lr = self.gens[scale](z)
        x = self._input(lr, scale)
        self.student.requires_grad_(False)
        try:
            with self._autocast():
                t_out, feats = self.teacher.forward_features(x)
                s_out = self.student(x)
        finally:
            self.student.requires_grad_(True)
        l_kd = kd_loss(t_out, s_out)
        out = {"kd_gen": l_kd, "adv": adversarial_loss(l_kd), "rec": reconstruction_loss(t_out, lr, scale)}
        out["diversity"] = diversity(pooled_features(feats)).detach()
        out["sample_std"] = lr.detach().float().std(dim=(1, 2, 3)).mean()
        if self.cmi_on:
            glob, local = random_views(lr, r.cmi.pad, tuple(r.cmi.local_scale))
            with self._autocast():
                g_feat = pooled_features(self.teacher.forward_features(self._input(glob, scale))[1])
                l_feat = pooled_features(self.teacher.forward_features(self._input(local, scale))[1])
            bank = self.banks[scale]
            cached_local, cached_global = bank.sample(r.cmi.negatives).chunk(2, dim=1)
            proj = self.head(torch.cat([l_feat, cached_local, g_feat, cached_global]))
            p_local, p_global = proj.chunk(2)
            out["cr"] = info_nce(p_local, p_global, r.batch_size, r.cmi.temperature)
            out["_bank_entry"] = torch.cat([l_feat, g_feat], dim=1).detach()
        w = r.losses
        out["total"] = w.w_adv * out["adv"] + w.w_r * out["rec"] + (w.w_c * out["cr"] if self.cmi_on else 0.0)
        return out

    def generator_step(self, scale: int) -> dict[str, float] | None:
        """Generation: update G_s (and the CMI head, and z if enabled) on Eq. 13.

        Returns the loss values, or None (and no update) when the total is non-finite.
        """
        r = self.r
        if r.generator.frozen:
            with torch.no_grad():
                losses = self.generator_losses(scale, self.gens[scale].noise(r.batch_size))
            return _values(losses)
        z = self.z_pool[scale].requires_grad_(True) if r.generator.z_lr else self.gens[scale].noise(r.batch_size)
        losses = self.generator_losses(scale, z)
        if not _finite(losses["total"]):
            return None
        opt = self.gen_opts[scale]
        opt.zero_grad(set_to_none=True)
        self.head_opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        if self.cmi_on:
            self.head_opt.step()
            self.banks[scale].add(losses.pop("_bank_entry"))
        if r.generator.z_lr:
            with torch.no_grad():
                self.z_pool[scale] = (z - r.generator.z_lr * z.grad).detach()
        return _values(losses)

    # ----------------------------------------------------------------- loop
    def _set_lrs(self) -> None:
        r = self.r
        stage_len = self.plan.lengths[self.stage]
        set_lr(self.student_opt, lr_at(r.student_optim, self.plan.step_in_stage(self.step), stage_len))
        k = r.student_steps_per_gen_step
        gen_lr = lr_at(r.generator.optim, self.step // k, max(self.plan.total // k, 1))
        for opt in self.gen_opts.values():
            set_lr(opt, gen_lr)

    def train_step(self) -> dict[str, float] | None:
        """One student step (and, at the end of a cycle, one generator step)."""
        r = self.r
        k = r.student_steps_per_gen_step
        stage = self.plan.stage_of(self.step)
        if stage != self.stage:
            self._grow(stage)
        if self.step % k == 0:
            self.scale = r.scales[int(torch.randint(len(r.scales), (1,)))]
        self._set_lrs()
        loss = self.student_step(self.scale)
        ok = math.isfinite(loss)
        if ok:
            self.log.add(kd=loss)
        gen_record = None
        if (self.step + 1) % k == 0:
            gen_record = self.generator_step(self.scale)
            ok = ok and gen_record is not None
            if gen_record is not None:
                self.log.add(**{f"g_{key}": v for key, v in gen_record.items()})
        self.bad_steps = 0 if ok else self.bad_steps + 1
        if self.bad_steps >= r.max_bad_steps:
            raise Diverged(
                f"training diverged at step {self.step}: {self.bad_steps} consecutive non-finite losses "
                "(the last checkpoint on disk is the last good state; lower the learning rates)"
            )
        self.step += 1
        return gen_record

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Student PSNR on the held-out validation crops, per scale and mean."""
        if not self.val_pairs:
            return {}
        out = validation_psnr(torch_predictor(self.student, self.device), self.val_pairs)
        self.student.train()
        return out

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "step": self.step, "stage": self.stage, "scale": self.scale, "elapsed": self.elapsed,
            "student": self.student.state_dict(), "student_blocks": self.student.blocks,
            "student_opt": self.student_opt.state_dict(),
            "gens": {s: g.state_dict() for s, g in self.gens.items()},
            "gen_opts": {s: o.state_dict() for s, o in self.gen_opts.items()},
            "head": self.head.state_dict(), "head_opt": self.head_opt.state_dict(),
            "banks": {s: b.state_dict() for s, b in self.banks.items()},
            "z_pool": {s: z.detach().cpu() for s, z in self.z_pool.items()},
            "log": {"sums": dict(self.log.sums), "counts": dict(self.log.counts)},
            **rng_state(),
        }

    def load_state_dict(self, st: dict) -> None:
        self.step, self.scale, self.elapsed = st["step"], st["scale"], st["elapsed"]
        if st["student_blocks"] != self.student.blocks:
            self.student = self._prepare(self.student.grown(st["student_blocks"]).train())
            self.student_opt = make_optimizer(self.student.parameters(), self.r.student_optim)
        self.stage = st["stage"]
        self.student.load_state_dict(st["student"])
        self.student_opt.load_state_dict(st["student_opt"])
        for s in self.gens:
            self.gens[s].load_state_dict(st["gens"][s])
            self.gen_opts[s].load_state_dict(st["gen_opts"][s])
        self.head.load_state_dict(st["head"])
        self.head_opt.load_state_dict(st["head_opt"])
        for s, b in self.banks.items():
            b.load_state_dict(st["banks"][s])
        self.z_pool = {s: z.to(self.device) for s, z in st["z_pool"].items()}
        self.log = StepLog(**st["log"])
        restore_rng(st)

    def checkpoint(self, run_dir: Path) -> None:
        """Write the checkpoint, unless any weight is non-finite (then stop: never save bad state)."""
        save_finite_checkpoint([self.student, self.head, *self.gens.values()], self.state_dict,
                               run_dir / CHECKPOINT_FILE, self.step)

    def resume(self, run_dir: Path) -> None:
        self.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE))

    def run(self, run_dir: Path, metrics: MetricsLog, stop: StopRequest,
            on_step: Callable[[int, dict], None] | None = None) -> None:
        """Train until the plan's last step, the time budget, or a stop request."""
        r = self.r
        total = self.plan.total
        started = time.perf_counter() - self.elapsed
        last_val: dict[str, float] = {}
        while self.step < total:
            stage_before = self.stage
            self.train_step()
            self.elapsed = time.perf_counter() - started
            step_done = self.step
            budget_hit = r.budget_minutes > 0 and self.elapsed > 60 * r.budget_minutes
            end_of_stage = self.step == total or self.plan.stage_of(self.step) != stage_before or budget_hit
            record: dict = {}
            if step_done % r.log_every == 0 or end_of_stage:
                record = {"step": step_done, "stage": self.stage, "blocks": self.student.blocks,
                          "lr": self.student_opt.param_groups[0]["lr"], "time": round(self.elapsed, 2),
                          **self.log.flush()}
            if self.val_pairs and (step_done % r.validation.every == 0 or end_of_stage):
                last_val = self.validate()
                record = {"step": step_done, **record, **last_val}
            if record:
                metrics.write(record)
            if on_step:
                on_step(step_done, {**record, **last_val})
            due = step_done % r.checkpoint_every == 0 or stop.requested or budget_hit or self.step == total
            if due and self.bad_steps == 0:  # never checkpoint in the middle of a non-finite streak
                self.checkpoint(run_dir)
            if stop.requested:
                raise Interrupted(
                    f"{stop.signal_name} at step {step_done}: checkpoint saved; continue with "
                    f"edgesr distill --resume {run_dir}"
                )
            if budget_hit:
                break
