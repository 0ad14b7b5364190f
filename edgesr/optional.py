"""Optional packages: whether one is installed, and the one-line error that says how to get it.

edgesr installs by role. The base distribution is the device side (bench, upscale, demo on
onnxruntime); extras add the rest: ``train`` (torch, onnx, ... for distill, teacher train,
eval and export), ``plot``, ``coreml``, ``tensorrt``. The CLI's host commands check their
whole extra up front (:func:`require_extra`), and every other import of a package some install
lacks (a runtime's, a converter's, a plot's) goes through :func:`require`, so a missing package
is always the same :class:`MissingPackage` line naming the install command, in export and
runtime alike, never an ImportError. ``EXTRAS`` mirrors ``[project.optional-dependencies]``
(tests/test_optional.py keeps them equal).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from .errors import EdgesrError


@dataclass(frozen=True)
class Package:
    """An importable name and the distribution that provides it."""

    module: str
    distribution: str
    #: how to get it where ``pip install "edgesr[extra]"`` is not the answer
    note: str = ""


PACKAGES = {p.module: p for p in (
    Package("torch", "torch"),
    Package("onnx", "onnx"),
    Package("onnxscript", "onnxscript"),
    Package("onnxsim", "onnxsim", "no wheel for ARM hosts"),
    Package("safetensors", "safetensors"),
    Package("yaml", "pyyaml"),
    Package("matplotlib", "matplotlib"),
    Package("coremltools", "coremltools"),
    Package("tensorrt", "tensorrt", "on a Jetson it comes with JetPack"),
    Package("cuda", "cuda-python"),
    Package("onnxruntime", "onnxruntime",
            "on a Jetson install NVIDIA's onnxruntime-gpu instead: see deploy/jetson/README.md"),
)}

#: extra -> the modules it installs, as in pyproject.toml (onnxsim: x86_64 hosts only)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "onnx", "onnxscript", "onnxsim", "safetensors", "yaml", "matplotlib"),
    "plot": ("matplotlib",),
    "coreml": ("coremltools",),
    "tensorrt": ("tensorrt", "cuda"),
}
#: modules an extra lists that some platforms cannot install (markers in pyproject.toml)
PLATFORM_OPTIONAL = frozenset({"onnxsim"})


class MissingPackage(EdgesrError):
    """An optional package is not installed; the message names the install command."""


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (cheap, no side effects)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(module: str, extra: str | None) -> str:
    """The command that installs ``module``: the extra's, or the package itself for the base."""
    pkg = PACKAGES[module]
    command = f'pip install "edgesr[{extra}]"' if extra else f"pip install {pkg.distribution}"
    return f"{command} ({pkg.note})" if pkg.note else command


def require(module: str, extra: str | None, what: str) -> ModuleType:
    """Import ``module`` (a name in ``PACKAGES`` or a submodule of one) or raise :class:`MissingPackage`.

    ``extra`` is the one the user should install (None: the base distribution provides it);
    ``what`` says what needs it, e.g. ``"m.engine (a TensorRT engine)"``. A missing *other* module raised
    while importing ``module`` is a broken install, not a missing option, and propagates.
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != top:
            raise
    raise MissingPackage(f"{what} needs {PACKAGES[top].distribution} (not installed here): {install_hint(top, extra)}")


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingPackage` naming every missing module of ``extra`` (none imported)."""
    missing = [m for m in EXTRAS[extra] if m not in PLATFORM_OPTIONAL and not available(m)]
    if missing:
        names = ", ".join(PACKAGES[m].distribution for m in missing)
        raise MissingPackage(f"{what} needs {names} (not installed here): {install_hint(missing[0], extra)}")
