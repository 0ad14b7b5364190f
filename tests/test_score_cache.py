"""One pass per set and scale, and the score cache of rows that never change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgesr.cache import ScoreCache
from edgesr.data.benchmark import BenchmarkSet, open_set
from edgesr.evaluate import Row, evaluate, evaluate_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def image_set(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(48, 42, 3), (36, 60)]):
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return open_set(folder)


def _counting(bset: BenchmarkSet, calls: list):
    """``bset`` whose ``pairs`` calls are counted."""
    class Counted(BenchmarkSet):
        def pairs(self, scale):
            calls.append(scale)
            return super().pairs(scale)

    return Counted(bset.name, bset.folder)


def _blur(y: np.ndarray, scale: int) -> np.ndarray:
    return (y + np.roll(y, 1, axis=0)) / 2


def test_one_pass_reads_each_set_once_and_reuses_bicubic(image_set, tmp_path):
    calls: list = []
    bset = _counting(image_set, calls)
    rows = {"a": Row(lambda: _blur), "b": Row(lambda: lambda y, s: y)}
    out = evaluate_rows(rows, [bset], [2, 3])
    assert calls == [2, 3]  # once per scale for both rows
    for a, b in zip(out["a"], out["b"]):
        assert (a.bicubic_psnr, a.bicubic_ssim) == (b.bicubic_psnr, b.bicubic_ssim)
        assert b.psnr == pytest.approx(b.bicubic_psnr)  # the identity predictor is bicubic itself
    # the same numbers as scoring each model on its own
    assert [s.to_dict() for s in evaluate(_blur, [image_set], [2, 3])] == [s.to_dict() for s in out["a"]]


def test_cached_rows_are_not_run(image_set, tmp_path):
    sha = "ab" * 32
    first = evaluate_rows({"t": Row(lambda: _blur, store=ScoreCache(sha, tmp_path))}, [image_set], [2])["t"]

    def never():
        raise AssertionError("a cached row was run")

    calls: list = []
    again = evaluate_rows({"t": Row(never, store=ScoreCache(sha, tmp_path))}, [_counting(image_set, calls)], [2])
    assert again["t"] == first and calls == []
    # another model (checksum) or changed images miss the cache
    assert ScoreCache("cd" * 32, tmp_path).get(image_set, 2, True) is None
    victim = image_set.files(2)[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert ScoreCache(sha, tmp_path).get(image_set, 2, True) is None
    assert ScoreCache(sha, tmp_path).get(image_set, 2, False) is None  # SSIM on/off is part of the key


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"k": {"set": 1}}', '{"k": "x"}'])
def test_a_damaged_cache_is_ignored_and_rewritten(image_set, tmp_path, content):
    sha = "ef" * 32
    path = tmp_path / "scores" / f"{sha}.json"
    path.parent.mkdir()
    path.write_text(content)
    (score,) = evaluate_rows({"t": Row(lambda: _blur, store=ScoreCache(sha, tmp_path))}, [image_set], [2])["t"]
    assert ScoreCache(sha, tmp_path).get(image_set, 2, True) == score


def test_an_unwritable_cache_only_costs_the_next_run(image_set, tmp_path):
    (tmp_path / "scores").write_text("a file where the cache's folder goes")
    (score,) = evaluate_rows({"t": Row(lambda: _blur, store=ScoreCache("34" * 32, tmp_path))}, [image_set], [2])["t"]
    assert score.scale == 2 and ScoreCache("34" * 32, tmp_path).get(image_set, 2, True) is None


def test_write_only_cache_recomputes(image_set, tmp_path):
    sha = "12" * 32
    evaluate_rows({"t": Row(lambda: _blur, store=ScoreCache(sha, tmp_path))}, [image_set], [2])
    ran = []
    evaluate_rows({"t": Row(lambda: ran.append(1) or _blur, store=ScoreCache(sha, tmp_path, read=False))},
                  [image_set], [2])
    assert ran == [1]


def test_benchmark_predictor_matches_torch(image_set):
    """onnxruntime on the ONNX export gives torch's scores to float rounding."""
    import torch

    from edgesr.models import VDSR
    from edgesr.models.predict import benchmark_predictor, torch_predictor

    torch.manual_seed(0)
    net = VDSR(8, depth=4)
    ref = evaluate(torch_predictor(net), [image_set], [2, 3])
    fast = evaluate(benchmark_predictor(net), [image_set], [2, 3])
    for a, b in zip(ref, fast):
        assert a.psnr == pytest.approx(b.psnr, abs=1e-4) and a.ssim == pytest.approx(b.ssim, abs=1e-6)


def _shipped_entries() -> tuple[str, dict[str, dict]]:
    from edgesr.models.zoo import load_model

    _, meta = load_model("pytorch-vdsr")
    raw = json.loads((ROOT / "edgesr" / "weights" / "scores" / f"{meta['sha256']}.json").read_text())
    return meta["sha256"], raw


def test_shipped_teacher_scores_agree_with_the_zoo(tmp_path):
    """The shipped rows of pytorch-vdsr are all valid cache entries (none silently dropped) and
    say what its zoo entry says it measures, on Set5 and Set14 at every scale with SSIM."""
    from edgesr.models.zoo import Teachers

    sha, raw = _shipped_entries()
    assert ScoreCache(sha, tmp_path)._shipped == raw
    measured = Teachers.PYTORCH_VDSR.value.measured_psnr
    got = {(e["set"], e["scale"]): e["psnr"] for k, e in raw.items() if k.endswith("ssim=True")}
    assert set(got) == {(name, s) for name in ("Set5", "Set14") for s in (2, 3, 4)}
    for (name, scale), psnr in got.items():
        assert psnr == pytest.approx(measured[name][scale], abs=6e-4)


@pytest.mark.integration
def test_shipped_teacher_scores_are_a_fresh_evaluation(shared_data, tmp_path):
    """pytorch-vdsr reproduces its published Set5 x2 (37.653 dB, bicubic 33.690, +-0.005) on the
    MATLAB-prepared Set5, and the shipped row is found for those files (same fingerprint) and
    equals that evaluation, SSIM and bicubic included."""
    from edgesr.models.predict import torch_predictor
    from edgesr.models.zoo import load_model

    net, meta = load_model("pytorch-vdsr")
    bset = open_set(shared_data / "Set5")
    shipped = ScoreCache(meta["sha256"], tmp_path).get(bset, 2, True)
    assert shipped is not None
    (fresh,) = evaluate(torch_predictor(net), [bset], [2])
    assert fresh.psnr == pytest.approx(37.653, abs=0.005)
    assert fresh.bicubic_psnr == pytest.approx(33.690, abs=0.005)
    for field in ("psnr", "bicubic_psnr"):
        assert getattr(fresh, field) == pytest.approx(getattr(shipped, field), abs=1e-3)
    for field in ("ssim", "bicubic_ssim"):
        assert getattr(fresh, field) == pytest.approx(getattr(shipped, field), abs=1e-5)
    assert ScoreCache(meta["sha256"], tmp_path, read=False).get(bset, 2, True) is None
