"""Optional packages: one table that matches pyproject.toml, one-line errors that name the
install command, and converters that leave the process's logging as they found it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from edgesr.export.quiet import quiet
from edgesr.optional import EXTRAS, PACKAGES, PLATFORM_OPTIONAL, MissingPackage, require, require_extra
from tests.cli_helpers import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_extras_table_mirrors_pyproject():
    declared = {extra: [Requirement(r) for r in reqs]
                for extra, reqs in PROJECT["optional-dependencies"].items() if extra != "dev"}
    assert set(declared) == set(EXTRAS)
    for extra, reqs in declared.items():
        assert sorted(r.name for r in reqs) == sorted(PACKAGES[m].distribution for m in EXTRAS[extra]), extra
        assert {r.name for r in reqs if r.marker} == {PACKAGES[m].distribution for m in EXTRAS[extra]
                                                      if m in PLATFORM_OPTIONAL}
    in_extras = {PACKAGES[m].distribution for mods in EXTRAS.values() for m in mods}
    base = {Requirement(r).name for r in PROJECT["dependencies"]}
    assert not base & in_extras, "a base dependency is in an extra too"
    # the table's other entries are base dependencies (onnxruntime: NVIDIA's build on a Jetson)
    assert {p.distribution for p in PACKAGES.values()} - in_extras <= base


class _Missing:
    """A meta-path finder under which ``names`` import as they do where they are not installed."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.fixture
def missing(monkeypatch):
    def block(*names: str) -> None:
        for name in names:
            for mod in [m for m in sys.modules if m.partition(".")[0] == name]:
                monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setattr(sys, "meta_path", [_Missing(*names), *sys.meta_path])

    return block


def test_require_names_the_install_command(missing):
    missing("coremltools", "tensorrt")
    with pytest.raises(MissingPackage) as info:
        require("coremltools", "coreml", "m.mlpackage (a CoreML model)")
    assert str(info.value) == 'm.mlpackage (a CoreML model) needs coremltools (not installed here): pip install "edgesr[coreml]"'
    with pytest.raises(MissingPackage, match=r'pip install "edgesr\[tensorrt\]" \(on a Jetson it comes with JetPack\)'):
        require("tensorrt", "tensorrt", "m.engine (a TensorRT engine)")


def test_require_extra_lists_what_is_missing(missing):
    missing("torch", "yaml", "onnxsim")
    with pytest.raises(MissingPackage) as info:
        require_extra("train", "edgesr distill")
    # onnxsim is optional even within the extra (no ARM wheel); the rest is named by distribution
    assert str(info.value) == 'edgesr distill needs torch, pyyaml (not installed here): pip install "edgesr[train]"'


def test_a_broken_install_is_not_reported_as_missing(tmp_path, monkeypatch):
    """coremltools present but failing on a dependency of its own: that traceback is the truth."""
    pkg = tmp_path / "coremltools"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import edgesr_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "coremltools", raising=False)
    with pytest.raises(ModuleNotFoundError, match="edgesr_no_such_dependency"):
        require("coremltools", "coreml", "CoreML export")


def _logging_state() -> tuple:
    loggers = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger)}
    return logging.root.level, list(logging.root.handlers), loggers


def _assert_unchanged(before: tuple) -> None:
    """Root level and handlers as before, and every logger that existed keeps its level."""
    level, handlers, loggers = _logging_state()
    assert (level, handlers) == before[:2]
    assert {name: loggers[name] for name in before[2]} == before[2]


def test_quiet_restores_levels_and_handlers(capsys):
    before = _logging_state()
    with quiet("", "torch.onnx"):
        assert logging.getLogger("torch.onnx").level == logging.ERROR
        logging.root.addHandler(logging.StreamHandler())  # what logging.basicConfig does behind a library's call
        logging.warning("hidden")
        print("hidden too")
    _assert_unchanged(before)
    assert "hidden" not in capsys.readouterr().out


def test_export_leaves_logging_as_it_was(tmp_path):
    """ONNX export, calibration and quantization in a fresh process (no pytest handlers on the
    root logger, so ``logging.warning`` inside onnxruntime would call ``basicConfig``): every
    logger's level and the root's handlers are as before. Quantization used to set the root
    logger to ERROR for good."""
    code = f"""
import json, logging
import numpy as np, torch
from edgesr.export.deploy_net import DeployNet
from edgesr.export.onnx_export import torch_to_onnx
from edgesr.export.quantize import calibrate, quantize
from edgesr.models import VDSR

def state():
    levels = {{n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}}
    return logging.root.level, len(logging.root.handlers), levels

before = state()
torch.manual_seed(0)
fp32 = torch_to_onnx(DeployNet(VDSR(4, depth=3), 2, "bicubic"))
inputs = np.random.default_rng(0).random((8, 1, 16, 16), dtype=np.float32)
quantize(fp32, calibrate(fp32, inputs, "minmax", {str(tmp_path / "ranges.json")!r}, "cpu"), "cpu")
after = state()
changed = {{n: [lv, after[2][n]] for n, lv in before[2].items() if after[2][n] != lv}}
print(json.dumps([before[:2], after[:2], changed]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    before, after, changed = json.loads(r.stdout.strip().splitlines()[-1])
    assert before == after and changed == {}
