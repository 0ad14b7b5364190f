import pickle
import re
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from edgesr.errors import EdgesrError
from edgesr.models import VDSR
from edgesr.models.formats import model_from_state, read_weights, save_safetensors
from edgesr.models.zoo import load_model, resolve


def test_safetensors_roundtrip(tmp_path):
    net = VDSR(8, depth=5)
    save_safetensors(net, tmp_path / "m.safetensors", {"note": "x"})
    loaded, meta = load_model(str(tmp_path / "m.safetensors"))
    assert meta["note"] == "x" and meta["width"] == "8"
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_plain_state_dict_and_pytorch_vdsr_names(tmp_path):
    net = VDSR(8, depth=4)
    renamed = {k.replace("head", "input").replace("tail", "output").replace("body", "residual_layer"): v
               for k, v in net.state_dict().items()}
    torch.save({"model": renamed}, tmp_path / "m.pth")
    loaded, _ = load_model(str(tmp_path / "m.pth"))
    assert torch.equal(loaded.body[1].conv.weight, net.body[1].conv.weight)


def test_missing_keys_is_user_error(tmp_path):
    state = VDSR(8, depth=4).state_dict()
    del state["body.1.conv.weight"]
    state["body.2.conv.weight"] = torch.zeros(8, 8, 3, 3)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(EdgesrError, match="does not match"):
        model_from_state(read_weights(tmp_path / "m.pth")[0], "m.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "n.pth")
    with pytest.raises(EdgesrError, match="not a VDSR"):
        load_model(str(tmp_path / "n.pth"))


def test_garbage_file_is_user_error(tmp_path):
    (tmp_path / "g.pth").write_bytes(b"hello world" * 10)
    with pytest.raises(EdgesrError, match="cannot read weights"):
        read_weights(tmp_path / "g.pth")


def test_legacy_pickle_runs_no_code(tmp_path):
    """A legacy checkpoint that names os.system must not run it."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"model": Evil()}, []):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(EdgesrError):
        load_model(str(path))
    assert not marker.exists()


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::torch.serialization.SourceChangeWarning")
def test_real_teacher_matches_torch_load(teacher_path, monkeypatch):
    """Our code-free reader gives the same tensors as torch.load with stand-in classes."""
    fake = types.ModuleType("vdsr")

    class Conv_ReLU_Block(nn.Module):  # noqa: N801  (the upstream name)
        pass

    class Net(nn.Module):
        pass

    fake.Conv_ReLU_Block, fake.Net = Conv_ReLU_Block, Net
    monkeypatch.setitem(sys.modules, "vdsr", fake)
    ref = torch.load(teacher_path, map_location="cpu", weights_only=False, encoding="latin1")["model"]
    ours, _ = read_weights(teacher_path)
    assert torch.equal(ours["head.weight"], ref.input.weight.data)
    assert torch.equal(ours["body.17.conv.weight"], ref.residual_layer[17].conv.weight.data)
    assert torch.equal(ours["tail.weight"], ref.output.weight.data)


@pytest.mark.integration
def test_truncated_teacher_is_user_error(teacher_path, tmp_path):
    bad = tmp_path / "t.pth"
    bad.write_bytes(teacher_path.read_bytes()[:100_000])
    with pytest.raises(EdgesrError, match="truncated"):
        load_model(str(bad))


@pytest.mark.integration
def test_embedded_teacher_equals_upstream(teacher_path):
    assert resolve("pytorch-vdsr").name.endswith(".safetensors")
    embedded, _ = load_model("pytorch-vdsr")
    upstream, _ = load_model(str(teacher_path))
    for k, v in upstream.state_dict().items():
        assert torch.equal(embedded.state_dict()[k], v)


@pytest.mark.integration
def test_shipped_edgesr_teacher_reaches_the_vdsr_paper_on_set5(shared_data):
    """The teacher edgesr trained itself, loaded from the package (fp16), on real Set5: its
    zoo entry's measured numbers, and at least the VDSR paper's 37.53 / 33.66 / 31.35."""
    from edgesr.data.benchmark import open_set
    from edgesr.evaluate import evaluate
    from edgesr.models.predict import benchmark_predictor
    from edgesr.models.zoo import Teachers

    net, meta = load_model("edgesr-vdsr")
    assert meta["name"] == "edgesr-vdsr" and net.width == 64 and net.blocks == 18
    # onnxruntime on its ONNX export, as edgesr eval scores it (torch's numbers to 1e-6, 2-3x faster)
    scores = evaluate(benchmark_predictor(net), [open_set(shared_data / "Set5")], [2, 3, 4], with_ssim=False)
    measured = Teachers.EDGESR_VDSR.value.measured_psnr["Set5"]
    for score, paper in zip(scores, (37.53, 33.66, 31.35)):
        assert score.psnr == pytest.approx(measured[score.scale], abs=0.001)
        assert score.psnr >= paper


# ----------------------------------------------------------------------------- forged legacy files (issue 30, 1)


def _reference_view(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    """What a correct reader returns for an in-bounds view, element by element in Python."""
    out = np.empty(size, storage.dtype)
    for index in np.ndindex(*size):
        out[index] = storage[offset + sum(i * s for i, s in zip(index, stride))]
    return out


def _random_view(rng: np.random.Generator) -> tuple:
    """Sizes, strides, offsets and storage lengths around the edges that matter: in bounds,
    one past, far past, zero, huge, now and then negative or of the wrong type."""
    n = int(rng.integers(0, 40))
    ndim = int(rng.integers(0, 5))
    pick = lambda choices: choices[int(rng.integers(len(choices)))]  # noqa: E731
    edge = lambda choices, bad: pick(bad) if rng.random() < 0.02 else pick(choices)  # noqa: E731
    size = [edge([0, 1, 1, 2, 2, 3, 5, int(rng.integers(0, 8)), n, n + 1], [-1, 1 << 62, 1 << 70])
            for _ in range(ndim)]
    stride = [edge([0, 1, 1, 2, 3, int(rng.integers(0, 10)), n, n + 1], [-1, -3, 1 << 63, 1 << 80])
              for _ in range(ndim)]
    offset = edge([0, 0, 1, int(rng.integers(0, max(n, 1))), n - 1, n, n + 1], [-1, -n, 1 << 64])
    if rng.random() < 0.02:  # not integers at all
        size, stride, offset = pick([(size, 1.5, offset), ("ab", stride, offset), (size, stride, True),
                                     (size, stride, 2.0), (None, None, None)])
    return n, offset, size, stride


def test_legacy_reader_never_reads_outside_a_storage():
    """Seeded fuzz (6000 forged files): every view the reader accepts is exactly the elements
    of its own storage that a correct reader gives; every other one is refused with an
    exception (no segmentation fault: the process is still here), and what it returns never
    holds more bytes than the file."""
    from edgesr.models.legacy_pickle import read_legacy_pickle
    from tests.forged import legacy_pickle

    rng = np.random.default_rng(30)
    accepted = refused = 0
    for _ in range(6000):
        n, offset, size, stride = _random_view(rng)
        values = 1000.0 + np.arange(n, dtype=np.float32)  # values no heap byte pattern equals
        data = legacy_pickle({"w": ("0", offset, size, stride)}, {"0": values})
        try:
            got = read_legacy_pickle(data)["w"]
        except Exception:
            refused += 1
            continue
        accepted += 1
        assert got.nbytes <= len(data)
        want = _reference_view(values, offset, tuple(size), tuple(stride))
        assert got.shape == want.shape and np.array_equal(got, want), (n, offset, size, stride)
    assert accepted > 1000 and refused > 1000, (accepted, refused)


def test_legacy_reader_refuses_storages_that_lie_about_their_length():
    from edgesr.models.legacy_pickle import read_legacy_pickle
    from tests.forged import legacy_pickle

    view = {"w": ("0", 0, (2,), (1,))}
    for declared in (-1, 3, 1 << 40, (1 << 63) - 1):
        with pytest.raises(ValueError):
            read_legacy_pickle(legacy_pickle(view, {"0": [1.0, 2.0]}, {"0": declared}))
    assert read_legacy_pickle(legacy_pickle(view, {"0": [1.0, 2.0]}))["w"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("make, fragment", [
    ("view_past_storage", "exceeds its storage of 4 elements"),
    ("vdsr_over_tiny_storage", "reads past its storage of 4 elements"),
])
def test_the_issues_forged_pickles_are_one_line_errors(tmp_path, make, fragment):
    import tests.forged as forged

    path = tmp_path / "m.pth"
    path.write_bytes(getattr(forged, make)())
    with pytest.raises(EdgesrError, match=fragment) as err:
        read_weights(path)
    assert "\n" not in str(err.value)


def test_weights_whose_views_claim_more_than_the_file_are_refused(tmp_path):
    """A zip checkpoint may hold a stride-0 view of one float as a huge tensor: torch accepts
    the view; reading it as weights must not materialise it."""
    big = torch.zeros(1).expand(1 << 24)
    torch.save({"head.weight": big}, tmp_path / "m.pth")
    with pytest.raises(EdgesrError, match="more than the .*-byte file holds"):
        read_weights(tmp_path / "m.pth")


def test_a_zip_declaring_more_content_than_it_holds_is_refused(tmp_path):
    from tests.forged import zip_bomb_checkpoint

    with pytest.raises(EdgesrError, match="archive declares"):
        read_weights(zip_bomb_checkpoint(tmp_path / "m.pth"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_on_reading(tmp_path, value):
    net = VDSR(4, depth=3)
    with torch.no_grad():
        net.body[0].conv.weight[0, 0, 0, 0] = value
    save_safetensors(net, tmp_path / "m.safetensors")
    with pytest.raises(EdgesrError, match="body.0.conv.weight holds NaN or infinite values"):
        read_weights(tmp_path / "m.safetensors")


@pytest.mark.parametrize("state, fragment", [
    ({"head.weight": torch.zeros(4, 1, 3, 3), "tail.weight": torch.zeros(1, 4, 3, 3)}, "only a head and a tail"),
    ({"head.weight": torch.zeros(0, 1, 3, 3), "body.0.conv.weight": torch.zeros(0, 0, 3, 3),
      "tail.weight": torch.zeros(1, 0, 3, 3)}, "a 0-wide VDSR"),
    ({"head.weight": torch.zeros(100_000, 1, 3, 3, dtype=torch.float16)[:, :, :1, :1],
      "tail.weight": torch.zeros(1, 1, 1, 1)}, "head.weight has shape (100000, 1, 1, 1)"),
    ({"head.weight": torch.zeros(300, 1, 3, 3), "body.0.conv.weight": torch.zeros(1),
      "tail.weight": torch.zeros(1, 300, 3, 3)}, "a 300-wide VDSR; edgesr reads widths from 1 to 256"),
    ({"head.weight": torch.zeros(2, 1, 3, 3), "tail.weight": torch.zeros(1, 2, 3, 3),
      **{f"body.{i}.conv.weight": torch.zeros(2, 2, 3, 3) for i in range(70)}}, "a 72-layer VDSR"),
    ({"head.weight": torch.zeros(4, 1, 3, 3), "body.3.conv.weight": torch.zeros(4, 4, 3, 3),
      "tail.weight": torch.zeros(1, 4, 3, 3)}, "missing ['body.0.conv.weight']"),
    ({"head.weight": torch.zeros(4, 1, 3, 3), "body.0.conv.weight": torch.zeros(4, 5, 3, 3),
      "tail.weight": torch.zeros(1, 4, 3, 3)}, "body.0.conv.weight has shape (4, 5, 3, 3)"),
])
def test_shapes_are_checked_before_any_network_is_built(state, fragment, monkeypatch):
    import edgesr.models.formats as formats

    monkeypatch.setattr(formats, "VDSR", lambda *a, **k: pytest.fail("built before its shapes were checked"))
    with pytest.raises(EdgesrError, match=re.escape(fragment)):
        model_from_state(state, "m.pth")
