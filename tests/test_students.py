"""Student families: the registry, exact folding, LR-space distillation, and every family through
export -> bench -> upscale -> demo (tiny sizes)."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from edgesr.models.formats import save_safetensors
from edgesr.models.registry import create_student, families, macs_per_frame, parameters
from edgesr.models.reparam import RepConv2d, folded, overparameterise
from edgesr.models.vdsr import VDSR
from edgesr.models.zoo import load_model
from tests.cli_helpers import assert_user_error, run_cli

#: every family with every anchor it takes
FAMILIES = [(f.name, a) for f in families() for a in (f.anchors or (None,))]


@contextmanager
def branch_by_branch():
    """Over-parameterised convs compute their branches one by one (the reference of the fold)."""
    fold = RepConv2d.forward
    RepConv2d.forward = RepConv2d.branches
    try:
        yield
    finally:
        RepConv2d.forward = fold


def trained_looking(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights of the size training leaves, so that a fold error would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 / max(1, p[0].numel()) ** 0.5))
    return net


def test_registry_lists_the_paper_student_and_lr_families():
    names = {f.name: f for f in families()}
    assert {"vdsr-half", "lr-plain", "lr-rep"} <= set(names)
    assert names["vdsr-half"].input_kind == "bicubic" and (names["vdsr-half"].width, names["vdsr-half"].depth) == (
        32, 20)
    assert names["lr-plain"].input_kind == "lr" and names["lr-rep"].reparam > 0
    half = create_student("vdsr-half")
    assert parameters(half) == 166_464  # the paper's student
    # 720p multiply-adds: VDSR-half works at the output resolution, lr-plain at 1/s^2 of it
    assert macs_per_frame(half, 2) == 166_464 * 1280 * 720
    lr2, lr4 = create_student("lr-plain", 2), create_student("lr-plain", 4)
    assert macs_per_frame(lr4, 4) < macs_per_frame(lr2, 2) < macs_per_frame(half, 2) / 5


@pytest.mark.parametrize("arch,anchor", FAMILIES)
def test_a_saved_student_rebuilds_as_its_family(arch, anchor, tmp_path):
    net = trained_looking(create_student(arch, 3, width=6, depth=5, anchor=anchor, reparam=0))
    save_safetensors(net, tmp_path / "s.safetensors", {"scales": "[3]"})
    back, meta = load_model(str(tmp_path / "s.safetensors"))
    assert type(back) is type(net) and back.config() == net.config() and json.loads(meta["arch"])["arch"] == arch
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert torch.equal(back(x), net.eval()(x))
    assert back(x).shape[-2:] == ((27, 33) if net.input_kind == "lr" else (9, 11))


@pytest.mark.parametrize("arch", ["vdsr-half", "lr-plain"])
def test_folding_is_exact(arch):
    """The over-parameterised form (each 3x3 conv plus an expanded linear block) equals its fold
    to 1e-5, computed branch by branch, and the fold is the family's plain network."""
    torch.manual_seed(0)
    net = create_student(arch, 2, width=8, depth=6, reparam=3).eval()
    assert all(isinstance(c, RepConv2d) for c in net.convs())
    trained_looking(net)
    x = torch.rand(2, 1, 14, 18)
    with torch.no_grad(), branch_by_branch():
        reference = net(x)
    plain = folded(net)
    assert not any(isinstance(m, RepConv2d) for m in plain.modules())
    assert sum(p.numel() for p in plain.parameters()) == sum(
        p.numel() for p in create_student(arch, 2, width=8, depth=6, reparam=0).parameters())
    with torch.no_grad():
        assert float((plain(x) - reference).abs().max()) < 1e-5
        assert float(reference.abs().mean()) > 0.1  # the branches do contribute
    assert float(sum(c.project.detach().abs().sum() for c in net.convs())) > 0


def test_overparameterised_network_starts_as_the_plain_one():
    """A converted network (projections at zero) computes exactly what it did: a refitted
    student stays refitted."""
    torch.manual_seed(1)
    vdsr = trained_looking(VDSR(8, 6))
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        before = vdsr(x)
        after = overparameterise(vdsr, 4)(x)
    assert torch.equal(before, after)


def test_a_per_scale_shape_applies_only_to_the_scales_a_run_trains():
    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.errors import EdgesrError

    only_x2 = load_recipe(DistillRecipe, "quick-edge", ["scales=[2]"])
    assert only_x2.student.shape(2) == load_recipe(DistillRecipe, "quick-edge").student.shape(2)
    with pytest.raises(EdgesrError, match="each scale once"):
        load_recipe(DistillRecipe, "quick-edge", ["student.per_scale=[{scale: 4}, {scale: 4, width: 48}]"])


def test_scale_weights_are_refused_for_students_that_train_every_scale_each_step():
    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.errors import EdgesrError

    with pytest.raises(EdgesrError, match="samples.scale_weights: .* trains every scale's network each step"):
        load_recipe(DistillRecipe, "quick-edge", ["samples.scale_weights=[2, 1, 1]"])
    weighted = load_recipe(DistillRecipe, "cpu-hour", ["samples.scale_weights=[2, 1, 1]"])
    assert weighted.samples.scale_weights == (2, 1, 1)


# ------------------------------------------------------------------ LR-space distillation


def tiny_lr_recipe(tmp_path, arch="lr-plain", anchor="repeat", steps=6, scales=(2, 3)) -> list[str]:
    from tests.distill_helpers import tiny_teacher

    teacher = tmp_path / "teacher.safetensors"
    if not teacher.exists():
        save_safetensors(tiny_teacher(), teacher)
    return ["--teacher", str(teacher), "--device", "cpu", "--threads", "1", "--set", f"name={arch}",
            f"student.arch={arch}", f"student.anchor={anchor}", "student.width=6", "student.depth=4",
            "student.per_scale=[]",
            f"scales=[{', '.join(map(str, scales))}]", "samples.pool_images=3", "samples.pool_size=24",
            "samples.lr_patch=6", f"progressive.steps=[{steps}]", "budget_minutes=0", "validation.data=null",
            "evaluation.sets=[]", "batch_size=2", "checkpoint_every=2", "log_every=1"]


@pytest.fixture(scope="module")
def lr_runs(tmp_path_factory):
    """One finished tiny distillation per LR family and anchor, through the real command."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for arch, anchor in [(a, n) for a, n in FAMILIES if n is not None]:
        r = run_cli("distill", "--recipe", "quick-edge", "--out", str(out), *tiny_lr_recipe(out, arch, anchor))
        assert r.returncode == 0, r.stderr
        run = out / arch if anchor == "repeat" else out / f"{arch}-2"
        runs[(arch, anchor)] = run
    return runs


def test_lr_run_writes_one_student_per_scale(lr_runs):
    run = lr_runs[("lr-plain", "repeat")]
    results = json.loads((run / "results.json").read_text())
    assert results["files"] == {"2": "student_x2.safetensors", "3": "student_x3.safetensors"}
    for s in (2, 3):
        net, meta = load_model(str(run / f"student_x{s}.safetensors"))
        assert net.scale == s and json.loads(meta["scales"]) == [s] and net.input_kind == "lr"
    assert not (run / "student.safetensors").exists()
    rep, _ = load_model(str(lr_runs[("lr-rep", "repeat")] / "student_x2.safetensors"))
    assert not any(isinstance(m, RepConv2d) for m in rep.modules())  # saved folded


def full_and_resumed(tmp_path, args: list[str]):
    """The tiny recipe ``args`` trained uninterrupted, and trained again stopped after 3 steps and
    resumed, each in its own folder: the two trainers, for comparing their students."""
    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.train.loop import Interrupted
    from tests.test_distill_trainer import _train

    sets = args[args.index("--set") + 1:]
    recipe = load_recipe(DistillRecipe, "quick-edge", [s for s in sets if not s.startswith("name=")])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _train(tmp_path / "a", recipe)
    with pytest.raises(Interrupted):
        _train(tmp_path / "b", recipe, stop_at=3)
    resumed = _train(tmp_path / "b", recipe, resume=True)
    for k, v in full.student.state_dict().items():
        assert torch.equal(resumed.student.state_dict()[k], v), k
    return full, resumed


def test_lr_resume_ends_with_the_same_weights(tmp_path):
    """Stopped after 3 of 6 steps and resumed: the per-scale students equal an uninterrupted run's."""
    full, resumed = full_and_resumed(tmp_path, tiny_lr_recipe(tmp_path, "lr-rep"))
    assert resumed.step == full.step == 6


@pytest.mark.parametrize("arch", ["lr-plain", "lr-rep"])
def test_a_shared_body_is_one_module_and_its_batched_pass_equals_each_network_alone(arch):
    """The batched pass through the shared body computes what each scale's network computes
    on its own input, and the body's gradient comes from every scale."""
    from edgesr.models.srnet import ScaleSet

    torch.manual_seed(0)
    nets = {s: create_student(arch, s, 6, 5, "bicubic" if s == 4 else "repeat", 2 if arch == "lr-rep" else 0)
            for s in (2, 3, 4)}
    for net in nets.values():  # a zero tail would hide a wrong body
        torch.nn.init.normal_(net.convs()[-1].weight, 0, 0.1)
    shared = ScaleSet(nets, shared_body=True)
    assert nets[2].body is nets[3].body is nets[4].body
    n_own = sum(p.numel() for p in shared.parameters())
    assert n_own < sum(p.numel() for net in nets.values() for p in net.parameters())
    xs = [torch.rand(2, 1, 7, 7) for _ in range(3)]
    outs = shared(*xs)
    for s, x, out in zip((2, 3, 4), xs, outs):
        torch.testing.assert_close(out, nets[s](x), rtol=1e-5, atol=1e-6)
    body_weight = nets[2].convs()[1].weight
    grads = []
    for i in range(3):
        shared.zero_grad()
        shared(*xs)[i].square().mean().backward()
        grads.append(body_weight.grad.clone())
    assert all(g.abs().sum() > 0 for g in grads)
    shared.zero_grad()
    sum(o.square().mean() for o in shared(*xs)).backward()
    torch.testing.assert_close(body_weight.grad, sum(grads), rtol=1e-4, atol=1e-7)


def test_a_shared_body_is_shared_by_the_scales_of_one_shape():
    """x3 and x4 of one width share a body, x2 of another width keeps its own; the grouped
    batched pass equals each network alone."""
    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.errors import EdgesrError
    from edgesr.models.srnet import ScaleSet

    torch.manual_seed(0)
    nets = {s: create_student("lr-plain", s, 4 if s == 2 else 6, 5) for s in (2, 3, 4)}
    for net in nets.values():
        torch.nn.init.normal_(net.convs()[-1].weight, 0, 0.1)
    shared = ScaleSet(nets, shared_body=True)
    assert shared.groups == [[2], [3, 4]]
    assert nets[3].body is nets[4].body and nets[2].body is not nets[3].body
    xs = [torch.rand(2, 1, 7, 7) for _ in range(3)]
    for s, x, out in zip((2, 3, 4), xs, shared(*xs)):
        torch.testing.assert_close(out, nets[s](x), rtol=1e-5, atol=1e-6)

    r = load_recipe(DistillRecipe, "quick-edge", ["student.shared_body=true",
                                                  "student.per_scale=[{scale: 3, width: 48}, {scale: 4, width: 48}]"])
    assert r.student.shared_body and [r.student.shape(s)[0] for s in (2, 3, 4)] == [32, 48, 48]
    with pytest.raises(EdgesrError, match="student.shared_body"):
        load_recipe(DistillRecipe, "quick", ["student.shared_body=true"])


def test_a_shared_body_run_saves_students_that_stand_alone_and_resumes_exactly(tmp_path):
    """Also with the fused Adam update, whose state is checkpointed like the plain one's."""
    args = tiny_lr_recipe(tmp_path, "lr-rep", scales=(2, 3, 4)) + ["student.shared_body=true",
                                                                      "student_optim.fused=true"]
    r = run_cli("distill", "--recipe", "quick-edge", "--out", str(tmp_path / "runs"), *args)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "lr-rep"
    loaded = {s: load_model(str(run / f"student_x{s}.safetensors"))[0] for s in (2, 3, 4)}
    torch.testing.assert_close(loaded[2].body[0][0].weight, loaded[4].body[0][0].weight)
    assert not torch.equal(loaded[2].head.weight, loaded[3].head.weight)

    _, resumed = full_and_resumed(tmp_path, args)
    assert resumed.student.for_scale(2).body is resumed.student.for_scale(4).body
    assert resumed.student_opt.defaults["fused"]


def test_body_groups_and_a_scale_batch_train_and_resume_exactly(tmp_path, monkeypatch):
    """x3 and x4 of one width share a body and x2 keeps its own; x2 draws its own number of
    crops a step; a resumed run ends where an uninterrupted one does."""
    from edgesr.samples.pool import SamplePool

    drawn = []
    original = SamplePool.lr_batch

    def spy(self, scale, n, *args, **kwargs):
        drawn.append((scale, n))
        return original(self, scale, n, *args, **kwargs)

    monkeypatch.setattr(SamplePool, "lr_batch", spy)
    args = tiny_lr_recipe(tmp_path, "lr-rep", scales=(2, 3, 4)) + [
        "student.shared_body=true",
        "student.per_scale=[{scale: 2, batch: 4, steps: 3}, {scale: 3, width: 8}, {scale: 4, width: 8}]"]
    full, resumed = full_and_resumed(tmp_path, args)
    student = resumed.student
    assert student.groups == [[2], [3, 4]]
    assert student.for_scale(3).body is student.for_scale(4).body is not student.for_scale(2).body
    assert set(drawn) == {(2, 4), (3, 2), (4, 2)}
    # x2 is updated three times a step: three x2 draws for each x3 draw, in every run
    assert [s for s, _ in drawn].count(2) == 3 * [s for s, _ in drawn].count(3)
    # every x2 update is an optimizer step of its own (Adam's count), x3's one a step
    state = full.student_opt.state
    assert int(state[full.student.for_scale(2).head.weight]["step"]) == 3 * full.step
    assert int(state[full.student.for_scale(3).head.weight]["step"]) == full.step


def test_extra_updates_of_a_scale_that_shares_its_body_are_one_line():
    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.errors import EdgesrError

    with pytest.raises(EdgesrError, match="student.per_scale: x2 takes 2 updates a step but shares its body"):
        load_recipe(DistillRecipe, "quick-edge", ["student.per_scale=[{scale: 2, steps: 2}]"])


def test_unknown_arch_and_untrained_scale_are_one_line(lr_runs, tmp_path):
    args = tiny_lr_recipe(tmp_path)
    bad = [a if not a.startswith("student.arch=") else "student.arch=espcn-9000" for a in args]
    r = run_cli("distill", "--recipe", "quick-edge", "--out", str(tmp_path / "r"), *bad)
    assert_user_error(r, "recipe key student.arch: unknown 'espcn-9000'")
    assert not (tmp_path / "r").exists()
    run = lr_runs[("lr-plain", "repeat")]
    r = run_cli("export", "--model", str(run), "--scale", "4", "-o", str(tmp_path / "x4.onnx"))
    assert_user_error(r, "has no student for x4: it was trained for x2, x3")
    r = run_cli("export", "--model", str(run / "student_x2.safetensors"), "--scale", "3",
                "-o", str(tmp_path / "x3.onnx"))
    assert_user_error(r, "x3")
    r = run_cli("export", "--model", str(run), "--scale", "2", "--input", "bicubic", "-o", str(tmp_path / "b.onnx"))
    assert_user_error(r, "works at LR")
    r = run_cli("eval", "--model", str(run / "student_x2.safetensors"), "--data", str(tmp_path), "--scales", "2", "4")
    assert_user_error(r, "upscales by x2 only")
    assert not list(tmp_path.glob("*.onnx"))


def test_students_command_lists_every_family():
    r = run_cli("students", env={"COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    for f in families():
        assert f.name in r.stdout
    assert "GMAC" in r.stdout and "LR, per scale" in r.stdout


@pytest.fixture(scope="module")
def artifacts(lr_runs, tmp_path_factory):
    """FP32 and INT8 (CPU form) ONNX of each family's x2 student, plus a VDSR-half one."""
    from edgesr.export.pipeline import ExportRequest, export_model

    out = tmp_path_factory.mktemp("art")
    runs = dict(lr_runs)
    half = tmp_path_factory.mktemp("half")
    torch.manual_seed(0)
    save_safetensors(trained_looking(create_student("vdsr-half", width=6, depth=5, reparam=0)),
                     half / "student.safetensors", {"scales": "[2, 3]"})
    runs[("vdsr-half", None)] = half
    arts = {}
    for (arch, anchor), run in runs.items():
        for precision in ("fp32", "int8"):
            path = out / f"{arch}-{anchor}-{precision}.onnx"
            source = run / ("student_x2.safetensors" if anchor else "student.safetensors")
            arts[(arch, anchor, precision)] = (path, source)
            if (arch, anchor, precision) == ("lr-plain", "repeat", "int8"):  # the command itself, default INT8
                r = run_cli("export", "--model", str(run), "--scale", "2", "--precision", precision, "-o", str(path),
                            "--threads", "1")
                assert r.returncode == 0, r.stderr
                continue
            # in-process (no torch import per export) with fixed float layers (no sensitivity sweep)
            export_model(ExportRequest(str(run), "onnx", 2, precision, out=path, float_layers="0,-1"))
    return arts


def test_every_family_exports_matching_torch_and_declares_lr_input(artifacts, lr_runs):
    from edgesr.ops.resize_torch import imresize
    from edgesr.runtime import open_upscaler

    assert {(a, n) for a, n, _ in artifacts} == set(FAMILIES)
    x = np.random.default_rng(0).random((13, 17), dtype=np.float32)
    for (arch, _anchor, precision), (path, source) in artifacts.items():
        up = open_upscaler(path, threads=1)
        assert (up.meta.input_kind, up.meta.scale, up.meta.extra["arch"]["arch"]) == ("lr", 2, arch)
        out = up.upscale_y(x, 2)
        net, _ = load_model(str(source))
        with torch.no_grad():
            lr = torch.from_numpy(x)[None, None]
            ref = net(lr if net.input_kind == "lr" else imresize(lr, 2.0))[0, 0].numpy()
        assert out.shape == ref.shape == (26, 34)
        # FP32 is torch to float rounding; INT8 (two convs in float) stays close on a tiny net
        assert float(np.abs(out - ref).max()) < (1e-5 if precision == "fp32" else 0.05), (arch, precision)


def test_every_family_benches_upscales_and_serves(artifacts, tmp_path):
    from PIL import Image

    from edgesr.demo.catalog import build_catalog
    from edgesr.demo.limits import Limits
    from edgesr.demo.server import DemoServer
    from edgesr.runtime import open_upscaler
    from tests.demo_helpers import png_bytes, post, server_thread

    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray((np.random.default_rng(1).random((24, 20, 3)) * 255).astype(np.uint8)).save(data / "a.png")
    paths = [str(p) for p, _ in artifacts.values()]
    r = run_cli("bench", *paths, "--data", str(data), "--sizes", "32", "--runs", "2", "--threads", "1",
                "--json", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    artifact_rows = [row for row in rows if row["kind"] == "artifact"]
    assert len(artifact_rows) == len(paths) and all(row["latency"] and row["scores"] for row in artifact_rows)
    r = run_cli("upscale", str(data), "-o", str(tmp_path / "up"), "--model", paths[0], "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "up" / "a.png").size == (40, 48)
    catalog = build_catalog([open_upscaler(p, threads=1) for p in paths])
    with server_thread(DemoServer(catalog, Limits())) as running:
        for choice in catalog.models:
            reply = post(running.port, png_bytes(10, 12), f"?model={choice.id}&scale=2")
            assert reply.status == 200, reply.body
            assert reply.headers["x-edgesr-output"] == "24x20"


def test_a_pruned_student_wider_than_its_teacher_is_one_line(tmp_path):
    """teacher-refit keeps a subset of the teacher's channels: a narrow --teacher under a recipe
    with a wider student is the user's mismatch, said in one line, not a ValueError traceback."""
    from tests.distill_helpers import tiny_teacher

    teacher = tmp_path / "teacher.safetensors"
    save_safetensors(tiny_teacher(), teacher)  # 8 channels, 6 layers
    r = run_cli("distill", "--recipe", "quick", "--out", str(tmp_path / "runs"), "--teacher", str(teacher),
                "--device", "cpu", "--threads", "1", "--set", "samples.pool_images=4", "progressive.steps=[2]",
                "validation.data=null", "evaluation.sets=[]")
    assert_user_error(r, "student width 32 exceeds the teacher's 8")
