"""What the Jetson install reads (deploy/jetson/requirements.txt) agrees with the package
metadata: a device installed with ``pip install --no-deps edgesr`` plus that file has exactly
the base distribution's requirements, less what NVIDIA's builds provide."""

from __future__ import annotations

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.cli_helpers import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: on a Jetson these come from NVIDIA (onnxruntime-gpu, JetPack's tensorrt), never from this file
NVIDIA_PROVIDED = {"onnxruntime", "onnxruntime-gpu", "tensorrt"}


def _requirements(lines) -> dict[str, Requirement]:
    reqs = [Requirement(ln.split("#")[0].strip()) for ln in lines if ln.split("#")[0].strip()]
    assert len({r.name for r in reqs}) == len(reqs), "a requirement is listed twice"
    return {r.name: r for r in reqs}


def test_jetson_requirements_match_the_base_distribution():
    jetson = _requirements((ROOT / "deploy" / "jetson" / "requirements.txt").read_text().splitlines())
    base = _requirements(PROJECT["dependencies"])
    cuda = _requirements(PROJECT["optional-dependencies"]["tensorrt"])["cuda-python"]
    assert not NVIDIA_PROVIDED & set(jetson)
    assert set(jetson) == set(base) - NVIDIA_PROVIDED | {"cuda-python"}
    for name in set(base) - NVIDIA_PROVIDED:
        assert jetson[name].specifier == base[name].specifier, name
    # the extra's cuda-python, narrowed to the CUDA 12 of JetPack 6 (13.x needs a CUDA 13 driver)
    assert set(cuda.specifier) <= set(jetson["cuda-python"].specifier)
    assert "12.6.0" in jetson["cuda-python"].specifier and "13.0.0" not in jetson["cuda-python"].specifier


def test_python_310_is_supported():
    """JetPack 6 ships Python 3.10 (CI checks the code with vermin; this checks the metadata)."""
    assert "3.10" in SpecifierSet(PROJECT["requires-python"])


def test_every_package_is_listed():
    """pyproject lists its packages (to map recipes/ into edgesr/recipes): a new subpackage must be added."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edgesr").rglob("__init__.py")}
    assert listed == found | {"edgesr.recipes"}
