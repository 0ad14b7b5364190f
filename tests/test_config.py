from pathlib import Path

import pytest

from edgesr.config import apply_overrides, from_dict, load_recipe
from edgesr.distill.recipe import DistillRecipe
from edgesr.errors import EdgesrError
from edgesr.teacher.recipe import TeacherRecipe
from tests.cli_helpers import ROOT
from tests.recipe_keys import numeric_keys


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_file_loads_as_exactly_one_kind(path):
    loaded = []
    for cls in (DistillRecipe, TeacherRecipe):
        try:
            loaded.append(load_recipe(cls, str(path)))
        except EdgesrError:
            pass
    assert len(loaded) == 1 and loaded[0].name == path.stem


@pytest.mark.parametrize("cls", [DistillRecipe, TeacherRecipe])
def test_every_numeric_key_declares_its_range(cls):
    keys = numeric_keys(cls)
    assert {"log_every", "batch_size", "validation.every"} <= set(keys)
    assert [k for k, rng in keys.items() if rng is None] == []


@pytest.mark.parametrize("name", ["quick", "paper", "dfsr"])
def test_shipped_recipes_validate(name):
    r = load_recipe(DistillRecipe, name)
    assert r.name == name and r.total_steps > 0


def test_dfsr_is_paper_without_cmi():
    paper, dfsr = load_recipe(DistillRecipe, "paper"), load_recipe(DistillRecipe, "dfsr")
    assert dfsr.losses.w_c == 0 and paper.losses.w_c > 0
    assert dfsr.student_optim == paper.student_optim and dfsr.progressive == paper.progressive


def test_unknown_key_named():
    with pytest.raises(EdgesrError, match="cmi.bnk_size: unknown key"):
        from_dict(DistillRecipe, {"cmi": {"bnk_size": 4}})


def test_wrong_type_named():
    with pytest.raises(EdgesrError, match="student_optim.lr: expected a number"):
        from_dict(DistillRecipe, {"student_optim": {"lr": "fast"}})
    with pytest.raises(EdgesrError, match="student.init: expected one of"):
        from_dict(DistillRecipe, {"student": {"init": "magic"}})


def test_overrides_parse_yaml_values():
    data = apply_overrides({}, ["cmi.temperature=0.2", "scales=[2, 4]", "generator.lr_sizes=[24,12]"])
    r = from_dict(DistillRecipe, {**data, "cmi": {**data["cmi"], "bank_size": 1280}})
    assert r.cmi.temperature == 0.2 and r.scales == (2, 4)


@pytest.mark.parametrize("data, fragment", [
    ({"batch_size": 1}, "recipe key batch_size: must be >= 2, got 1"),
    ({"student_optim": {"lr": -0.1}}, "recipe key student_optim.lr: must be >= 0, got -0.1"),
    ({"progressive": {"steps": [0]}}, "recipe key progressive.steps[0]: must be >= 1, got 0"),
    ({"cmi": {"temperature": 0}}, "recipe key cmi.temperature: must be > 0, got 0.0"),
    ({"student_optim": {"betas": [0.9]}}, "recipe key student_optim.betas: expected 2 values, got 1"),
    ({"scales": [2, 2], "generator": {"lr_sizes": [24, 24]}}, "recipe key scales: a scale is repeated"),
    ({"generator": {"lr_sizes": [24, 18, 12]}}, "recipe key generator.lr_sizes: each must be a multiple of 4"),
    ({"student": {"ema": 1}}, "recipe key student.ema: must be in [0, 1), got 1.0"),
])
def test_values_outside_their_range_name_key_and_range(data, fragment):
    with pytest.raises(EdgesrError) as info:
        from_dict(DistillRecipe, data)
    assert str(info.value).startswith(fragment)


def test_bank_must_be_multiple_of_batch():
    with pytest.raises(EdgesrError, match="multiple of batch_size"):
        from_dict(DistillRecipe, {"batch_size": 48, "cmi": {"bank_size": 100}})


def test_shipped_recipes_find_the_data_beside_the_checkout_from_any_folder(tmp_path, monkeypatch):
    """The shipped recipes' data paths are relative to their file: the same folders whatever the
    current one (before, ``--recipe quick`` from another folder found no validation images)."""
    shared = (ROOT.parent / "shared" / "data").resolve(strict=False)
    for cwd in (ROOT, tmp_path):
        monkeypatch.chdir(cwd)
        r = load_recipe(DistillRecipe, "quick")
        assert Path(r.validation.data).resolve() == shared / "train291"
        assert [Path(s).resolve() for s in r.evaluation.sets] == [shared / "Set5", shared / "Set14"]
        assert load_recipe(TeacherRecipe, "teacher").evaluation.sets == r.evaluation.sets


def test_recipe_paths_are_relative_to_their_file_and_overrides_to_the_current_folder(tmp_path, monkeypatch):
    folder, cwd = tmp_path / "project" / "recipes", tmp_path / "elsewhere"
    folder.mkdir(parents=True)
    cwd.mkdir()
    (folder / "mine.yaml").write_text(
        "teacher: weights/t.safetensors\nvalidation: {data: ../images}\nevaluation: {sets: [sets/A, /abs/B]}\n")
    monkeypatch.chdir(cwd)
    r = load_recipe(DistillRecipe, str(folder / "mine.yaml"))
    assert r.teacher == str(folder / "weights" / "t.safetensors")
    assert r.validation.data == str(tmp_path / "project" / "images")
    assert r.evaluation.sets == (str(folder / "sets" / "A"), "/abs/B")
    # --set values, and keys the file leaves out, are relative to the current folder
    (folder / "t.yaml").write_text("validation: {data: val}\n")
    r = load_recipe(TeacherRecipe, str(folder / "t.yaml"), ["data=train", "init=pytorch-vdsr"])
    assert r.data == str(cwd / "train") and r.validation.data == str(folder / "val")
    assert r.init == "pytorch-vdsr"  # a zoo name, not a path
    assert r.evaluation.sets[0] == str(tmp_path / "shared" / "data" / "Set5")  # the default's
    r = load_recipe(TeacherRecipe, str(folder / "t.yaml"), ["validation.data=v", "init=w.safetensors"])
    assert r.validation.data == str(cwd / "v") and r.init == str(cwd / "w.safetensors")
    # a run folder's recipe (resume) is read with the paths of the folder the run started in
    r = load_recipe(TeacherRecipe, str(folder / "t.yaml"), relative_to=tmp_path)
    assert r.validation.data == str(tmp_path / "val")


@pytest.mark.parametrize("text, value", [
    ("5e-4", 5e-4), ("1e-3", 1e-3), ("1E5", 1e5), ("-2e+3", -2e3), ("1.5e3", 1.5e3), ("1_0e1", 100.0),
    ("1.0e-3", 1e-3), (".5", 0.5), ("1e999", float("inf")),  # inf: refused by the key's "finite" check
    ("5", 5), ("-3", -3), ("0x10", 16), ("1e", "1e"), ("e5", "e5"), ("5e-4x", "5e-4x"), ("[1e-3, 2]", [1e-3, 2]),
])
def test_numbers_parse_as_a_user_writes_them(text, value):
    """YAML 1.1 (PyYAML) reads 5e-4 as a string: the example of teacher train --help was refused."""
    import yaml

    from edgesr.config import parse_yaml

    got = parse_yaml(text)
    assert got == value and type(got) is type(value), got
    assert yaml.safe_load("5e-4") == "5e-4"  # the shared SafeLoader is left as it was


def test_exponent_numbers_in_overrides_and_recipe_files(tmp_path):
    recipe = load_recipe(TeacherRecipe, "teacher", ["optim.lr=5e-4"])
    assert recipe.optim.lr == 5e-4
    (tmp_path / "r.yaml").write_text("student_optim:\n  lr: 1e-3\n")
    assert load_recipe(DistillRecipe, str(tmp_path / "r.yaml")).student_optim.lr == 1e-3


@pytest.mark.parametrize("override, fragment", [
    ("seed=18446744073709551616", "recipe key seed: must be a 64-bit integer (from -2**63 to 2**63 - 1)"),
    ("seed=9223372036854775808", "recipe key seed: must be a 64-bit integer"),
    ("batch_size=" + "9" * 5000, "the value is not valid YAML (an integer of 5000 digits (line 1))"),
    ("student_optim.lr=" + "9" * 25, "recipe key student_optim.lr: expected a finite number"),
    ("scales=[1e999]", "recipe key scales[0]: expected an integer, got inf"),
    ("student_optim.lr=1e999", "recipe key student_optim.lr: expected a finite number, got inf"),
])
def test_numbers_beyond_any_recipe_are_one_line_errors(override, fragment):
    with pytest.raises(EdgesrError) as err:
        load_recipe(DistillRecipe, "quick", [override])
    assert fragment in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) < 200


def test_a_recipe_file_integer_of_5000_digits_is_one_line(tmp_path):
    (tmp_path / "r.yaml").write_text("seed: " + "9" * 5000 + "\n")
    with pytest.raises(EdgesrError, match=r"is not valid YAML: an integer of 5000 digits \(line 1\)"):
        load_recipe(DistillRecipe, str(tmp_path / "r.yaml"))


def test_an_integer_too_long_to_print_is_named_not_printed():
    """A recipe from a checkpoint is Python data, not YAML: 10**5000 reaches the schema itself."""
    with pytest.raises(EdgesrError, match="key seed: must be a 64-bit integer .* got an integer of more than 30"):
        from_dict(DistillRecipe, {"seed": 10**5000})
