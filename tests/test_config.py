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
])
def test_values_outside_their_range_name_key_and_range(data, fragment):
    with pytest.raises(EdgesrError) as info:
        from_dict(DistillRecipe, data)
    assert str(info.value).startswith(fragment)


def test_bank_must_be_multiple_of_batch():
    with pytest.raises(EdgesrError, match="multiple of batch_size"):
        from_dict(DistillRecipe, {"batch_size": 48, "cmi": {"bank_size": 100}})
