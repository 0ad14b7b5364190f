import pickle
import sys
import types

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
