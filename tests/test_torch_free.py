"""The torch / torch-free boundary: everything outside the torch side imports without torch.

The torch side is listed here and in the README's layout; any other module, present or
future, is device-side and must import on a machine where torch is absent.
"""

import pkgutil

import edgesr
from tests.cli_helpers import run_python

TORCH_SIDE = ("edgesr.models", "edgesr.distill", "edgesr.teacher", "edgesr.train", "edgesr.export",
              "edgesr.reference", "edgesr.ops.resize_torch", "edgesr.ops.bicubic_graph", "edgesr.samples.pool",
              "edgesr.__main__")


def torch_free_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(edgesr.__path__, "edgesr.")]
    return ["edgesr", *(n for n in names if not any(n == t or n.startswith(t + ".") for t in TORCH_SIDE))]


def test_every_torch_free_module_imports_with_torch_blocked():
    modules = torch_free_modules()
    assert {"edgesr.cli", "edgesr.runtime.onnx", "edgesr.bench.rows", "edgesr.demo", "edgesr.evaluate"} <= set(modules)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "print('ok')\n"
    r = run_python(code, block_torch=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
