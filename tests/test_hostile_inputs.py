"""Hostile-but-fair inputs to every command: one table, one contract.

Each row is a command line, the input it meets (made by ``setup`` in a fresh folder that is the
working folder), the fragment of the message expected, the exit code, and the paths (files or
folders) that must come out byte for byte as they went in; a path absent before must stay
absent (no half-made run folder). A failing row must print exactly one line on stderr (unless
it says otherwise) and never a traceback; a succeeding row finds its fragment on stdout.
``then`` checks what the command left where that is the point (a resumed run's log).

Commands run in-process through the real entry point (``edgesr.cli.app``) so that the table
stays fast; an exception escaping it is printed as the interpreter would print it, so a
traceback fails the row exactly as it would fail a user. A full disk is a file-size limit
(``RLIMIT_FSIZE``): the kernel fails the write with EFBIG where a full disk gives ENOSPC,
through the same code path. ``/sys`` is a folder nobody may write, root included.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from edgesr import cli
from edgesr.errors import EdgesrError
from edgesr.io import stale_temporaries
from edgesr.models.formats import save_safetensors
from edgesr.train import run_folder
from edgesr.train.run_folder import lock_run, new_run_dir, unlock_run
from tests.distill_helpers import tiny_teacher
from tests.teacher_helpers import write_images

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# ----------------------------------------------------------------------------- running a command


@contextlib.contextmanager
def file_size_limit(nbytes: int | None):
    """Writes past ``nbytes`` fail with EFBIG while inside (SIGXFSZ ignored, as a full disk
    does not kill the writer either)."""
    if nbytes is None:
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, previous)


def run_edgesr(argv: list[str], fsize: int | None = None) -> tuple[int, str, str]:
    """``edgesr ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with file_size_limit(fsize):
                cli.app(args=cli.expand_multi_value(argv), prog_name="edgesr")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # what Python prints for an uncaught exception, then exits 1
            traceback.print_exc()
            code = 1
    return code, out.getvalue(), err.getvalue()


def digest(path: Path) -> str | None:
    """A path's bytes (a folder: every file under it, with names), or None if it is absent."""
    if not path.exists():
        return None
    h = hashlib.sha256()
    for f in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
        h.update(str(f.relative_to(path.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- the inputs

TINY_DISTILL = {
    "name": "tiny", "device": "cpu", "batch_size": 4, "student_steps_per_gen_step": 2, "scales": [2, 4],
    "student": {"width": 4, "depth": 6},
    "student_optim": {"name": "sgd", "lr": 0.01, "clip_grad_norm": 0.4},
    "generator": {"lr_sizes": [8, 8], "channels": 8, "z_dim": 16,
                  "optim": {"name": "adam", "lr": 0.001, "schedule": "constant"}},
    "cmi": {"bank_size": 8, "negatives": 4, "head_dim": 8},
    "progressive": {"stages": 2, "steps": [3]},
    "validation": {"data": None}, "evaluation": {"sets": []},
    "checkpoint_every": 2, "log_every": 1,
}
TINY_TEACHER = {
    "name": "tiny", "data": "images", "device": "cpu", "scales": [2, 3], "width": 8, "depth": 5, "batch_size": 8,
    "steps": 8, "patches": {"size": 24},
    "optim": {"name": "adam", "lr": 0.002, "betas": [0.9, 0.999], "schedule": "cosine", "warmup": 2},
    "validation": {"images": 2, "crop": 48, "every": 4}, "evaluation": {"sets": []},
    "checkpoint_every": 2, "log_every": 1,
}
DISTILL_STEPS, TEACHER_STEPS = 6, 8


@dataclass
class World:
    """What the rows copy into their folders, made once."""

    root: Path
    teacher: Path  # tiny teacher weights for distillation
    distill_recipe: Path
    distill_run: Path  # stopped by SIGTERM at step 3 of 6
    teacher_recipe: Path
    teacher_run: Path  # stopped by SIGTERM at step 3 of 8 (images beside it)
    images: Path
    lr_model: Path  # a real lr export (in-graph MATLAB bicubic), x2
    bicubic_model: Path
    student: Path  # weights for export/eval


def _stopped_run(argv: list[str], cwd: Path, at: int) -> None:
    """``edgesr ARGV`` stopped as SIGTERM would stop it after step ``at``."""
    import edgesr.train.command as command

    fit = command.fit

    def stop_at(trainer, run_dir, metrics, stop, on_step=None):
        def step(n, record):
            on_step(n, record)
            if n == at:
                stop(signal.SIGTERM, None)

        return fit(trainer, run_dir, metrics, stop, step)

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(command, "fit", stop_at)
        code, _, err = run_edgesr(argv)
    assert code == 143 and f"stopped: SIGTERM at step {at}: checkpoint saved" in err, err


def _with_meta(src: Path, dst: Path, **props: str) -> Path:
    model = onnx.load(str(src))
    for p in model.metadata_props:
        if p.key.removeprefix("edgesr.") in props:
            p.value = props[p.key.removeprefix("edgesr.")]
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


def make_world(root: Path) -> World:
    """The inputs every row copies from, made in ``root`` (also by ``benchmarks/hostile_matrix.py``)."""
    from edgesr.artifact import ArtifactMeta
    from edgesr.export.deploy_net import DeployNet
    from tests.artifacts import bicubic_artifact, export_onnx, tiny_vdsr

    teacher = root / "teacher.safetensors"
    save_safetensors(tiny_teacher(123), teacher)
    distill_recipe = root / "tiny.yaml"
    distill_recipe.write_text(json.dumps({**TINY_DISTILL, "teacher": str(teacher)}))
    _stopped_run(["distill", "--recipe", str(distill_recipe), "--out", "runs"], root, at=3)
    images = write_images(root / "images", n=5)
    teacher_recipe = root / "teacher-tiny.yaml"
    teacher_recipe.write_text(json.dumps(TINY_TEACHER))
    _stopped_run(["teacher", "train", "--recipe", str(teacher_recipe), "--out", "truns"], root, at=3)
    net = tiny_vdsr()
    lr_model = export_onnx(DeployNet(net, 2, "lr"), root / "lr.onnx",
                           ArtifactMeta(scale=2, input_kind="lr", precision="fp32", model="tiny-test"))
    student = root / "student.safetensors"
    save_safetensors(net, student)
    return World(root, teacher, distill_recipe, root / "runs" / "tiny", teacher_recipe, root / "truns" / "tiny",
                 images, lr_model, bicubic_artifact(root / "bicubic.onnx", net), student)


# ----------------------------------------------------------------------------- setups

Setup = Callable[[Path, World], "Callable[[], None] | None"]


def nothing(d: Path, w: World) -> None:
    return None


def distill_run(edit: Callable[[Path], None] = lambda run: None) -> Setup:
    """The stopped distillation run as ``run``, with ``edit`` applied."""

    def setup(d: Path, w: World) -> None:
        shutil.copytree(w.distill_run, d / "run")
        edit(d / "run")

    return setup


def teacher_run(edit: Callable[[Path], None] = lambda run: None) -> Setup:
    def setup(d: Path, w: World) -> None:
        shutil.copytree(w.teacher_run, d / "run")
        shutil.copytree(w.images, d / "images")
        edit(d / "run")

    return setup


def replace_in(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        text = (run / name).read_text()
        assert old in text, (old, text)
        (run / name).write_text(text.replace(old, new, 1))

    return edit


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        (run / name).write_bytes(data.encode() if isinstance(data, str) else data)

    return edit


def append(name: str, text: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        with open(run / name, "a") as f:
            f.write(text)

    return edit


class _Payload:
    """Unpickling this runs ``touch ran``: what a hostile checkpoint does to an unsafe reader."""

    def __reduce__(self):
        return os.system, ("touch payload-ran",)


def pickle_payload(run: Path) -> None:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "step": _Payload()}, run / "checkpoint.pt")


def locked(d: Path, w: World):
    """The stopped run, held by "another process" (a lock on its own open of the folder)."""
    shutil.copytree(w.distill_run, d / "run")
    fd = os.open(d / "run", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return lambda: os.close(fd)


def files(made: dict[str, Callable[[Path, World], None]] | None = None) -> Setup:
    """The models copied in, and each file of ``made`` (a relative path) made by its function."""

    def setup(d: Path, w: World) -> None:
        for name in ("lr_model", "bicubic_model", "student"):
            src = getattr(w, name)
            shutil.copy(src, d / src.name)
        for name, make in (made or {}).items():
            make(d / name, w)

    return setup


def image(h: int, w_: int, seed: int = 0) -> Callable[[Path, World], None]:
    def make(path: Path, w: World) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        px = np.random.default_rng(seed).integers(0, 256, (h, w_, 3), dtype=np.uint8)
        Image.fromarray(px).save(path)

    return make


def raw(data: bytes) -> Callable[[Path, World], None]:
    def make(path: Path, w: World) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return make


def animated_gif(path: Path, w: World) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def forged(**props: str) -> Callable[[Path, World], None]:
    """The lr model with some ``edgesr.*`` metadata replaced."""

    def make(path: Path, w: World) -> None:
        _with_meta(w.lr_model, path, **props)

    return make


def forged_model(**props: str) -> Setup:
    return files({"m.onnx": forged(**props), "a.png": image(9, 9)})


def engine_with_sidecar(path: Path, w: World) -> None:
    path.write_bytes(b"not an engine")
    meta = {p.key: p.value for p in onnx.load(str(w.lr_model)).metadata_props if p.key.startswith("edgesr.")}
    path.with_name(path.name + ".json").write_text(json.dumps({**meta, "edgesr.scale": '"two"'}))


def student_meta(**meta: str) -> Callable[[Path, World], None]:
    """The student's weights with hostile safetensors metadata."""

    def make(path: Path, w: World) -> None:
        from tests.artifacts import tiny_vdsr

        save_safetensors(tiny_vdsr(), path, meta)

    return make


def hostile_generators(path: Path, w: World) -> None:
    """A run folder whose generators claim a 10^9-wide noise input over weights of another size."""
    from safetensors.torch import save_file

    path.mkdir()
    config = {"2": {"lr_size": 8, "z_dim": 10**9, "channels": 8}}
    save_file({"x2.fc.weight": torch.zeros(32, 16)}, str(path / "generators.safetensors"),
              metadata={"configs": json.dumps(config)})


def recipe_file(data: bytes | str) -> Setup:
    def setup(d: Path, w: World) -> None:
        (d / "recipe.yaml").write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def png_recipe(d: Path, w: World) -> None:
    image(16, 16)(d / "recipe.png", w)


def teacher_images(d: Path, w: World) -> None:
    shutil.copytree(w.images, d / "images")


def eval_data(d: Path, w: World) -> None:
    shutil.copy(w.student, d / "student.safetensors")
    image(24, 24)(d / "set" / "a.png", w)


# ----------------------------------------------------------------------------- checks afterwards


def steps_logged(run: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]


def finished_cleanly(total: int, first: int = 1) -> Callable[[Path], None]:
    """A resumed run that ended as an uninterrupted one would: complete, each step logged once
    (from ``first``: 0 where step 0 is validated), every line whole, no temporary left."""

    def check(d: Path) -> None:
        run = d / "run"
        assert (run / "results.json").is_file()
        assert steps_logged(run) == list(range(first, total + 1))
        assert stale_temporaries(run) == []

    return check


def payload_never_ran(d: Path) -> None:
    assert not (d / "payload-ran").exists()
    assert not (d / "run" / "results.json").exists()


def exists(*names: str) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        for name in names:
            assert (d / name).is_file(), name

    return check


def size_of(name: str, size: tuple[int, int]) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        with Image.open(d / name) as im:
            assert im.size == size

    return check


def no_temporaries(folder: str) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        assert stale_temporaries(d / folder) == [], list((d / folder).iterdir())

    return check


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    setup: Setup
    fragment: str
    code: int = 1
    unchanged: tuple[str, ...] = ()
    stderr_lines: int = 1
    then: Callable[[Path], None] | None = None
    #: a file-size limit (bytes) while the command runs: writes past it fail as on a full disk
    fsize: int | None = None


RUN_FILES = ("run/checkpoint.pt", "run/recipe.yaml", "run/metrics.jsonl")
DISTILL = ("distill", "--recipe", "tiny.yaml", "--out", "runs")
RESUME = ("distill", "--resume", "run")
TEACHER = ("teacher", "train", "--recipe", "teacher-tiny", "--data", "images", "--out", "runs")
UPSCALE = ("upscale", "--model", "lr.onnx")
FORGED = ("upscale", "--model", "m.onnx", "a.png", "-o", "o.png")


def tiny_yaml(d: Path, w: World) -> None:
    shutil.copy(w.distill_recipe, d / "tiny.yaml")


def bad_key(key: str, value: str, fragment: str) -> Case:
    return Case(f"distill --set {key}={value}", (*DISTILL, "--set", f"{key}={value}"), tiny_yaml, fragment,
                unchanged=("runs",))


def bad_keys(overrides: str, fragment: str) -> Case:
    """Keys that are each in range but do not go together (``overrides``: space-separated)."""
    return Case(f"distill --set {overrides}", (*DISTILL, "--set", *overrides.split()), tiny_yaml, fragment,
                unchanged=("runs",))


POOL = "samples.priors=[dead-leaves] samples.pool_images=2 samples.pool_size=16 samples.patch=8"


CASES = [
    # --- 1. code execution from run folders
    Case("distill --resume: pickle payload in checkpoint.pt", RESUME, distill_run(pickle_payload),
         "holds objects other than tensors and plain data: refused, nothing in it was run",
         unchanged=RUN_FILES, then=payload_never_ran),
    Case("teacher train --resume: pickle payload in checkpoint.pt", ("teacher", "train", "--resume", "run"),
         teacher_run(pickle_payload), "refused, nothing in it was run", unchanged=RUN_FILES, then=payload_never_ran),
    # --- 2a. recipe values, checked before any folder is made
    bad_key("batch_size", "0", "recipe key batch_size: must be >= 1, got 0"),
    bad_key("batch_size", "1", "recipe key batch_size: must be >= 2, got 1"),
    bad_key("log_every", "0", "recipe key log_every: must be >= 1, got 0"),
    bad_key("checkpoint_every", "0", "recipe key checkpoint_every: must be >= 1, got 0"),
    bad_key("validation.every", "0", "recipe key validation.every: must be >= 1, got 0"),
    bad_key("student.width", "0", "recipe key student.width: must be in [1, 256], got 0"),
    bad_key("student_optim.lr", "-0.1", "recipe key student_optim.lr: must be >= 0, got -0.1"),
    bad_key("generator.optim.lr", "-1", "recipe key generator.optim.lr: must be >= 0"),
    bad_key("cmi.temperature", "0", "recipe key cmi.temperature: must be > 0, got 0"),
    bad_key("student_optim.lr", ".nan", "recipe key student_optim.lr: expected a finite number"),
    bad_key("budget_minutes", ".inf", "recipe key budget_minutes: expected a finite number"),
    bad_key("progressive.steps", "[0]", "recipe key progressive.steps[0]: must be >= 1, got 0"),
    bad_key("progressive.steps", "[-5]", "recipe key progressive.steps[0]: must be >= 1, got -5"),
    bad_key("scales", "[5]", "recipe key scales: [5] needs one generator.lr_sizes entry per scale"),
    bad_key("scales", "[9]", "recipe key scales[0]: must be in [2, 8], got 9"),
    bad_key("batch_size", "[1", "override 'batch_size=[1': the value is not valid YAML"),
    # the sample pool's keys: ranges, and the keys they need beside them
    bad_key("samples.generator_share", "1.5", "recipe key samples.generator_share: must be in [0, 1], got 1.5"),
    bad_key("samples.priors", "[fractal]", "recipe key samples.priors[0]: expected one of"),
    bad_key("samples.pool_size", "4", "recipe key samples.pool_size: must be >= 8, got 4"),
    bad_key("student.refit_pixels", "0", "recipe key student.refit_pixels: must be in (0, 1], got 0"),
    bad_keys("samples.pool_images=2", "recipe key samples.priors: a pool (samples.pool_images > 0) is drawn "
             "from at least one prior"),
    bad_keys("samples.generator_share=0.5", "recipe key samples.pool_images: generator_share 0.5 leaves part "
             "of each batch to the pool"),
    bad_keys("student.init=teacher-refit", "recipe key student.init: teacher-refit fits the student on the "
             "sample pool"),
    bad_keys(f"{POOL} student.init=teacher-refit", "recipe key progressive.stages: a teacher-refit student is "
             "whole from the start"),
    bad_keys(f"{POOL} losses.w_feat=0.1", "recipe key losses.w_feat: compares the student's features with the "
             "teacher channels the refit fitted them to: it needs student.init=teacher-refit"),
    bad_keys(f"{POOL} samples.pool_size=18", "recipe key samples.pool_size: 18 is not a multiple of every "
             "scale [2, 4]"),
    bad_keys(f"{POOL} samples.patch=24", "recipe key samples.patch: 24 is larger than samples.pool_size 16"),
    bad_keys(f"{POOL} samples.prior_weights=[1,2]", "recipe key samples.prior_weights: give one weight per "
             "prior"),
    bad_keys(f"{POOL} samples.scale_weights=[1,2,3]", "recipe key samples.scale_weights: give one weight per "
             "scale of [2, 4], not all zero, or none"),
    bad_keys(f"{POOL} samples.scale_weights=[0,0]", "recipe key samples.scale_weights: give one weight per scale"),
    bad_key("samples.teacher_views", "9", "recipe key samples.teacher_views: must be in [1, 8], got 9"),
    bad_keys("samples.teacher_views=8", "recipe key samples.teacher_views: averages the teacher's outputs on the "
             "sample pool: give samples.pool_images > 0"),
    bad_key("samples.scale_weights", "[1,-1]", "recipe key samples.scale_weights[1]: must be >= 0, got -1"),
    Case("distill --set on the default recipe: scales=[5]", ("distill", "--set", "scales=[5]", "--out", "runs"),
         nothing, "recipe key samples.pool_size: 96 is not a multiple of every scale [5]",
         unchanged=("runs",)),
    Case("distill --recipe a PNG", ("distill", "--recipe", "recipe.png", "--out", "runs"), png_recipe,
         "is binary data (an image? weights?), not a YAML text file", unchanged=("runs",)),
    Case("distill --recipe a binary file", ("distill", "--recipe", "recipe.yaml", "--out", "runs"),
         recipe_file(bytes(range(256)) * 4), "is binary data", unchanged=("runs",)),
    Case("distill --recipe broken YAML", ("distill", "--recipe", "recipe.yaml", "--out", "runs"),
         recipe_file("batch_size: [1, 2\n"), "is not valid YAML", unchanged=("runs",)),
    Case("distill --recipe a YAML list", ("distill", "--recipe", "recipe.yaml", "--out", "runs"),
         recipe_file("- 1\n- 2\n"), "must be a mapping of keys to values", unchanged=("runs",)),
    Case("distill --recipe YAML nested beyond reason", ("distill", "--recipe", "recipe.yaml", "--out", "runs"),
         recipe_file("[" * 1500 + "]" * 1500), "nests too deeply", unchanged=("runs",)),
    Case("teacher train --set batch_size=0", (*TEACHER, "--set", "batch_size=0"), teacher_images,
         "recipe key batch_size: must be >= 1, got 0", unchanged=("runs", "images")),
    Case("teacher train --set optim.lr=-1", (*TEACHER, "--set", "optim.lr=-1"), teacher_images,
         "recipe key optim.lr: must be >= 0", unchanged=("runs", "images")),
    Case("teacher train --recipe a PNG", ("teacher", "train", "--recipe", "recipe.png", "--data", "images"),
         png_recipe, "is binary data", unchanged=("runs",)),
    # --- 2b. resuming an edited or damaged run folder
    Case("distill --resume: recipe.yaml width edited", RESUME,
         distill_run(replace_in("recipe.yaml", "width: 4", "width: 8")),
         "recipe key student.width was changed since the checkpoint (4 -> 8)", unchanged=RUN_FILES),
    Case("distill --resume: recipe.yaml learning rate edited", RESUME,
         distill_run(replace_in("recipe.yaml", "lr: 0.01", "lr: 0.02")),
         "recipe key student_optim.lr was changed since the checkpoint (0.01 -> 0.02)", unchanged=RUN_FILES),
    Case("distill --resume: recipe.yaml broken YAML", RESUME, distill_run(append("recipe.yaml", "foo: [\n")),
         "recipe.yaml is not valid YAML", unchanged=RUN_FILES),
    Case("distill --resume: recipe.yaml a YAML list", RESUME, distill_run(write("recipe.yaml", "- a\n- b\n")),
         "must be a mapping of keys to values", unchanged=RUN_FILES),
    Case("distill --resume: recipe.yaml binary", RESUME, distill_run(write("recipe.yaml", b"\x89PNG\r\n\x1a\n\xff")),
         "is binary data", unchanged=RUN_FILES),
    Case("distill --resume: a key that may change (budget_minutes)", RESUME,
         distill_run(replace_in("recipe.yaml", "budget_minutes: 0.0", "budget_minutes: 30.0")),
         "resuming with a changed recipe: budget_minutes 0.0 -> 30.0", code=0,
         then=finished_cleanly(DISTILL_STEPS)),
    Case("distill --resume: metrics.jsonl's last line cut by the kill", RESUME,
         distill_run(append("metrics.jsonl", '{"step": 4, "stage": 1, "kd"')), "results:", code=0,
         then=finished_cleanly(DISTILL_STEPS)),
    Case("distill --resume: metrics.jsonl past the checkpoint (killed between log and checkpoint)", RESUME,
         distill_run(append("metrics.jsonl", '{"step": 4, "kd": 1.0}\n{"step": 5, "kd": 1.0}\n')), "results:",
         code=0, then=finished_cleanly(DISTILL_STEPS)),
    Case("distill --resume: killed before the first checkpoint", RESUME,
         distill_run(lambda run: (run / "checkpoint.pt").unlink()), "results:", code=0,
         then=finished_cleanly(DISTILL_STEPS)),
    Case("distill --resume: a 1 MB .checkpoint.pt.*.tmp left by a kill", RESUME,
         distill_run(write(".checkpoint.pt.k1ll3d.tmp", bytes(1 << 20))), "results:", code=0,
         then=finished_cleanly(DISTILL_STEPS)),
    Case("distill --resume: metrics.jsonl a symlink out of the folder", RESUME,
         distill_run(lambda run: ((run / "metrics.jsonl").unlink(), (run / "metrics.jsonl").symlink_to("../outside"),
                                  (run.parent / "outside").write_text('{"step": 1}\n'))),
         "run/metrics.jsonl is a symbolic link: a run folder's files must be its own", unchanged=("outside",)),
    Case("distill --resume: the folder is in use by another process", RESUME, locked,
         "run is in use by another edgesr process", unchanged=("run",)),
    Case("distill --resume: a finished run", RESUME,
         distill_run(write("results.json", "{}")), "is already complete", unchanged=("run",)),
    Case("distill --resume: not a run folder", ("distill", "--resume", "images"), teacher_images,
         "is not a run folder", unchanged=("images",)),
    Case("distill --resume: checkpoint.pt truncated", RESUME,
         distill_run(lambda run: (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:1000])),
         "run/checkpoint.pt is unreadable", unchanged=RUN_FILES),
    Case("teacher train --resume: recipe.yaml width edited", ("teacher", "train", "--resume", "run"),
         teacher_run(replace_in("recipe.yaml", "width: 8", "width: 16")),
         "recipe key width was changed since the checkpoint (8 -> 16)", unchanged=RUN_FILES),
    Case("teacher train --resume: metrics.jsonl's last line cut", ("teacher", "train", "--resume", "run"),
         teacher_run(append("metrics.jsonl", '{"step": 4, "lo')), "results:", code=0,
         then=finished_cleanly(TEACHER_STEPS, first=0)),
    # --- 2c. tiny images: padded and upscaled; in a folder, the bad one reported and the rest done
    Case("upscale a 1x1 image", (*UPSCALE, "a.png", "-o", "out.png"), files({"a.png": image(1, 1)}), "wrote out.png",
         code=0, unchanged=("a.png",), then=size_of("out.png", (2, 2))),
    Case("upscale a 1x7 image", (*UPSCALE, "a.png", "-o", "out.png"), files({"a.png": image(1, 7)}), "wrote out.png",
         code=0, then=size_of("out.png", (14, 2))),
    Case("upscale a 7x1 image", (*UPSCALE, "a.png", "-o", "out.png"), files({"a.png": image(7, 1)}), "wrote out.png",
         code=0, then=size_of("out.png", (2, 14))),
    Case("upscale a folder: tiny, broken and good images", (*UPSCALE, "in", "-o", "out"),
         files({"in/a.png": image(1, 1), "in/b.png": raw(b"\x89PNG\r\n\x1a\nbroken"), "in/c.png": image(7, 1),
                "in/d.png": image(9, 9)}),
         "1 of 4 images failed; the others were written to out", stderr_lines=2, unchanged=("in",),
         then=exists("out/a.png", "out/c.png", "out/d.png")),
    # --- 2d. outputs that cannot be written: the path and the OS reason, the last good state intact
    Case("distill --out under /sys", ("distill", "--recipe", "tiny.yaml", "--out", "/sys/edgesr-runs"), tiny_yaml,
         "cannot write /sys/edgesr-runs: "),
    Case("distill --out under a file", ("distill", "--recipe", "tiny.yaml", "--out", "tiny.yaml/runs"), tiny_yaml,
         "cannot write tiny.yaml/runs: tiny.yaml is a file, not a folder", unchanged=("tiny.yaml",)),
    Case("distill --resume: checkpoint write fails (full disk)", RESUME, distill_run(),
         "cannot write run/checkpoint.pt: File too large", unchanged=("run/checkpoint.pt", "run/recipe.yaml"),
         then=no_temporaries("run"), fsize=40_000),
    Case("distill: full disk from the first checkpoint on", DISTILL, tiny_yaml,
         "cannot write runs/tiny/checkpoint.pt: File too large", then=no_temporaries("runs/tiny"), fsize=40_000),
    Case("upscale -o under /sys", (*UPSCALE, "a.png", "-o", "/sys/edgesr-out.png"), files({"a.png": image(9, 9)}),
         "cannot write /sys/edgesr-out.png: "),
    Case("upscale -o under a file", (*UPSCALE, "a.png", "-o", "a.png/out.png"), files({"a.png": image(9, 9)}),
         "cannot write a.png/out.png: a.png is a file, not a folder", unchanged=("a.png",)),
    Case("upscale: image write fails (full disk)", (*UPSCALE, "a.png", "-o", "out.png"),
         files({"a.png": image(64, 64)}), "cannot write out.png: File too large", unchanged=("out.png",),
         then=no_temporaries("."), fsize=512),
    Case("upscale a folder into /sys: stops at the first write", (*UPSCALE, "in", "-o", "/sys/edgesr-out"),
         files({"in/a.png": image(9, 9), "in/b.png": image(9, 9, seed=1)}),
         "cannot write /sys/edgesr-out/a.png: ", unchanged=("in",)),
    Case("export -o under a file", ("export", "--model", "student.safetensors", "-o", "student.safetensors/x.onnx"),
         files(), "cannot write student.safetensors/x.onnx: student.safetensors is a file, not a folder",
         unchanged=("student.safetensors",)),
    Case("eval --json under /sys", ("eval", "--model", "student.safetensors", "--data", "set", "--scales", "2",
                                     "--no-ssim", "--json", "/sys/edgesr-eval.json"), eval_data,
         "cannot write /sys/edgesr-eval.json: "),
    Case("bench --json under /sys", ("bench", "bicubic.onnx", "--sizes", "16", "--runs", "1", "--warmup", "0",
                                      "--no-torch", "--json", "/sys/edgesr-bench.json"), files(),
         "cannot write /sys/edgesr-bench.json: "),
    # --- 2e. forged artifact metadata: validated on load
    Case("upscale: metadata scale=\"two\"", FORGED, forged_model(scale='"two"'),
         "m.onnx has invalid edgesr metadata: scale must be an integer from 2 to 8, got 'two'", unchanged=("m.onnx",)),
    Case("upscale: metadata scale not JSON", FORGED, forged_model(scale="two"), "scale is not JSON"),
    Case("upscale: metadata scale=0", FORGED, forged_model(scale="0"), "scale must be an integer from 2 to 8, got 0"),
    Case("upscale: metadata scale=3 on an x2 graph", FORGED, forged_model(scale="3"),
         "m.onnx does not match its metadata (lr input, x3): a 8x8 input gives 16x16, not 24x24"),
    Case("upscale: metadata input_kind=bicubic on an lr graph", FORGED, forged_model(input_kind="bicubic"),
         "does not match its metadata (bicubic input"),
    Case("upscale: metadata source_psnr a list", FORGED, forged_model(source_psnr="[1, 2]"),
         "source_psnr must be a JSON object"),
    Case("bench: metadata scale=0", ("bench", "m.onnx", "--sizes", "16", "--runs", "1", "--no-torch"),
         forged_model(scale="0"), "scale must be an integer from 2 to 8, got 0"),
    Case("upscale: TensorRT sidecar with scale=\"two\"", ("upscale", "--model", "m.engine", "a.png", "-o", "o.png"),
         files({"m.engine": engine_with_sidecar, "a.png": image(9, 9)}), "m.engine has invalid edgesr metadata: scale"),
    Case("export: student metadata measured_psnr a list", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": student_meta(measured_psnr="[1]")}),
         "m.safetensors: metadata field 'measured_psnr' is not {set: {scale: dB}}", unchanged=("m.onnx",)),
    Case("export --calib: generators whose sizes do not match their weights",
         ("export", "--model", "student.safetensors", "--precision", "int8", "--calib", "run", "-o", "m.onnx"),
         files({"run": hostile_generators}), "run/generators.safetensors is not a generators file of edgesr distill",
         unchanged=("m.onnx", "run")),
    # --- 5. multi-frame input and output formats
    Case("upscale an animated GIF", (*UPSCALE, "anim.gif", "-o", "out.png"),
         files({"anim.gif": animated_gif}), "has 3 frames (an animation or a multi-page file)", unchanged=("out.png",)),
    Case("upscale -o out.gif", (*UPSCALE, "a.png", "-o", "out.gif"), files({"a.png": image(9, 9)}),
         "cannot write out.gif: edgesr writes .bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp", unchanged=("out.gif",)),
    Case("bench --sizes 1", ("bench", "lr.onnx", "--sizes", "1", "--runs", "1", "--no-torch"), files(),
         "--sizes 1 is too small for this model"),
]


# ----------------------------------------------------------------------------- round 2 (issue 30)


def tiny_teacher_yaml(d: Path, w: World) -> None:
    teacher_images(d, w)
    shutil.copy(w.teacher_recipe, d / "teacher-tiny.yaml")


def deep_meta(path: Path, w: World) -> None:
    """The lr model with its ``extra`` metadata nested 100,000 deep."""
    from tests.forged import deep_json

    _with_meta(w.lr_model, path, extra=deep_json())


def deep_sidecar(path: Path, w: World) -> None:
    from tests.forged import deep_json

    path.write_bytes(b"not an engine")
    path.with_name(path.name + ".json").write_text(deep_json())


def deep_score_cache(d: Path, w: World) -> None:
    """eval's inputs, and a score cache for the student nested 100,000 deep (ignored, rewritten)."""
    from edgesr.cache import cache_dir
    from edgesr.models.zoo import sha256_of
    from tests.forged import deep_json

    eval_data(d, w)
    cache = cache_dir() / "scores" / f"{sha256_of(d / 'student.safetensors')}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(deep_json())


def score_cache_rewritten(d: Path) -> None:
    from edgesr.cache import cache_dir

    (cache,) = (cache_dir() / "scores").glob("*.json")
    assert list(json.loads(cache.read_text())), cache.read_text()[:100]


def both(*setups: Setup) -> Setup:
    """Each of ``setups`` in turn (none may need a cleanup)."""

    def setup(d: Path, w: World) -> None:
        for one in setups:
            assert one(d, w) is None

    return setup


def at(name: str, make: Callable[[Path, World], None]) -> Setup:
    """The file ``make`` makes, at ``name`` in the case's folder."""
    return lambda d, w: make(d / name, w)


def stopped_run_with_tiny_set(d: Path, w: World) -> None:
    """The stopped run, its evaluation set (a key a resume may change) a folder holding a 1x1 image."""
    distill_run(replace_in("recipe.yaml", "sets: []", f"sets: [{d / 'tiny'}]"))(d, w)
    image(1, 1)(d / "tiny" / "a.png", w)


def edited_checkpoint(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """The run's checkpoint.pt, read and written back with ``edit`` applied to its contents."""

    def apply(run: Path) -> None:
        import sys

        state = torch.load(run / "checkpoint.pt", weights_only=True)
        edit(state)
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))  # pickling a recipe nested 5000 deep
        try:
            torch.save(state, run / "checkpoint.pt")
        finally:
            sys.setrecursionlimit(limit)

    return apply


def put(*keys_and_value) -> Callable[[dict], None]:
    """``state[k1][k2]... = value``."""
    *keys, value = keys_and_value

    def edit(state: dict) -> None:
        node = state
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def forged_checkpoint(name: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        import tests.forged

        getattr(tests.forged, name)(run / "checkpoint.pt")

    return edit


def weights(**tensors) -> Callable[[Path, World], None]:
    """A safetensors file of exactly these tensors (shapes as a forger writes them)."""

    def make(path: Path, w: World) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))

    return make


def nan_student(path: Path, w: World) -> None:
    from tests.artifacts import tiny_vdsr

    net = tiny_vdsr()
    with torch.no_grad():
        net.body[0].conv.weight[0, 0, 1, 1] = math.nan
    save_safetensors(net, path)


def nan_artifact(path: Path, w: World) -> None:
    """An lr artifact exported (by hand: edgesr's export refuses them) from NaN weights."""
    from edgesr.artifact import ArtifactMeta
    from edgesr.export.deploy_net import DeployNet
    from tests.artifacts import export_onnx, tiny_vdsr

    net = tiny_vdsr()
    with torch.no_grad():
        net.tail.weight.fill_(math.nan)
    export_onnx(DeployNet(net, 2, "lr"), path, ArtifactMeta(scale=2, input_kind="lr", precision="fp32", model="nan"))


def forged_bytes(name: str, *args) -> Callable[[Path, World], None]:
    """A file made by ``tests.forged.<name>(*args)``."""

    def make(path: Path, w: World) -> None:
        import tests.forged

        raw(getattr(tests.forged, name)(*args))(path, w)

    return make


def old_bundle(path: Path, w: World) -> None:
    """A bundle folder as an earlier export wrote it, with the engine built on the device beside it."""
    path.mkdir(parents=True)
    for name in ("model.onnx", "model.meta.json", "README.md", "BENCH.md", "model.engine", "model.engine.json"):
        (path / name).write_text("old " + name)


def bundle_and_precious(path: Path, w: World) -> None:
    """A bundle folder that also holds the user's own files."""
    old_bundle(path, w)
    (path / "precious.txt").write_text("mine")
    (path / "sub").mkdir()
    (path / "sub" / "notes.md").write_text("mine too")


def linked_bundle(d: Path, w: World) -> None:
    """``link`` -> ``real``, an earlier bundle, beside the student."""
    files()(d, w)
    old_bundle(d / "real", w)
    (d / "link").symlink_to("real")


def link_replaced(d: Path) -> None:
    assert (d / "link").is_dir() and not (d / "link").is_symlink() and (d / "link" / "model.onnx").is_file()
    assert stale_temporaries(d) == [], list(d.iterdir())


def hard_link(target: str) -> Callable[[Path, World], None]:
    def make(path: Path, w: World) -> None:
        os.link(path.parent / target, path)

    return make


def student_in(path: Path, w: World) -> None:
    path.mkdir()
    shutil.copy(w.student, path / "student.safetensors")


def killed_writes(d: Path, w: World) -> None:
    """The student, and what SIGKILL left of earlier exports: a half-written ONNX file and a
    half-filled bundle folder, beside another output's temporary (not theirs to remove)."""
    files()(d, w)
    (d / ".m.onnx.k1ll3d.tmp").write_bytes(b"half an onnx")
    (d / ".b.x7r2hq9w.tmp").mkdir()
    (d / ".b.x7r2hq9w.tmp" / "model.onnx").write_bytes(b"half")
    (d / ".b.9d2e61aa.old.tmp").mkdir()
    (d / ".m.onnx.data.k1ll3d.tmp").write_bytes(b"another output's")


def temporaries_left(*names: str) -> Callable[[Path], None]:
    """Exactly ``names`` are left of the temporaries: other outputs' are not the run's to remove."""

    def check(d: Path) -> None:
        assert [p.name for p in stale_temporaries(d)] == sorted(names), list(d.iterdir())

    return check


def killed_upscale(d: Path, w: World) -> None:
    files({"in/a.png": image(9, 9), "in/b.png": image(9, 9, seed=1)})(d, w)
    (d / "out").mkdir()
    (d / "out" / ".a.png.k1ll3d.tmp").write_bytes(b"half a png")


EXPORT_TRT = ("export", "--model", "student.safetensors", "--target", "tensorrt")
ENGINE = ("upscale", "--model", "m.engine", "a.png", "-o", "o.png")
EVAL = ("eval", "--model", "student.safetensors", "--data", "set", "--scales", "2", "--no-ssim")

#: where issue 30's rows begin (benchmarks/hostile_matrix.py reports them apart)
ROUND2 = len(CASES)
CASES += [
    # --- 7. JSON nested 100,000 deep, wherever edgesr reads JSON
    Case("upscale: ONNX metadata nested 100000 deep", FORGED, files({"m.onnx": deep_meta, "a.png": image(9, 9)}),
         "m.onnx has invalid edgesr metadata: extra is nested deeper than 32 levels", unchanged=("m.onnx",)),
    Case("upscale: TensorRT sidecar .json nested 100000 deep", ENGINE,
         files({"m.engine": deep_sidecar, "a.png": image(9, 9)}), "cannot read m.engine.json: nested deeper than 32"),
    Case("export: safetensors metadata measured_psnr nested 100000 deep",
         ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": student_meta(measured_psnr="[" * 100_000 + "]" * 100_000)}),
         "m.safetensors: metadata field 'measured_psnr' is nested deeper than 32 levels", unchanged=("m.onnx",)),
    Case("export: safetensors metadata arch nested 100000 deep", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": student_meta(arch="[" * 100_000 + "]" * 100_000)}),
         "metadata field 'arch' is nested deeper than 32 levels", unchanged=("m.onnx",)),
    # --- 1. the legacy .pt/.pth reader: every view checked against its storage
    Case("export: legacy .pth whose view is larger than its storage", ("export", "--model", "m.pth", "-o", "m.onnx"),
         files({"m.pth": forged_bytes("view_past_storage")}),
         "cannot read weights from m.pth: truncated, corrupt or not a VDSR checkpoint (ValueError: head.weight: size "
         "(64, 1, 3, 3) exceeds its storage of 4 elements)", unchanged=("m.onnx",)),
    Case("eval: legacy .pth whose view is larger than its storage", (*EVAL[:2], "m.pth", *EVAL[3:]),
         both(eval_data, at("m.pth", forged_bytes("view_past_storage"))),
         "exceeds its storage of 4 elements"),
    Case("distill --teacher: legacy .pth whose view is larger than its storage", (*DISTILL, "--teacher", "m.pth"),
         both(tiny_yaml, at("m.pth", forged_bytes("view_past_storage"))),
         "exceeds its storage of 4 elements", unchanged=("runs",)),
    Case("export: legacy .pth of VDSR shapes over a 4-float storage (heap bytes into the ONNX)",
         ("export", "--model", "m.pth", "-o", "m.onnx"), files({"m.pth": forged_bytes("vdsr_over_tiny_storage")}),
         "reads past its storage of 4 elements", unchanged=("m.onnx",)),
    # --- 7, 8. weights whose shapes or values no VDSR has
    Case("export: weights with only a head and a tail", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": weights(**{"head.weight": torch.zeros(4, 1, 3, 3),
                                            "tail.weight": torch.zeros(1, 4, 3, 3)})}),
         "m.safetensors: a VDSR with only a head and a tail", unchanged=("m.onnx",)),
    Case("export: weights of width 0", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": weights(**{"head.weight": torch.zeros(0, 1, 3, 3),
                                            "body.0.conv.weight": torch.zeros(0, 0, 3, 3),
                                            "tail.weight": torch.zeros(1, 0, 3, 3)})}),
         "m.safetensors: a 0-wide VDSR; edgesr reads widths from 1 to 256", unchanged=("m.onnx",)),
    Case("export: weights of width 100000 (360 GB to build)", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": weights(**{"head.weight": torch.zeros(100_000, 1, 3, 3, dtype=torch.uint8),
                                            "body.0.conv.weight": torch.zeros(1, dtype=torch.uint8),
                                            "tail.weight": torch.zeros(1, dtype=torch.uint8)})}),
         "m.safetensors: a 100000-wide VDSR; edgesr reads widths from 1 to 256", unchanged=("m.onnx",)),
    Case("export: NaN weights", ("export", "--model", "m.safetensors", "-o", "m.onnx"),
         files({"m.safetensors": nan_student}), "m.safetensors: body.0.conv.weight holds NaN or infinite values",
         unchanged=("m.onnx",)),
    Case("upscale: an artifact exported from NaN weights (an all-black PNG)", (*FORGED[:2], "nan.onnx", *FORGED[3:]),
         files({"nan.onnx": nan_artifact, "a.png": image(9, 9)}),
         "nan.onnx returns NaN or infinite values: its weights are broken", unchanged=("o.png",)),
    # --- 2. --overwrite replaces only what edgesr wrote
    Case("export --target tensorrt -o DIR --overwrite: DIR holds precious.txt and sub/",
         (*EXPORT_TRT, "-o", "b", "--overwrite"), files({"b": bundle_and_precious}),
         "b holds files edgesr did not write (precious.txt, sub/): --overwrite replaces only a TensorRT bundle",
         unchanged=("b",)),
    Case("export --target tensorrt -o DIR --overwrite: DIR an earlier bundle (engine built beside it)",
         (*EXPORT_TRT, "-o", "b", "--overwrite"), files({"b": old_bundle}), "wrote b", code=0,
         then=lambda d: (exists("b/model.onnx", "b/BENCH.md")(d), no_temporaries(".")(d))),
    Case("export --target tensorrt -o . --overwrite", (*EXPORT_TRT, "-o", ".", "--overwrite"), files(),
         ". is the current folder or holds it", unchanged=("student.safetensors",)),
    Case("export --target tensorrt -o .. --overwrite", (*EXPORT_TRT, "-o", "..", "--overwrite"), files(),
         ".. is the current folder or holds it", unchanged=("student.safetensors",)),
    Case("export --target tensorrt -o a symlink --overwrite: the link replaced, no .link.old left",
         (*EXPORT_TRT, "-o", "link", "--overwrite"), linked_bundle, "wrote link", code=0, unchanged=("real",),
         then=link_replaced),
    Case("export --target tensorrt -o a file --overwrite", (*EXPORT_TRT, "-o", "lr.onnx", "--overwrite"), files(),
         "lr.onnx is a file, not a TensorRT bundle", unchanged=("lr.onnx",)),
    Case("export --target tensorrt -o DIR --overwrite: DIR holds only a README.md (no bundle)",
         (*EXPORT_TRT, "-o", "b", "--overwrite"), files({"b/README.md": raw(b"my notes")}),
         "b is not a TensorRT bundle edgesr wrote (no model.meta.json)", unchanged=("b",)),
    Case("export -o a folder --overwrite", ("export", "--model", "student.safetensors", "-o", "b", "--overwrite"),
         files({"b": old_bundle}), "b is a folder: -o names the .onnx file to write", unchanged=("b",)),
    # --- 3. no output may be an input
    Case("export --model X -o X --overwrite", ("export", "--model", "run/student.safetensors", "-o",
                                              "run/student.safetensors", "--overwrite"), files({"run": student_in}),
         "refusing to overwrite input run/student.safetensors", unchanged=("run",)),
    Case("export --model X -o a hard link to X --overwrite",
         ("export", "--model", "student.safetensors", "-o", "same.onnx", "--overwrite"),
         files({"same.onnx": hard_link("student.safetensors")}), "refusing to overwrite input student.safetensors",
         unchanged=("student.safetensors",)),
    Case("export --model RUN --target tensorrt -o RUN --overwrite",
         ("export", "--model", "run", "--target", "tensorrt", "-o", "run", "--overwrite"), files({"run": student_in}),
         "run holds files edgesr did not write (student.safetensors)", unchanged=("run",)),
    Case("export --model X --target tensorrt -o the folder holding X --overwrite",
         ("export", "--model", "run/student.safetensors", "--target", "tensorrt", "-o", "run", "--overwrite"),
         files({"run": student_in}), "run holds files edgesr did not write", unchanged=("run",)),
    Case("bench m.onnx --json m.onnx --overwrite", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1", "--no-torch",
                                                    "--json", "lr.onnx", "--overwrite"), files(),
         "refusing to overwrite input lr.onnx with output lr.onnx", unchanged=("lr.onnx",)),
    Case("bench --markdown into a --data folder's place", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1",
                                                           "--no-torch", "--data", "set", "--markdown", "set",
                                                           "--overwrite"),
         files({"set/a.png": image(24, 24)}), "refusing to overwrite input set", unchanged=("set",)),
    Case("eval --json the model --overwrite", (*EVAL, "--json", "student.safetensors", "--overwrite"), eval_data,
         "refusing to overwrite input student.safetensors", unchanged=("student.safetensors",)),
    # --- 11. a run removes what killed runs left of its own outputs
    Case("export: temporaries a SIGKILL left (file and bundle folder) are removed",
         ("export", "--model", "student.safetensors", "-o", "m.onnx"), killed_writes, "wrote m.onnx", code=0,
         then=temporaries_left(".b.9d2e61aa.old.tmp", ".b.x7r2hq9w.tmp", ".m.onnx.data.k1ll3d.tmp")),
    Case("export --target tensorrt: a killed export's bundle temporaries are removed", (*EXPORT_TRT, "-o", "b"),
         killed_writes, "wrote b", code=0, then=temporaries_left(".m.onnx.data.k1ll3d.tmp", ".m.onnx.k1ll3d.tmp")),
    Case("upscale a folder: a temporary a SIGTERM left in the output folder is removed", (*UPSCALE, "in", "-o", "out"),
         killed_upscale, "wrote 2 images to out", code=0, then=no_temporaries("out")),
    # --- 12. one input to a path that is not an image file
    Case("upscale x.png -o /dev/null", (*UPSCALE, "a.png", "-o", "/dev/null"), files({"a.png": image(9, 9)}),
         "cannot write /dev/null: edgesr writes .bmp"),
    # --- 10. image data Pillow would lose: refused, not truncated
    Case("upscale a float32 TIFF", (*UPSCALE, "a.tif", "-o", "out.tif"), files({"a.tif": forged_bytes("float_tiff")}),
         "its samples are floating-point: edgesr reads 8- and 16-bit integer images", unchanged=("out.tif",)),
    Case("upscale a 48-bit TIFF", (*UPSCALE, "a.tif", "-o", "out.tif"), files({"a.tif": forged_bytes("tiff48")}),
         "a TIFF of 16-bit colour samples, which Pillow reads as 8 bits", unchanged=("out.tif",)),
    Case("bench --data: a float32 TIFF in the set", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1", "--no-torch",
                                                     "--data", "set"), files({"set/a.tif": forged_bytes("float_tiff")}),
         "set/a.tif: its samples are floating-point"),
    # --- 7. images too small to score, in every benchmark set: one line, before the work
    Case("bench --data: a 1x1 image", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1", "--no-torch", "--data",
                                       "set"), files({"set/a.png": image(1, 1)}),
         "set/a.png is 1x1, too small to score at x2: the protocol needs at least 15x15"),
    Case("bench --data: an 8x8 image", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1", "--no-torch", "--data",
                                        "set"), files({"set/a.png": image(24, 24), "set/b.png": image(8, 8)}),
         "set/b.png is 8x8, too small to score at x2"),
    Case("eval --data: a 1x1 image", (*EVAL[:4], "tiny", *EVAL[5:]), files({"tiny/a.png": image(1, 1)}),
         "tiny/a.png is 1x1, too small to score at x2"),
    Case("eval --data: an 8x8 image at x4", ("eval", "--model", "student.safetensors", "--data", "tiny", "--scales",
                                             "4"), files({"tiny/a.png": image(8, 8)}),
         "tiny/a.png is 8x8, too small to score at x4: the protocol needs at least 19x19"),
    Case("distill: an 8x8 image in the evaluation set (refused before training)",
         (*DISTILL, "--set", "evaluation.sets=[tiny]"), both(tiny_yaml, at("tiny/a.png", image(8, 8))),
         "tiny/a.png is 8x8, too small to score at x2", unchanged=("runs",)),
    Case("distill --resume: a 1x1 image in the evaluation set (refused before training)", RESUME,
         stopped_run_with_tiny_set,
         "tiny/a.png is 1x1, too small to score at x2", unchanged=RUN_FILES),
    # --- 7, 8. checkpoints: every number checked against the run before it is used
    Case("distill --resume: checkpoint recipe nested 5000 deep", RESUME,
         distill_run(edited_checkpoint(put("recipe", "evaluation", nested(5000)))),
         "checkpoint run/checkpoint.pt is not an edgesr checkpoint: nested deeper than 32 levels", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint log sums as strings", RESUME,
         distill_run(edited_checkpoint(put("log", "sums", {"kd": "1.0"}))),
         "does not fit this run: its loss log's sums and counts are not finite numbers", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint step -5", RESUME, distill_run(edited_checkpoint(put("step", -5))),
         "checkpoint run/checkpoint.pt does not fit this run: step -5 is not in [0, 6]", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint step 10**15", RESUME, distill_run(edited_checkpoint(put("step", 10**15))),
         "step 1000000000000000 is not in [0, 6]", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint horizon 10**12 (an endless run)", RESUME,
         distill_run(edited_checkpoint(put("horizon", 10**12))),
         "horizon 1000000000000 is not a step count in [1, 6] (the recipe's steps)", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint elapsed NaN", RESUME, distill_run(edited_checkpoint(put("elapsed", math.nan))),
         "elapsed nan is not a number of seconds", unchanged=RUN_FILES),
    Case("distill --resume: checkpoint speed_mark after its step", RESUME,
         distill_run(edited_checkpoint(put("speed_mark", [99, 0.5]))), "speed_mark [99, 0.5] is not a (step, seconds)",
         unchanged=RUN_FILES),
    Case("distill --resume: checkpoint refitted not a bool", RESUME,
         distill_run(edited_checkpoint(put("refitted", "yes"))), "refitted yes is not true or false",
         unchanged=RUN_FILES),
    Case("distill --resume: checkpoint recipe integer of 5000 digits", RESUME,
         distill_run(edited_checkpoint(put("recipe", "seed", 10**5000))),
         "holds objects other than tensors and plain data: refused", unchanged=RUN_FILES),  # torch's reader: LONG4
    Case("distill --resume: checkpoint recipe integer of 41 digits", RESUME,
         distill_run(edited_checkpoint(put("recipe", "seed", 10**40))),
         "recipe key seed was changed since the checkpoint (an integer of more than 30 digits -> 0)",
         unchanged=RUN_FILES),
    Case("distill --resume: checkpoint recipe seed 2**64", RESUME,
         distill_run(edited_checkpoint(put("recipe", "seed", 2**64))),
         "recipe key seed was changed since the checkpoint (18446744073709551616 -> 0)", unchanged=RUN_FILES),
    Case("teacher train --resume: checkpoint horizon 10**12", ("teacher", "train", "--resume", "run"),
         teacher_run(edited_checkpoint(put("horizon", 10**12))), "horizon 1000000000000 is not a step count in [1, 8]",
         unchanged=RUN_FILES),
    Case("distill --resume: checkpoint a zip declaring 4 GB in 200 bytes", RESUME,
         distill_run(forged_checkpoint("zip_bomb_checkpoint")), "its archive declares 4294967295 bytes of content",
         unchanged=RUN_FILES),
    Case("distill --resume: checkpoint tensor a stride-0 view claiming 4 TB", RESUME,
         distill_run(edited_checkpoint(put("big", torch.zeros(1).expand(1 << 40)))),
         "is not an edgesr checkpoint: its tensors claim 43980465", unchanged=RUN_FILES),
    # --- 9. numbers in --set and recipes parse as a user writes them; 7. and are bounded
    Case("teacher train --set optim.lr=5e-4 (the example of its --help)",
         ("teacher", "train", "--recipe", "teacher-tiny.yaml", "--data", "images", "--out", "runs", "--set",
          "optim.lr=5e-4"), tiny_teacher_yaml, "results:", code=0),
    Case("distill --set student_optim.lr=1e-3", (*DISTILL, "--set", "student_optim.lr=1e-3"), tiny_yaml,
         "results:", code=0),
    bad_key("seed", str(2**64), "recipe key seed: must be a 64-bit integer (from -2**63 to 2**63 - 1)"),
    Case("distill --set batch_size=<an integer of 5000 digits>", (*DISTILL, "--set", "batch_size=" + "9" * 5000),
         tiny_yaml, "the value is not valid YAML (an integer of 5000 digits (line 1))", unchanged=("runs",)),
    bad_key("scales", "[1e999]", "recipe key scales[0]: expected an integer, got inf"),
    Case("distill --recipe with an integer of 5000 digits", ("distill", "--recipe", "recipe.yaml", "--out", "runs"),
         recipe_file("seed: " + "9" * 5000 + "\n"), "is not valid YAML: an integer of 5000 digits (line 1)",
         unchanged=("runs",)),
    Case("eval: a cached score file nested 100000 deep (ignored, rewritten)", EVAL, deep_score_cache, "x2", code=0,
         then=score_cache_rewritten),
]


# ----------------------------------------------------------------------------- issue 30: bounded work
# Issue 30 items 6 and 7 (demo flags): each input that asked for unbounded work or crashed on a
# flag now ends in one line (or in correct output). A block of its own, added to CASES.

DEMO = ("demo", "--model", "lr.onnx", "--port", "0")


def bomb(width: int, height: int) -> Callable[[Path, World], None]:
    """A valid PNG declaring ``width x height`` pixels: tiny on disk, huge decoded."""
    from tests.demo_helpers import bomb_png

    def make(path: Path, w: World) -> None:
        path.write_bytes(bomb_png(width, height))

    return make


def with_low_memory(setup: Setup, gigabytes: float) -> Setup:
    """``setup``, and edgesr seeing only ``gigabytes`` of memory available until the row ends."""
    import edgesr.runtime.memory as memory

    def wrapped(d: Path, w: World):
        setup(d, w)
        real = memory.available_memory
        memory.available_memory = lambda: round(gigabytes * 1e9)
        return lambda: setattr(memory, "available_memory", real)

    return wrapped

TOO_MANY_THREADS = "--threads must be from 1 to"

BOUNDS_CASES = [
    # --- --threads beyond the machine's cores, in every command that takes it
    Case("upscale --threads 1000", (*UPSCALE, "a.png", "-o", "out.png", "--threads", "1000"),
         files({"a.png": image(9, 9)}), TOO_MANY_THREADS, unchanged=("out.png",)),
    Case("bench --threads 1000", ("bench", "lr.onnx", "--sizes", "16", "--runs", "1", "--threads", "1000"), files(),
         TOO_MANY_THREADS),
    Case("demo --threads 1000", (*DEMO, "--threads", "1000"), files(), TOO_MANY_THREADS),
    Case("export --threads 1000", ("export", "--model", "student.safetensors", "-o", "m.onnx", "--threads", "1000"),
         files(), TOO_MANY_THREADS, unchanged=("m.onnx",)),
    # --- demo flags: finite and in range, checked before any model is loaded
    Case("demo --max-upload-mb nan", (*DEMO, "--max-upload-mb", "nan"), files(),
         "--max-upload-mb must be more than 0 to 1000 (each admitted upload is held in memory), got nan"),
    Case("demo --max-upload-mb inf", (*DEMO, "--max-upload-mb", "inf"), files(), "--max-upload-mb must be"),
    Case("demo --max-upload-mb 1e308", (*DEMO, "--max-upload-mb", "1e308"), files(), "got 1e+308"),
    Case("demo --max-mp 0", (*DEMO, "--max-mp", "0"), files(), "--max-mp must be more than 0 to 178.9"),
    Case("demo --max-output-mp -1", (*DEMO, "--max-output-mp", "-1"), files(), "--max-output-mp must be"),
    Case("demo --port 70000", (*DEMO[:3], "--port", "70000"), files(), "--port must be from 0 to 65535"),
    Case("demo --workers 1000000", (*DEMO, "--workers", "1000000"), files(),
         "--workers must be from 1 to"),
    Case("demo --queue 100000", (*DEMO, "--queue", "100000"), files(), "--queue must be from 0 to 64"),
    # --- upscale: the result's pixels checked on the header (no decoding, no Pillow warning)
    Case("upscale a 519 kB PNG declaring 13000x13000", (*UPSCALE, "bomb.png", "-o", "out.png"),
         files({"bomb.png": bomb(13000, 13000)}), "image bomb.png is 13000x13000: the x2 result would be "
         "26000x26000 (676.0 MP), more than the 64.0 MP allowed (--max-mp raises the limit)",
         unchanged=("out.png",)),
    Case("upscale --max-mp 0.1: a 200x200 image", (*UPSCALE, "a.png", "-o", "out.png", "--max-mp", "0.1"),
         files({"a.png": image(200, 200)}), "the x2 result would be 400x400 (0.2 MP), more than the 0.1 MP allowed",
         unchanged=("out.png",)),
    Case("upscale --max-mp 0.2 raises it: a 200x200 image", (*UPSCALE, "a.png", "-o", "out.png", "--max-mp", "0.2"),
         files({"a.png": image(200, 200)}), "wrote out.png", code=0, then=size_of("out.png", (400, 400))),
    Case("upscale --max-mp nan", (*UPSCALE, "a.png", "-o", "out.png", "--max-mp", "nan"),
         files({"a.png": image(9, 9)}), "--max-mp must be a number of megapixels above 0, got nan"),
    Case("upscale with 0.5 GB of memory free: an 8000x8000 result", (*UPSCALE, "bomb.png", "-o", "out.png"),
         with_low_memory(files({"bomb.png": bomb(4000, 4000)}), 0.5),
         "the x2 result of image bomb.png (8000x8000) needs about 1.0 GB of memory, more than the 0.5 GB available "
         "here: crop or shrink it first", unchanged=("out.png",)),
    # --- upscale --tile: at least 64, at most what memory holds
    Case("upscale --tile 1", (*UPSCALE, "a.png", "-o", "out.png", "--tile", "1"), files({"a.png": image(9, 9)}),
         "--tile must be at least 64 output pixels", unchanged=("out.png",)),
    Case("upscale --tile 1000000", (*UPSCALE, "a.png", "-o", "out.png", "--tile", "1000000"),
         files({"a.png": image(9, 9)}), "--tile 1000000 with lr.onnx needs about", unchanged=("out.png",)),
    # --- bench --sizes: at most the largest exported side, and what memory holds
    Case("bench --sizes 100000", ("bench", "lr.onnx", "--sizes", "100000", "--runs", "1"), files(),
         "--sizes 100000 is larger than 8192, the largest side edgesr exports for"),
    Case("bench --sizes 4096 with 1 GB of memory free", ("bench", "lr.onnx", "--sizes", "4096", "--runs", "1"),
         with_low_memory(files(), 1.0), "timing a 4096x4096 output with lr.onnx needs about 11.3 GB of memory, "
         "more than the 1.0 GB available here: choose smaller --sizes"),
    # --- a student of 100000 layers: the recipe's range refuses it before anything is built
    bad_key("student.depth", "100000", "recipe key student.depth: must be in [3, 64], got 100000"),
]
CASES += BOUNDS_CASES


def test_bench_largest_side_is_the_exporters():
    from edgesr.export.onnx_export import MAX_SIDE
    from edgesr.runtime.base import MAX_SIDE as BENCH_MAX_SIDE

    assert BENCH_MAX_SIDE == MAX_SIDE


def test_every_issue_30_case_is_in_the_table():
    """Issue 30's bounded-work list (items 6 and 7), by the words of its rows."""
    ids = " | ".join(c.id for c in BOUNDS_CASES)
    for words in ["13000x13000", "--tile 1", "student.depth=100000", "--sizes 100000", "--threads 1000",
                  "--max-upload-mb nan", "--max-upload-mb inf", "--max-upload-mb 1e308", "--port 70000",
                  "--workers 1000000"]:
        assert words in ids, words


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, world: World, tmp_path, monkeypatch):
    if fcntl is None and case.setup is locked:  # pragma: no cover
        pytest.skip("no advisory locks on this platform")
    monkeypatch.chdir(tmp_path)
    cleanup = case.setup(tmp_path, world)
    before = {p: digest(tmp_path / p) for p in case.unchanged}
    try:
        code, out, err = run_edgesr(list(case.argv), case.fsize)
    finally:
        if cleanup:
            cleanup()
    assert "Traceback" not in err, err
    assert code == case.code, (code, out, err)
    if case.code == 0:
        assert case.fragment in out, out
    else:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == case.stderr_lines, err
        assert lines[-1].startswith("error: ") and case.fragment in lines[-1], err
        assert lines[-1].rstrip()[-1] != ":", err  # an OS reason follows the path
    for p, h in before.items():
        assert digest(tmp_path / p) == h, f"{p} changed"
    if case.then:
        case.then(tmp_path)


def test_every_issue_case_is_in_the_table():
    """Issue 14's list, by the words of its rows: a row removed is a case no longer covered."""
    ids = " | ".join(c.id for c in CASES)
    for words in ["pickle payload", "batch_size=0", "log_every=0", "checkpoint_every=0", "validation.every=0",
                  "student.width=0", "student_optim.lr=-0.1", "a PNG", "a binary file", "progressive.steps=[0]",
                  "progressive.steps=[-5]", "scales=[5]", "width edited", "broken YAML", "a YAML list",
                  "learning rate edited", "last line cut", "1x1", "1x7", "7x1", "tiny, broken and good",
                  "under /sys", "full disk", "scale=\"two\"", "scale=0", "scale=3 on an x2 graph",
                  ".checkpoint.pt.*.tmp", "before the first checkpoint", "in use by another process",
                  "animated GIF", "-o out.gif"]:
        assert words in ids, words


def test_every_case_of_issue_30_is_in_the_table():
    """Issue 30's list (items 1-3, 7-12), by the words of its rows."""
    ids = " | ".join(c.id for c in CASES)
    for words in ["view is larger than its storage", "VDSR shapes over a 4-float storage", "distill --teacher: legacy",
                  "eval: legacy", "precious.txt and sub/", "-o . --overwrite", "-o a symlink --overwrite",
                  "--model X -o X --overwrite", "bench m.onnx --json m.onnx --overwrite", "only a head and a tail",
                  "width 0", "width 100000", "ONNX metadata nested 100000 deep", "TensorRT sidecar .json nested",
                  "safetensors metadata measured_psnr nested", "cached score file nested", "scales=[1e999]",
                  "recipe nested 5000 deep", "log sums as strings", "step -5", "integer of 5000 digits",
                  "seed=18446744073709551616", "bench --data: a 1x1", "bench --data: an 8x8", "eval --data: a 1x1",
                  "eval --data: an 8x8", "distill: an 8x8 image in the evaluation set", "--resume: a 1x1 image",
                  "NaN weights", "from NaN weights", "horizon 10**12", "elapsed NaN", "step 10**15",
                  "optim.lr=5e-4", "student_optim.lr=1e-3", "float32 TIFF", "48-bit TIFF", "SIGKILL left",
                  "SIGTERM left", "-o /dev/null"]:
        assert words in ids, words


# ----------------------------------------------------------------------------- several processes at once


def _make_dirs(base: str, n: int, barrier, out) -> None:
    barrier.wait()
    try:
        out.put([str(new_run_dir(base, "run")) for _ in range(n)])
    except Exception as exc:  # reported to the parent, which fails the test with it
        out.put(repr(exc))


def test_run_folders_made_by_many_processes_at_once_are_all_distinct(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs, barrier, out = 6, ctx.Barrier(6), ctx.Queue()
    workers = [ctx.Process(target=_make_dirs, args=(str(tmp_path), 5, barrier, out)) for _ in range(procs)]
    for p in workers:
        p.start()
    made = [out.get(timeout=60) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    assert all(isinstance(m, list) for m in made), made
    folders = [f for m in made for f in m]
    assert len(folders) == len(set(folders)) == procs * 5


def _try_lock(path: str, out) -> None:
    run_folder._locks.clear()  # a forked child inherits the parent's record; a new process has none
    try:
        lock_run(Path(path))
        out.put("locked")
    except EdgesrError as exc:
        out.put(str(exc))


@pytest.mark.skipif(fcntl is None, reason="no advisory locks on this platform")
def test_a_run_folder_is_held_by_one_process_until_it_lets_go(tmp_path):
    ctx = multiprocessing.get_context("fork")
    lock_run(tmp_path)
    try:
        out = ctx.Queue()
        p = ctx.Process(target=_try_lock, args=(str(tmp_path), out))
        p.start()
        assert "in use by another edgesr process" in out.get(timeout=60)
        p.join(timeout=60)
    finally:
        unlock_run(tmp_path)
    p = ctx.Process(target=_try_lock, args=(str(tmp_path), out))
    p.start()
    assert out.get(timeout=60) == "locked"
    p.join(timeout=60)


def test_written_files_follow_the_umask(tmp_path):
    """safetensors replaces the temporary file it is given, which made outputs 0600."""
    from edgesr.io import write_text

    previous = os.umask(0o027)
    try:
        save_safetensors(tiny_teacher(1), tmp_path / "a.safetensors")
        write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(previous)
    for name in ("a.safetensors", "b.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_a_writes_own_temporaries_are_told_from_other_outputs(tmp_path):
    """What ``remove_stale`` deletes is exactly what a killed write of that output leaves."""
    from edgesr.io import atomic_dir, atomic_path, remove_stale

    for name in (".a.k1ll3d.tmp", ".a.png.k1ll3d.tmp", ".a.9d2e61aa.old.tmp", ".ab.k1ll3d.tmp", ".a..tmp"):
        (tmp_path / name).write_text("left by a kill")
    assert [p.name for p in stale_temporaries(tmp_path, "a")] == [".a.9d2e61aa.old.tmp", ".a.k1ll3d.tmp"]
    assert [p.name for p in remove_stale(tmp_path / "a.png")] == [".a.png.k1ll3d.tmp"]
    assert not (tmp_path / ".a.png.k1ll3d.tmp").exists() and (tmp_path / ".a.k1ll3d.tmp").exists()
    with atomic_path(tmp_path / "f.onnx") as tmp:
        assert stale_temporaries(tmp_path, "f.onnx") == [tmp]
    with atomic_dir(tmp_path / "bundle") as tmp:
        assert stale_temporaries(tmp_path, "bundle") == [tmp]
    with atomic_dir(tmp_path / "bundle") as tmp:  # replacing: the old one moves aside as a temporary
        (tmp / "new").write_text("")
    assert [p.name for p in (tmp_path / "bundle").iterdir()] == ["new"]
    assert stale_temporaries(tmp_path, "bundle") == [] and stale_temporaries(tmp_path, "f.onnx") == []
