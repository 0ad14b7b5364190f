import json

import pytest
import torch

from edgesr.models import VDSR
from tests.cli_helpers import assert_user_error, run_cli


def test_help_on_every_command():
    top = run_cli("--help")
    assert top.returncode == 0
    for cmd in (["eval"], ["export"], ["distill"], ["teacher", "train"]):
        r = run_cli(*cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_unknown_model():
    assert_user_error(run_cli("eval", "--model", "nope", "--data", "."), "unknown model")


def test_missing_data_folder():
    assert_user_error(run_cli("eval", "--data", "/nonexistent/folder"), "data folder not found")


def test_missing_keys_checkpoint(tmp_path):
    state = VDSR(8, depth=4).state_dict()
    del state["tail.weight"]
    torch.save(state, tmp_path / "m.pth")
    assert_user_error(run_cli("eval", "--model", str(tmp_path / "m.pth"), "--data", str(tmp_path)), "tail.weight")


def test_unreadable_image(tmp_path):
    torch.save(VDSR(4, depth=3).state_dict(), tmp_path / "m.pth")
    data = tmp_path / "imgs"
    data.mkdir()
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert_user_error(run_cli("eval", "--model", str(tmp_path / "m.pth"), "--data", str(data)), "cannot read image")


def test_eval_on_image_folder_writes_json(tmp_path):
    import numpy as np
    from PIL import Image

    torch.save(VDSR(4, depth=3).state_dict(), tmp_path / "m.pth")
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 44, 3)) * 255).astype("uint8")).save(data / "a.png")
    r = run_cli("eval", "--model", str(tmp_path / "m.pth"), "--data", str(data), "--scales", "2", "3",
                "--json", str(tmp_path / "o.json"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "o.json").read_text())["scores"]
    assert [s["scale"] for s in scores] == [2, 3]


@pytest.mark.integration
def test_teacher_reproduces_published_set5_x2(teacher_path, shared_data):
    """pytorch-vdsr on the MATLAB-prepared Set5: 37.653 dB (bicubic 33.690), +-0.005."""
    from edgesr.data.benchmark import open_set
    from edgesr.evaluate import evaluate
    from edgesr.models.predict import torch_predictor
    from edgesr.models.zoo import load_model

    net, _ = load_model(str(teacher_path))
    (score,) = evaluate(torch_predictor(net), [open_set(shared_data / "Set5")], [2], with_ssim=False)
    assert score.psnr == pytest.approx(37.653, abs=0.005)
    assert score.bicubic_psnr == pytest.approx(33.690, abs=0.005)
