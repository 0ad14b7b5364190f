import json
import re

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


COMMANDS = (["eval"], ["export"], ["distill"], ["teacher", "train"], ["recipes"], ["bench"], ["upscale"], ["demo"])


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_help_states_defaults_in_plain_words(cmd):
    """No Python types (<bool>, <list[Path]>) beside the options; each option either names its
    default or is a flag; required ones say so."""
    r = run_cli(*cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert not re.search(r"<(str|int|float|bool|path|list\[\w+\])>", r.stdout, re.I), r.stdout
    entries: list[str] = []
    for line in r.stdout.split("Options:")[-1].splitlines():
        if re.match(r"  (-\w, )?--[\w-]+", line):
            entries.append(line.strip())
        elif line.startswith("    ") and entries:
            entries[-1] += " " + line.strip()  # an option's help wraps onto indented lines
    assert entries, r.stdout
    for entry in entries:
        takes_value = re.match(r"(-\w, )?--[\w-]+ [A-Za-z]", entry) is not None
        off_unless_given = entry.split()[0] in ("--json", "--markdown", "--plot", "--resume", "--set")
        if takes_value and not off_unless_given:
            assert "[default:" in entry or "[required" in entry, entry


def test_help_names_the_defaults_the_code_uses():
    from edgesr.cli import DEFAULT_TEACHER
    from edgesr.models.zoo import Teachers

    assert DEFAULT_TEACHER == Teachers.DEFAULT.value.name
    assert "[default: quick]" in " ".join(run_cli("distill", "--help").stdout.split())
    up = " ".join(run_cli("upscale", "--help").stdout.split())
    assert re.search(r"-o, --out, --output PATH [^[]*\[required\]", up)
    assert re.search(r"--model ARTIFACT [^[]*\[required\]", up)


def test_recipes_lists_both_kinds_with_descriptions(tmp_path):
    own = tmp_path / "recipes"
    own.mkdir()
    (own / "mine.yaml").write_text("name: mine\ndescription: my own quick run\nbatch_size: 4\n")
    (own / "broken.yaml").write_text("name: broken\nno_such_key: 1\n")
    r = run_cli("recipes", cwd=tmp_path, env={"COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    distill, teacher, invalid = (out.index("distillation recipes"), out.index("teacher recipes"),
                                 out.index("not recipes"))
    at = {name: out.index(f"\n  {name} ") for name in ("quick", "paper", "mine", "teacher", "teacher-tiny",
                                                        "broken")}
    assert all(distill < at[name] < teacher for name in ("quick", "paper", "mine"))
    assert all(teacher < at[name] < invalid for name in ("teacher", "teacher-tiny"))
    assert invalid < at["broken"]
    assert "my own quick run" in out and str(own / "mine.yaml") in out and "no_such_key" in out
    for line in out.splitlines():
        if line.startswith("  ") and "broken" not in line:
            assert len(line.split(None, 1)) == 2, line  # every recipe has its one-line description


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
