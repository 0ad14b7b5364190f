import pytest

from edgesr.config import apply_overrides, from_dict, load_recipe
from edgesr.distill.recipe import DistillRecipe
from edgesr.errors import EdgesrError


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


def test_bank_must_be_multiple_of_batch():
    with pytest.raises(EdgesrError, match="multiple of batch_size"):
        from_dict(DistillRecipe, {"batch_size": 48, "cmi": {"bank_size": 100}})
