"""Algorithm 1: alternate imitation (student) and generation (generator + CMI head) stages,
over a progressively grown student; and its data-free shortcut, a pool of procedural images.

One *cycle* = draw a scale, ``student_steps_per_gen_step`` student steps on that scale's
generator, then one step of that generator (only it makes the batch and is updated). With a
sample pool (``samples.pool_images``), ``1 - samples.generator_share`` of each student batch
is crops of the pool, whose teacher outputs were computed once; with ``generator_share`` 0
there are no generators and no generator steps.
All randomness comes from torch's global generators, whose state is checkpointed, so a run
stopped and resumed ends with exactly the weights of an uninterrupted run (on CPU). Under
torchrun each process trains on its rows of every global batch, its networks in DDP; CMI
contrasts, and its memory bank keeps, the rows of every process (:mod:`edgesr.train.distributed`). The loop,
checkpoints and logging are :mod:`edgesr.train`'s.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..evaluate import validation_psnr
from ..models.predict import torch_predictor
from ..models.prune import prune_to_width
from ..models.refit import layerwise_forward, refit_student
from ..models.registry import create_student
from ..models.reparam import load_plain, overparameterise
from ..models.srnet import ScaleSet
from ..models.vdsr import VDSR
from ..samples.pool import PoolImages, SamplePool, load_targets, save_targets, symmetry_average
from ..train.distributed import World
from ..train.optim import build_optimizer, descend, lr_at, set_lr
from ..train.trainer import Trainer
from ..train.weight_average import WeightAverage
from .cmi import (
    MemoryBank,
    ProjectionHead,
    diversity,
    info_nce,
    instance_accuracy,
    pooled_features,
    random_views,
    standardize,
)
from .generator import Generator
from .losses import adversarial_loss, feature_loss, kd_loss, reconstruction_loss, upscale
from .recipe import DistillRecipe
from .stages import StagePlan


def _values(losses: dict[str, torch.Tensor], world: World) -> dict[str, float]:
    """Loss tensors as floats for the log, averaged over the ranks in one collective (private
    entries, ``_``-prefixed, left out)."""
    keys = [key for key in losses if not key.startswith("_")]
    values = world.mean(torch.stack([losses[key].detach().float() for key in keys])).tolist()
    return dict(zip(keys, values))


class _WithFeatures(nn.Module):
    """A VDSR whose forward also returns its body blocks' outputs: what the student step runs
    under a feature loss, so that DDP sees the call that uses every parameter."""

    def __init__(self, net: VDSR) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.net.forward_features(x)


def param_groups(student: nn.Module, slow_convs: int, slow_lr: float) -> list[dict]:
    """The student's parameters as optimizer groups: the first ``slow_convs`` convs of each of
    its networks (one per scale in a :class:`ScaleSet`) with ``lr_scale`` ``slow_lr``, the rest
    at the full rate. A shared body counts once, in the group of its first mention."""
    nets = [student.for_scale(s) for s in student.scales] if isinstance(student, ScaleSet) else [student]
    slow = {id(p): p for net in nets for conv in net.convs()[:slow_convs] for p in conv.parameters()}
    rest = [p for p in student.parameters() if id(p) not in slow]
    groups = [{"params": rest}]
    if slow:
        groups.append({"params": list(slow.values()), "lr_scale": slow_lr})
    return groups


def pool_key(r: DistillRecipe) -> str:
    """What a recipe's pool's teacher outputs depend on: a saved file for another key is not used."""
    sm = r.samples
    # one view adds nothing to the key, so single-pass targets saved before views existed still load
    key = (list(sm.priors), list(sm.prior_weights), sm.pool_images, sm.pool_size, list(r.scales), r.seed, r.teacher)
    return repr(key + ((sm.teacher_views,) if sm.teacher_views > 1 else ()))


class Distiller(Trainer):
    """One distillation run: the frozen teacher, the progressively grown student, a generator
    per scale, the CMI head and memory banks, and the cycle of steps that advances them."""

    recipe: DistillRecipe
    command = "edgesr distill"

    def __init__(self, recipe: DistillRecipe, teacher: VDSR, device: torch.device,
                 val_pairs: dict | None = None, world: World | None = None) -> None:
        super().__init__(recipe, device, val_pairs, world)
        self.teacher = self.prepare(teacher.eval()).requires_grad_(False)
        #: LR-space students: one network per scale (a :class:`ScaleSet`), each step trains all
        self.lr_space = recipe.student.family().input_kind == "lr"
        #: this rank's rows of each scale's LR crops (``student.per_scale`` may give a scale its own batch)
        self.scale_rows = {s: self.world.rows(recipe.scale_batch(s)) for s in recipe.scales}
        self.plan = StagePlan(recipe.progressive, recipe.student.resolved_depth - 2)
        self.planned_steps = self.plan.total
        self.stage = 0
        self.n_gen = round(recipe.batch_size * recipe.samples.generator_share)
        self.pool: SamplePool | None = None  # made by begin(), which knows whether the run resumes
        #: ``(blocks, width)``: the teacher channels each student body block was refitted to (the
        #: feature loss's correspondence; from the refit, or from the checkpoint on resume)
        self.feature_channels: torch.Tensor | None = None
        self._adopt_student(self._initial_student())
        self.gens = {s: Generator(lr, recipe.generator.z_dim, recipe.generator.channels).to(device)
                     for s, lr in zip(recipe.scales, recipe.generator.lr_sizes)} if self.n_gen else {}
        #: the generators as their step trains them (in DDP under torchrun); sampling uses ``gens``
        self.ddp_gens = {s: g if recipe.generator.frozen else self.world.wrap(g) for s, g in self.gens.items()}
        self.gen_opts = {s: build_optimizer(g.parameters(), recipe.generator.optim) for s, g in self.gens.items()}
        feat_dim = teacher.blocks * teacher.width
        self.cmi_on = recipe.losses.w_c > 0 and bool(self.gens)
        self.head = ProjectionHead(feat_dim, recipe.cmi.head_dim).to(device)
        self.head_opt = torch.optim.Adam(self.head.parameters(), lr=recipe.cmi.head_lr)
        self.ddp_head = self.world.wrap(self.head) if self.cmi_on else self.head
        self.banks = {s: MemoryBank(recipe.cmi.bank_size, 2 * feat_dim, recipe.batch_size, device)
                      for s in recipe.scales} if self.cmi_on else {}
        self.z_pool = {s: g.noise(recipe.batch_size) for s, g in self.gens.items()} if recipe.generator.z_lr else {}
        self.scale = recipe.scales[0]
        #: the generators' cycles draw their scale in these proportions (None: uniformly)
        self.scale_odds = (torch.tensor(recipe.samples.scale_weights, dtype=torch.float64)
                           if recipe.samples.scale_weights else None)

    @property
    def horizon(self) -> int:
        return self.plan.total

    def set_horizon(self, horizon: int) -> None:
        """The stage plan scaled to ``horizon``; kept as it is where that would move the current
        step back into an earlier stage (a later fit must not shrink a student that has grown)."""
        plan = StagePlan(self.recipe.progressive, self.recipe.student.resolved_depth - 2, horizon)
        if plan.stage_of(self.step) >= self.stage:
            self.plan = plan

    @property
    def model(self) -> VDSR | ScaleSet:
        """What validation scores and the run saves: the student, or its weight average (``student.ema``)."""
        return self.student if self.average is None else self.average.net

    def networks(self) -> list[nn.Module]:
        average = [self.average.net] if self.average is not None else []
        return [self.student, *average, self.head, *self.gens.values()]

    # ----------------------------------------------------------------- setup
    def _initial_student(self) -> VDSR | ScaleSet:
        """The student the run starts from (a teacher-refit one is pruned here, refitted by
        :meth:`begin`), over-parameterised for training where the recipe asks."""
        cfg = self.recipe.student
        fam = cfg.family()
        expand = fam.reparam if cfg.reparam is None else cfg.reparam
        if self.lr_space:
            return ScaleSet({s: create_student(cfg.arch, s, *cfg.shape(s), expand)
                             for s in self.recipe.scales}, cfg.shared_body).train()
        blocks = self.plan.blocks(0)
        if cfg.init in ("teacher-prune", "teacher-refit"):
            student = prune_to_width(self.teacher, cfg.resolved_width, blocks)
        else:
            student = VDSR(cfg.resolved_width, cfg.resolved_depth, blocks)
            if cfg.init == "zero-tail":
                nn.init.zeros_(student.tail.weight)
        student.arch = fam.name
        return (overparameterise(student, expand) if expand else student).train()

    def preparation(self, resumed: bool) -> str:
        sm, refit = self.recipe.samples, self.recipe.student.init == "teacher-refit" and not resumed
        if not sm.pool_images:
            return ""
        views = f", averaging the teacher's outputs over {sm.teacher_views} symmetries" if sm.teacher_views > 1 else ""
        return (f"drawing the sample pool ({sm.pool_images} {'/'.join(sm.priors)} images of {sm.pool_size} px) and "
                + ("refitting the student to the teacher on it, layer by layer" if refit
                   else "computing the teacher's outputs on it") + views)

    def begin(self, resumed: bool, run_dir: Path | None = None) -> None:
        """Draw the sample pool and get the teacher's outputs on it: a new teacher-refit run gets
        them from refitting the student on the pool, a resumed run reads them from the run
        folder (``pool_targets.safetensors``, written once they are computed), and recomputes
        them only where that file is missing or made for another pool."""
        r = self.recipe
        sm = r.samples
        if not sm.pool_images:
            return
        images = PoolImages.draw(sm.priors, sm.prior_weights, sm.pool_images, sm.pool_size, r.scales, r.seed)
        inputs = images.inputs.to(self.device)
        # a new teacher-refit run refits its student on the way to the targets: only a resumed one
        # (its student in the checkpoint) or a run without refit may read them from an earlier start
        reuse = run_dir is not None and (resumed or r.student.init != "teacher-refit")
        targets = load_targets(run_dir, pool_key(self.recipe), inputs.shape) if reuse else None
        if targets is None:
            targets = self._teacher_targets(inputs, resumed)
            if run_dir is not None and self.world.main:
                save_targets(run_dir, pool_key(self.recipe), targets)
        self.pool = SamplePool(inputs, targets.to(self.device), images.scales.to(self.device),
                               {s: lr.to(self.device) for s, lr in images.lr.items()},
                               dict(zip(r.scales, sm.scale_weights)))

    def _teacher_targets(self, inputs: torch.Tensor, resumed: bool) -> torch.Tensor:
        """The teacher's outputs on the pool; a new teacher-refit run refits its student on the
        way (its student comes from the checkpoint otherwise)."""
        r, sm = self.recipe, self.recipe.samples
        refit = r.student.init == "teacher-refit"
        # the refit's images: the first refit_images of every scale (all of the pool otherwise)
        n = min(r.student.refit_images or sm.pool_images, sm.pool_images) if refit else sm.pool_images
        fitted = (torch.arange(len(inputs)) % sm.pool_images < n).to(self.device)
        targets = torch.empty_like(inputs)
        if refit and not resumed:
            fit = refit_student(self.teacher, r.student.resolved_width, inputs[fitted], self.student.blocks,
                                r.student.refit_ridge, r.student.refit_pixels, seed=r.seed)
            load_plain(self.student, fit.student)
            self._start_average()  # from the refitted weights, not the pruned ones
            targets[fitted] = fit.teacher_output
            if r.losses.w_feat:
                self.feature_channels = torch.stack(fit.kept).to(self.device)
        else:
            targets[fitted] = layerwise_forward(self.teacher, inputs[fitted])
        if not fitted.all():
            targets[~fitted] = layerwise_forward(self.teacher, inputs[~fitted])
        if sm.teacher_views > 1:
            targets = symmetry_average(self.teacher_pass, inputs, sm.teacher_views, targets)
        return targets

    @torch.no_grad()
    def teacher_pass(self, x: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """The teacher's outputs on many images as the training steps run it (bf16 autocast and
        channels-last where the recipe has them): a float32 pass over an hour's pool takes about
        two minutes of a 2-core CPU, over twice the bf16 one (``ablation_hour/teacher_views.json``)."""
        with self.autocast():
            return torch.cat([self.teacher(self.as_input(x[i:i + chunk])).float() for i in range(0, len(x), chunk)])

    def _adopt_student(self, student: VDSR | ScaleSet) -> None:
        """Train ``student`` from now on: on the device, in DDP under torchrun (which gives every
        rank rank 0's weights), with a fresh optimizer."""
        self.student = self.prepare(student)
        #: what the student step runs; checkpoints, validation and the generator step use ``student``
        self.ddp_student = self.world.wrap(_WithFeatures(self.student) if self.recipe.losses.w_feat else self.student)
        st = self.recipe.student
        self.student_opt = build_optimizer(param_groups(self.student, st.slow_convs, st.slow_lr),
                                           self.recipe.student_optim)
        self._start_average()

    def _start_average(self) -> None:
        """The student's weight average (``student.ema``) from the student as it is now."""
        ema = self.recipe.student.ema
        self.average = WeightAverage(self.student, ema) if ema else None

    def _grow(self, stage: int) -> None:
        """Move to ``stage``: append its blocks before the tail, fresh student optimizer."""
        self._adopt_student(self.student.grown(self.plan.blocks(stage)).train())
        self.stage = stage

    def _input(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return self.as_input(upscale(lr, scale, self.recipe.generator.round_bicubic))

    # ----------------------------------------------------------------- steps
    def _student_batches(self, scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """What the student learns from: network inputs and the teacher's outputs on them, from
        the pool (crops, cached outputs) and from the current generator (fresh, teacher run now);
        one batch when their shapes agree. The global batch is the pool's crops, then the
        generator's samples: every rank draws all of them and keeps its rows."""
        r = self.recipe
        first, end = self.rows.start, self.rows.stop
        n_pool = r.batch_size - self.n_gen if self.pool is not None else 0
        parts = []
        if n_pool:
            x, y = self.pool.batch(n_pool, r.samples.patch, r.samples.symmetries,
                                   slice(min(first, n_pool), min(end, n_pool)))
            if len(x):
                parts.append((self.as_input(x), y))
        if self.n_gen:
            g = self.gens[scale]
            z = g.noise(self.n_gen)[max(first - n_pool, 0):max(end - n_pool, 0)]
            if len(z):
                with torch.no_grad():
                    x = self._input(g(z), scale)
                    with self.autocast():
                        parts.append((x, self.teacher(x).float()))
        if len(parts) == 2 and parts[0][0].shape[1:] == parts[1][0].shape[1:]:
            parts = [(self.as_input(torch.cat([parts[0][0], parts[1][0]])), torch.cat([parts[0][1], parts[1][1]]))]
        return parts

    def student_step(self, scale: int) -> float:
        """Imitation: fit S to T on a fresh batch (Eq. 5), the mean over all its samples.

        Returns the loss averaged over the ranks, read once (the step's only device sync, but for
        the feature loss's value, logged when ``losses.w_feat`` is on); a non-finite loss on any
        rank skips the update on every rank.
        """
        if self.lr_space:
            return self._lr_student_step()
        loss = torch.zeros((), device=self.device)
        rows = self.rows.stop - self.rows.start
        w_feat = self.recipe.losses.w_feat
        feat = torch.zeros((), device=self.device)
        for x, t_out in self._student_batches(scale):
            with self.autocast():
                if w_feat:
                    s_out, s_feats = self.ddp_student(x)
                    with torch.no_grad():
                        t_feats = self.teacher.forward_features(x)[1]
                else:
                    s_out = self.ddp_student(x)
            # the margin leaves out generator rows' borders too where a batch mixes them in
            kd = kd_loss(t_out, s_out, self.recipe.losses.kd, self.recipe.samples.loss_margin)
            loss = loss + kd * (len(x) / rows)
            if w_feat:
                feat = feat + feature_loss(t_feats, s_feats, self.feature_channels) * (len(x) / rows)
        if w_feat:
            self.losses.add(feat=float(feat.detach()))
            loss = loss + w_feat * feat
        value = self.agree(loss)
        if math.isfinite(value):
            descend(self.student_opt, loss, self.recipe.student_optim)
        return value

    def _lr_student_step(self) -> float:
        """Every scale's LR-space student on its own batch of LR pool crops against the matching
        crops of the teacher's cached outputs; the loss is their mean (each student's gradient
        is its own loss's: the networks share no weight)."""
        r = self.recipe
        batches = [self._lr_crops(s) for s in r.scales]
        with self.autocast():
            outs = self.ddp_student(*(self.as_input(x) for x, _ in batches))
        losses = [kd_loss(y, out, r.losses.kd, r.samples.loss_margin) for (_, y), out in zip(batches, outs)]
        loss = torch.stack(losses).mean()
        value = self.agree(loss)
        if math.isfinite(value):
            descend(self.student_opt, loss, r.student_optim)
            self.losses.add(**{f"kd_x{s}": float(v.detach()) for s, v in zip(r.scales, losses)})
        for s in r.scales:
            for _ in range(r.scale_steps(s) - 1):
                self._lr_solo_step(s)
        return value

    def _lr_crops(self, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's LR pool crops of ``scale`` for one update and the teacher's outputs on them."""
        r = self.recipe
        return self.pool.lr_batch(scale, r.scale_batch(scale), r.lr_crop(scale),
                                  r.samples.symmetries, self.scale_rows[scale])

    def _lr_solo_step(self, scale: int) -> None:
        """One more update of the student of ``scale`` alone (``student.per_scale`` steps), its
        loss weighted as in the joint step so that Adam sees gradients of one size. Outside DDP
        (the other scales' networks take no part), so its gradients are averaged here."""
        r = self.recipe
        x, y = self._lr_crops(scale)
        net = self.student.for_scale(scale)
        with self.autocast():
            out = net(self.as_input(x))
        loss = kd_loss(y, out, r.losses.kd, r.samples.loss_margin) / len(r.scales)
        if not math.isfinite(self.agree(loss)):
            return

        def average() -> None:
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.copy_(self.world.mean(p.grad))

        descend(self.student_opt, loss, r.student_optim, average if self.world.active else None)

    def generator_losses(self, scale: int, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 13 for the generator of ``scale``: adversarial + W_R L_R + W_C L_cr (all means),
        for this rank's rows ``z`` of the global batch. The adversarial term is read on the mean
        KD of the whole batch, and CMI contrasts the features of every rank's rows."""
        r = self.recipe
        world = self.world
        lr = self.ddp_gens[scale](z)
        x = self._input(lr, scale)
        self.student.requires_grad_(False)
        try:
            with self.autocast():
                t_out, feats = self.teacher.forward_features(x)
                s_out = self.student(x)
        finally:
            self.student.requires_grad_(True)
        l_kd = world.averaged(kd_loss(t_out, s_out, r.losses.kd))
        out = {"kd_gen": l_kd, "adv": adversarial_loss(l_kd), "rec": reconstruction_loss(t_out, lr, scale)}
        pooled = pooled_features(feats).detach()
        out["sample_std"] = lr.detach().float().std(dim=(1, 2, 3)).mean()
        if not self.cmi_on:
            out["diversity"] = diversity(world.all_rows(pooled))
        else:
            glob, local = random_views(lr, r.cmi.pad, tuple(r.cmi.local_scale), total=r.batch_size, rows=self.rows)
            with self.autocast():
                g_feat = pooled_features(self.teacher.forward_features(self._input(glob, scale))[1])
                l_feat = pooled_features(self.teacher.forward_features(self._input(local, scale))[1])
            # the whole batch's rows, in one gather; this rank's keep their gradient
            pooled, l_feat, g_feat = world.all_rows(torch.cat([pooled, l_feat, g_feat], dim=1)).chunk(3, dim=1)
            out["diversity"] = diversity(pooled)
            bank = self.banks[scale]
            cached_local, cached_global = bank.sample(r.cmi.negatives).chunk(2, dim=1)
            feats = torch.cat([l_feat, cached_local, g_feat, cached_global])
            proj = self.ddp_head(standardize(feats) if r.cmi.standardize else feats)
            p_local, p_global = proj.chunk(2)
            n = len(l_feat)
            out["cr"] = info_nce(p_local, p_global, n, r.cmi.temperature)
            out["cr_acc"] = instance_accuracy(p_local, p_global, n)
            out["cr_chance"] = torch.full((), 1.0 / len(p_local), device=p_local.device)
            out["_bank_entry"] = torch.cat([l_feat, g_feat], dim=1).detach()
        w = r.losses
        out["total"] = w.w_adv * out["adv"] + w.w_r * out["rec"] + (w.w_c * out["cr"] if self.cmi_on else 0.0)
        return out

    def generator_step(self, scale: int) -> dict[str, float] | None:
        """Generation: update G_s (and the CMI head, and z if enabled) on Eq. 13.

        Returns the loss values (averaged over the ranks), or None (and no update on any rank)
        when the total is non-finite.
        """
        r = self.recipe
        rows = self.rows
        if r.generator.frozen:
            with torch.no_grad():
                losses = self.generator_losses(scale, self.gens[scale].noise(r.batch_size)[rows])
            return _values(losses, self.world)
        if r.generator.z_lr:
            z = self.z_pool[scale][rows].detach().requires_grad_(True)
        else:
            z = self.gens[scale].noise(r.batch_size)[rows]
        losses = self.generator_losses(scale, z)
        values = _values(losses, self.world)
        if not math.isfinite(values["total"]):
            return None
        opt = self.gen_opts[scale]
        opt.zero_grad(set_to_none=True)
        self.head_opt.zero_grad(set_to_none=True)
        losses["total"].backward()  # DDP averages the generator's and the head's gradients
        opt.step()
        if self.cmi_on:
            self.head_opt.step()
            self.banks[scale].add(losses.pop("_bank_entry"))
        if r.generator.z_lr:
            with torch.no_grad():  # z.grad is the ranks' size times its share of the batch's gradient
                self.z_pool[scale] = self.world.all_rows(z - r.generator.z_lr * z.grad / self.world.size).detach()
        return values

    def _set_lrs(self) -> None:
        r = self.recipe
        stage_len = self.plan.lengths[self.stage]
        set_lr(self.student_opt, lr_at(r.student_optim, self.plan.step_in_stage(self.step), stage_len))
        k = r.student_steps_per_gen_step
        gen_lr = lr_at(r.generator.optim, self.step // k, max(self.plan.total // k, 1))
        for opt in self.gen_opts.values():
            set_lr(opt, gen_lr)

    def train_step(self) -> bool:
        """One student step (and, at the end of a cycle, one generator step)."""
        r = self.recipe
        k = r.student_steps_per_gen_step
        stage = self.plan.stage_of(self.step)
        if stage != self.stage:
            self._grow(stage)
        if self.gens and self.step % k == 0:
            pick = (torch.randint(len(r.scales), (1,)) if self.scale_odds is None
                    else torch.multinomial(self.scale_odds, 1))
            self.scale = r.scales[int(pick)]
        self._set_lrs()
        loss = self.student_step(self.scale)
        ok = math.isfinite(loss)
        if ok:
            self.losses.add(kd=loss)
            if self.average is not None:
                self.average.update(self.student)
        if self.gens and (self.step + 1) % k == 0:
            gen_record = self.generator_step(self.scale)
            ok = ok and gen_record is not None
            if gen_record is not None:
                self.losses.add(**{f"g_{key}": v for key, v in gen_record.items()})
        return ok

    # ----------------------------------------------------------------- loop hooks
    def stage_ended(self) -> bool:
        return self.plan.stage_of(self.step) != self.stage

    def log_fields(self) -> dict:
        blocks = {} if self.lr_space else {"blocks": self.student.blocks}
        return {"stage": self.stage, **blocks, "lr": self.student_opt.param_groups[0]["lr"]}

    def validate(self) -> dict[str, float]:
        """The saved student's validation PSNR; with a weight average, the trained weights' too
        (``val_psnr_trained``, per scale alike): what the average gives, read off one run."""
        out = super().validate()
        if self.average is not None and self.val_pairs:
            trained = self.validation_scores(self.student)
            out.update({k.replace("val_psnr", "val_psnr_trained", 1): v for k, v in trained.items()})
        return out

    def reference_scores(self) -> dict[str, float]:
        """The bicubic floor and the teacher ceiling on the validation crops."""
        teacher = validation_psnr(torch_predictor(self.teacher, self.device), self.val_pairs)["val_psnr"]
        return {**super().reference_scores(), "val_teacher_psnr": teacher}

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "stage": self.stage, "scale": self.scale, "horizon": self.horizon,
            "student": self.student.state_dict(), "student_blocks": getattr(self.student, "blocks", 0),
            "student_opt": self.student_opt.state_dict(),
            "gens": {s: g.state_dict() for s, g in self.gens.items()},
            "gen_opts": {s: o.state_dict() for s, o in self.gen_opts.items()},
            "head": self.head.state_dict(), "head_opt": self.head_opt.state_dict(),
            "banks": {s: b.state_dict() for s, b in self.banks.items()},
            "z_pool": {s: z.detach().cpu() for s, z in self.z_pool.items()},
            **({"feature_channels": self.feature_channels.cpu()} if self.feature_channels is not None else {}),
            **({"student_average": self.average.state_dict()} if self.average is not None else {}),
        }

    def load_state_dict(self, st: dict) -> None:
        self.scale = st["scale"]
        self.stage = st["stage"]
        if st.get("horizon", self.planned_steps) != self.horizon:  # (runs older than budget fitting have none)
            self.set_horizon(st["horizon"])
        if not self.lr_space and st["student_blocks"] != self.student.blocks:
            self._adopt_student(self.student.grown(st["student_blocks"]).train())
        self.student.load_state_dict(st["student"])
        self.student_opt.load_state_dict(st["student_opt"])
        if self.average is not None:
            if "student_average" not in st:
                raise ValueError("the recipe averages the student's weights (student.ema) but the checkpoint "
                                 "holds no average: resume with the recipe it was written with")
            self.average.load_state_dict(st["student_average"])
        for s in self.gens:
            self.gens[s].load_state_dict(st["gens"][s])
            self.gen_opts[s].load_state_dict(st["gen_opts"][s])
        self.head.load_state_dict(st["head"])
        self.head_opt.load_state_dict(st["head_opt"])
        for s, b in self.banks.items():
            b.load_state_dict(st["banks"][s])
        self.z_pool = {s: z.to(self.device) for s, z in st["z_pool"].items()}
        if self.recipe.losses.w_feat:
            self.feature_channels = self._checked_channels(st["feature_channels"]).to(self.device)

    def _checked_channels(self, channels: object) -> torch.Tensor:
        """A checkpoint's feature correspondence, if it is one for this student and teacher."""
        shape = (self.student.blocks, self.student.width)
        if not (isinstance(channels, torch.Tensor) and channels.dtype == torch.int64 and tuple(channels.shape) == shape
                and bool(((channels >= 0) & (channels < self.teacher.width)).all())):
            raise ValueError(f"feature_channels is not {shape} teacher channel indices")
        return channels
