"""The distillation recipe: every hyperparameter of ``edgesr distill`` in one typed object.

Defaults are the paper's / DFSR reference values (``docs/method.md``); recipes in ``recipes/``
override them. ``losses.w_c: 0`` is the DFSR baseline from the same code;
``generator.round_bicubic`` and ``generator.frozen`` mimic the released DFSR code for ablations.
The run-level keys (seed, device, intervals, budget, validation, evaluation) are
:class:`~edgesr.train.recipe.RunRecipe`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from ..config import Count, ModelRef, NonNegative, NonNegativeInt, Positive, Range, Share, fail
from ..models.registry import MAX_DEPTH, MAX_WIDTH, Family, families, family
from ..models.zoo import Teachers
from ..samples.pool import SQUARE_SYMMETRIES
from ..scales import Scale, check_scales
from ..train.optim import OptimConfig
from ..train.recipe import RunRecipe, ValidationConfig


@dataclass(frozen=True)
class ScaleShape:
    """An LR-space student's own width, depth, anchor, crops a step or updates a step at one
    scale (None: ``student.width``, ``depth``, ``anchor``, ``batch_size``, one): an x4 network runs
    on a quarter of an x2 one's pixels, so it can afford more channels, and the anchors win at
    different scales (benchmarks/results/ablation_edge). A narrow student beside wide ones costs
    little per step, so more crops or more updates a step give it more to learn from."""

    scale: Scale
    width: Annotated[int, Range(1, MAX_WIDTH)] | None = None
    depth: Annotated[int, Range(3, MAX_DEPTH)] | None = None
    anchor: Literal["repeat", "bicubic"] | None = None
    #: crops of this scale a step (None: ``batch_size``)
    batch: Count | None = None
    #: updates of this scale's student per training step (None: 1): a narrow student beside wide
    #: ones trains several steps of its own in the time of one of theirs (its body unshared)
    steps: Count | None = None


@dataclass(frozen=True)
class StudentConfig:
    #: the student family (``edgesr students`` lists them): ``vdsr-half`` (the paper's; one network
    #: for every scale, on the bicubic-upscaled image) or an LR-space family (one network per scale)
    arch: str = "vdsr-half"
    #: channels (None: the family's default)
    width: Annotated[int, Range(1, MAX_WIDTH)] | None = None
    #: conv layers, first and last included (None: the family's default)
    depth: Annotated[int, Range(3, MAX_DEPTH)] | None = None
    #: LR-space families: the fixed upsampling the network adds its output to, ``repeat`` (the LR
    #: pixel in every phase: exact in INT8) or ``bicubic`` (None: the family's default)
    anchor: Literal["repeat", "bicubic"] | None = None
    #: train each 3x3 conv over-parameterised, as itself plus a 3x3 conv to ``reparam`` times its
    #: channels and a 1x1 back (folded into one conv on every step and before saving: the
    #: student is unchanged at inference). 0: plain; None: the family's default
    reparam: Annotated[int, Range(0, 16)] | None = None
    #: LR-space families: other widths or depths at some scales, e.g. ``[{scale: 4, width: 48}]``
    per_scale: tuple[ScaleShape, ...] = ()
    #: LR-space families: the scales whose students have the same width and depth train one body
    #: between them (each keeps its first and last conv and its anchor; each saved student holds
    #: its copy); a scale of another shape shares with those of its own shape
    shared_body: bool = False
    #: ``he``: VDSR init; ``zero-tail``: He with the last conv at 0 (starts exactly at bicubic);
    #: ``teacher-prune``: the teacher's ``width`` output channels of largest L1 norm per layer;
    #: ``teacher-refit``: those channels refitted layer by layer in closed form to the teacher on
    #: the sample pool (:mod:`edgesr.models.refit`; needs ``samples.pool_images``)
    init: Literal["he", "zero-tail", "teacher-prune", "teacher-refit"] = "he"
    #: teacher-refit: ridge of each layer's least squares, relative to its mean input energy
    refit_ridge: NonNegative = 1e-4
    #: teacher-refit: share of the pool's pixels each layer's normal equations are built from
    refit_pixels: Share = 0.25
    #: teacher-refit: fit on at most the first N pool images (at every scale); 0 = the whole
    #: pool. A pool larger than the fit needs costs only the teacher's outputs on the rest.
    refit_images: NonNegativeInt = 0
    #: the first ``slow_convs`` convs of each student (its first conv counts as one) learn at
    #: ``slow_lr`` times the student's learning rate. In a long run of a refitted VDSR-half, the
    #: ReLUs of its first layers die one after the other at the full rate, most of them by the
    #: end of the hour (``benchmarks/dead_channels.py``); the layers behind them keep learning
    slow_convs: NonNegativeInt = 0
    slow_lr: Annotated[float, Range(0, 1)] = 0.1
    #: decay of an exponential moving average of the student's weights, updated after every
    #: step (its first steps average over fewer: ``min(ema, (1 + n) / (10 + n))`` after ``n``);
    #: validation, the saved student and the run's results use the average, and validation also
    #: logs the trained weights (``val_psnr_trained``). 0: off. A progressive student's average
    #: starts again at each stage.
    ema: Annotated[float, Range(0, 1, high_open=True)] = 0.0

    def family(self) -> Family:
        return family(self.arch)

    @property
    def resolved_width(self) -> int:
        return self.family().width if self.width is None else self.width

    @property
    def resolved_depth(self) -> int:
        return self.family().depth if self.depth is None else self.depth

    def own(self, scale: int) -> ScaleShape:
        """What ``per_scale`` says for ``scale`` (all None where it says nothing)."""
        return next((p for p in self.per_scale if p.scale == scale), ScaleShape(scale))

    def shape(self, scale: int) -> tuple[int, int, str | None]:
        """``(width, depth, anchor)`` of the student of ``scale``."""
        own = self.own(scale)
        return (self.resolved_width if own.width is None else own.width,
                self.resolved_depth if own.depth is None else own.depth,
                self.anchor if own.anchor is None else own.anchor)


@dataclass(frozen=True)
class SamplesConfig:
    """What the student learns from: a pool of procedural images (drawn once, the teacher's
    outputs on them computed once) and the DFSR generators (fresh samples every step, trained
    by Algorithm 1), mixed per batch by ``generator_share``."""

    #: procedural priors the pool is drawn from (:mod:`edgesr.samples.priors`)
    priors: tuple[Literal["dead-leaves", "dead-leaves-aa", "textured-leaves", "pink-noise"], ...] = ()
    #: their mixing weights, one per prior (empty: equal)
    prior_weights: tuple[NonNegative, ...] = ()
    #: HR images in the pool, each degraded at every scale (0: no pool)
    pool_images: NonNegativeInt = 0
    #: side of the pool images in HR pixels (a multiple of every scale)
    pool_size: Annotated[int, Range(8)] = 96
    #: side of the pool crops student batches are made of, in HR pixels
    patch: Annotated[int, Range(8)] = 48
    #: LR-space students: side of their LR crops (0: ``patch`` divided by the scale); the
    #: teacher's outputs are cropped to ``lr_patch * scale`` to match
    lr_patch: NonNegativeInt = 0
    #: HR pixels along each side of a crop that the student's loss leaves out. The cached teacher
    #: outputs were computed on whole pool images, so near a crop's edge they depend on pixels
    #: the crop cut off, which the student never sees (it sees zero padding there): over a
    #: 48-px crop the teacher's own output on the crop differs from the cached one by 38.7 dB
    #: PSNR with no margin, 48.7 dB with 4 px, 63 dB with 8 (``benchmarks/crop_context.py``)
    loss_margin: NonNegativeInt = 0
    #: random flips and quarter turns of the pool crops (input and cached teacher output alike)
    symmetries: bool = True
    #: the pool's targets: the teacher's outputs averaged over this many of the square's eight
    #: symmetries of each pool image, each mapped back (1: its single pass); every view beyond
    #: the first costs one more teacher pass over the pool in the preparation
    teacher_views: Annotated[int, Range(1, SQUARE_SYMMETRIES)] = 1
    #: how often the student sees each scale, one weight per scale in the order of ``scales``
    #: (empty: equally often): the pool's images of a scale are drawn, and the generators'
    #: cycles pick a scale, in these proportions. One network serves every scale of a
    #: bicubic-input student, so this shares its capacity out between them
    scale_weights: tuple[NonNegative, ...] = ()
    #: share of each student batch the generators make fresh; the rest comes from the pool
    #: (1: the paper's method, no pool; 0: no generators, and so no generator steps and no CMI)
    generator_share: Annotated[float, Range(0, 1)] = 1.0


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: Count = 256
    channels: Annotated[int, Range(2)] = 128
    #: LR patch size per scale, in the order of ``scales``, each a multiple of 4 (at least 8: the
    #: first feature map, lr / 4, needs more than one pixel to normalise); HR patches are lr * scale
    lr_sizes: tuple[Annotated[int, Range(8)], ...] = (24, 16, 12)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-5, schedule="constant"))
    #: Algorithm 1 line 20: also take gradient steps on a persistent z (0 = off)
    z_lr: NonNegative = 0.0
    #: DFSR-reference mimicry: never update the generators
    frozen: bool = False
    #: DFSR-reference mimicry: round the generator-path bicubic to 8 bits (kills its gradient)
    round_bicubic: bool = False


@dataclass(frozen=True)
class LossConfig:
    #: weight of the reconstruction loss L_R (Eq. 1)
    w_r: NonNegative = 1.0
    #: weight of the contrastive loss L_cr (Eq. 12); 0 = DFSR baseline
    w_c: NonNegative = 0.8
    #: weight of the adversarial term -log(L_KD + 1) (Eq. 2)
    w_adv: NonNegative = 1.0
    #: the distance L_KD measures between the teacher's and the student's outputs (the
    #: student minimises it, the generators' adversarial term maximises it): ``l1`` as
    #: published, or ``mse``
    kd: Literal["l1", "mse"] = "l1"
    #: weight of the feature loss: each body block of a teacher-refit student against the teacher
    #: channels the refit fitted it to (relative L1, the mean over blocks); 0 = outputs only.
    #: Costs a teacher forward pass a step
    w_feat: NonNegative = 0.0


@dataclass(frozen=True)
class CMIConfig:
    head_dim: Count = 256
    head_lr: NonNegative = 1e-3
    temperature: Positive = 0.1
    #: memory bank entries per scale (a multiple of the batch size)
    bank_size: Count = 40960
    #: negatives sampled from the bank per generator step
    negatives: NonNegativeInt = 4096
    #: global view: random crop with this zero padding (LR pixels) + flip
    pad: NonNegativeInt = 2
    #: local view: random resized crop with this area range (low, high) + flip
    local_scale: tuple[Share, Share] = (0.25, 1.0)
    #: standardise each pooled feature over the batch and the bank negatives before the head.
    #: The pooled VDSR features of different samples have cosine similarity ~0.98-0.997: left
    #: as they are (CMI's published form, and this key's default, so that older run folders
    #: resume unchanged), every logit is within a few hundredths of the others at temperature
    #: 0.1 and InfoNCE stays at chance; standardised, the head tells samples apart.
    standardize: bool = False


@dataclass(frozen=True)
class ProgressiveConfig:
    #: number of stages P (1 = train the full student from the start)
    stages: Count = 1
    #: student steps in each stage (one value for all stages, or one per stage)
    steps: tuple[Count, ...] = (1000,)

    def steps_per_stage(self) -> list[int]:
        return list(self.steps) * self.stages if len(self.steps) == 1 else list(self.steps)


@dataclass(frozen=True)
class Int8Config:
    """How ``edgesr export --precision int8`` treats this run's students unless told otherwise:
    the run knows what quantizes its students well (benchmarks/int8_choices.py measures it)."""

    #: quantization-aware distillation steps before quantizing (``--qad-steps`` overrides)
    qad_steps: NonNegativeInt = 0
    #: their learning rate (None: the exporter's, ``edgesr.export.int8.QAD_LR``)
    qad_lr: Positive | None = None


@dataclass(frozen=True)
class DistillRecipe(RunRecipe):
    #: ``int8`` only says how the run's students are exported: a resumed run may change it
    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunRecipe.RESUMABLE, "int8")

    name: str = "distill"
    #: zoo name or weights file (default: ``Teachers.DEFAULT``)
    teacher: ModelRef = Teachers.DEFAULT.value.name
    scales: tuple[Scale, ...] = (2, 3, 4)
    batch_size: Count = 128
    #: student steps per generator step (DFSR: 50)
    student_steps_per_gen_step: Count = 50
    student: StudentConfig = field(default_factory=StudentConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    student_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.1, weight_decay=1e-4, clip_grad_norm=0.4, step_every=60000)
    )
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    cmi: CMIConfig = field(default_factory=CMIConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    validation: ValidationConfig = field(default_factory=lambda: ValidationConfig(data="../shared/data/train291"))
    int8: Int8Config = field(default_factory=Int8Config)

    def scale_steps(self, scale: int) -> int:
        """Updates a training step of the LR-space student of ``scale`` (``student.per_scale``, or 1)."""
        return self.student.own(scale).steps or 1

    def scale_batch(self, scale: int) -> int:
        """Crops a step of the LR-space student of ``scale`` (``student.per_scale`` or ``batch_size``)."""
        return self.student.own(scale).batch or self.batch_size

    def lr_crop(self, scale: int) -> int:
        """Side of the LR crops of the LR-space student of ``scale`` (``samples.lr_patch``, or
        ``samples.patch`` divided by the scale)."""
        return self.samples.lr_patch or self.samples.patch // scale

    def validate(self) -> None:
        super().validate()
        check_scales(self.scales, "recipe key scales")
        if self.batch_size < 2:  # CMI and the diversity measure compare a batch's samples
            fail("batch_size", f"must be >= 2, got {self.batch_size}")
        if self.samples.generator_share > 0 and len(self.generator.lr_sizes) != len(self.scales):
            fail("scales", f"{list(self.scales)} needs one generator.lr_sizes entry per scale, "
                           f"got {list(self.generator.lr_sizes)}: set both")
        if any(s % 4 for s in self.generator.lr_sizes):
            fail("generator.lr_sizes", f"each must be a multiple of 4, got {list(self.generator.lr_sizes)}")
        if self.cmi.bank_size % self.batch_size:
            fail("cmi.bank_size", f"{self.cmi.bank_size} is not a multiple of batch_size {self.batch_size}")
        if self.cmi.local_scale[0] > self.cmi.local_scale[1]:
            fail("cmi.local_scale", f"low {self.cmi.local_scale[0]} is above high {self.cmi.local_scale[1]}")
        if len(self.progressive.steps) not in (1, self.progressive.stages):
            fail("progressive.steps", "give one value or one per stage")
        st = self.student
        names = [f.name for f in families()]
        if st.arch not in names:
            fail("student.arch", f"unknown {st.arch!r}: use one of {', '.join(names)} (edgesr students lists them)")
        fam = st.family()
        for key, anchor in [("student.anchor", st.anchor), *(("student.per_scale", p.anchor) for p in st.per_scale)]:
            if anchor is not None and anchor not in fam.anchors:
                fail(key, f"{st.arch} takes {', '.join(fam.anchors) or 'no anchor'}, not {anchor}")
        if st.resolved_depth < fam.min_depth:
            fail("student.depth", f"{st.arch} needs at least {fam.min_depth} layers, got {st.resolved_depth}")
        shallowest = min(st.shape(s)[1] for s in self.scales)
        if st.slow_convs >= shallowest:
            fail("student.slow_convs", f"must be fewer than the student's {shallowest} convs, got {st.slow_convs}")
        if self.progressive.stages > st.resolved_depth - 2:
            fail("progressive.stages", f"must be at most the {st.resolved_depth - 2} body blocks of student.depth")
        if (st.reparam or fam.reparam) and self.progressive.stages != 1:
            fail("progressive.stages", "an over-parameterised student (student.reparam) is whole from the start: "
                                       "use 1 stage")
        # an entry for a scale the run does not train is unused, so that `--set scales=[2]` works
        # on a recipe that shapes its x4 student
        given = [p.scale for p in st.per_scale]
        if given and (fam.input_kind != "lr" or len(set(given)) != len(given)):
            fail("student.per_scale", "sets the shape of an LR-space student at a scale, each scale once; got "
                                      f"scales {given} for {st.arch}")
        if any(st.shape(s)[1] < fam.min_depth for s in self.scales):
            fail("student.per_scale", f"{st.arch} needs at least {fam.min_depth} layers")
        if st.shared_body and fam.input_kind != "lr":
            fail("student.shared_body", f"shares the body of LR-space students between scales; {st.arch} is one "
                                        "network for every scale (student.shared_body=false)")
        for s in self.scales:
            shared = st.shared_body and any(st.shape(o)[:2] == st.shape(s)[:2] for o in self.scales if o != s)
            if self.scale_steps(s) > 1 and shared:
                fail("student.per_scale", f"x{s} takes {self.scale_steps(s)} updates a step but shares its body "
                                          "with another scale of its shape: give it its own width or depth")
        if fam.input_kind == "lr":
            lr_keys = {"student.init": (st.init, "he"), "progressive.stages": (self.progressive.stages, 1),
                       "samples.generator_share": (self.samples.generator_share, 0.0)}
            for key, (value, allowed) in lr_keys.items():
                if value != allowed:
                    fail(key, f"{st.arch} works at LR and learns from the sample pool: it takes {allowed}, got {value}")
            for s in self.scales:
                lr = self.lr_crop(s)
                if lr < 4 or lr * s > self.samples.pool_size:
                    fail("samples.lr_patch", f"x{s}: an LR crop of {lr} px needs 4 <= crop and crop * {s} <= "
                                             f"samples.pool_size {self.samples.pool_size}")
        sm = self.samples
        pool = sm.pool_images > 0
        if pool and not sm.priors:
            fail("samples.priors", "a pool (samples.pool_images > 0) is drawn from at least one prior")
        if sm.prior_weights and len(sm.prior_weights) != len(sm.priors):
            fail("samples.prior_weights", "give one weight per prior, or none")
        if sm.scale_weights:
            if len(sm.scale_weights) != len(self.scales) or not sum(sm.scale_weights) > 0:
                fail("samples.scale_weights", f"give one weight per scale of {list(self.scales)}, not all zero, "
                                              "or none")
            if fam.input_kind == "lr":
                fail("samples.scale_weights", f"{st.arch} trains every scale's network each step: shape a "
                                              "scale's share with student.per_scale")
        if sm.generator_share < 1 and not pool:
            fail("samples.pool_images", f"generator_share {sm.generator_share} leaves part of each batch "
                 "to the pool: give samples.pool_images > 0")
        if sm.teacher_views > 1 and not pool:
            fail("samples.teacher_views", "averages the teacher's outputs on the sample pool: give "
                                          "samples.pool_images > 0")
        if self.student.init == "teacher-refit" and not pool:
            fail("student.init", "teacher-refit fits the student on the sample pool: give samples.pool_images > 0")
        if self.losses.w_feat > 0 and self.student.init != "teacher-refit":
            fail("losses.w_feat", "compares the student's features with the teacher channels the refit fitted "
                                  f"them to: it needs student.init=teacher-refit, got {self.student.init}")
        if self.student.init == "teacher-refit" and self.progressive.stages != 1:
            fail("progressive.stages", "a teacher-refit student is whole from the start: use 1 stage")
        if pool and any(sm.pool_size % s for s in self.scales):
            fail("samples.pool_size", f"{sm.pool_size} is not a multiple of every scale {list(self.scales)}")
        if pool and fam.input_kind == "bicubic" and sm.patch > sm.pool_size:
            fail("samples.patch", f"{sm.patch} is larger than samples.pool_size {sm.pool_size}")
        crop = min(self.lr_crop(s) * s if fam.input_kind == "lr" else sm.patch for s in self.scales)
        if 2 * sm.loss_margin >= crop:
            fail("samples.loss_margin", f"{sm.loss_margin} px on each side leaves nothing of a {crop}-px crop")

    @property
    def total_steps(self) -> int:
        return sum(self.progressive.steps_per_stage())
