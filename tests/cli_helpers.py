"""Run the real ``edgesr`` entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def block_source(modules: tuple[str, ...]) -> str:
    """Python source after which importing any of ``modules`` (or their submodules) fails as it
    does where the package is not installed."""
    return (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {tuple(modules)!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )


#: Python source that makes every later ``import torch`` fail: the device side's world
BLOCK_TORCH = block_source(("torch",))


def edgesr_command(block: tuple[str, ...] = ()) -> list[str]:
    """The argv prefix that runs the ``edgesr`` entry point; importing any module in ``block``
    fails as it does where the package is not installed."""
    if not block:
        return [sys.executable, "-m", "edgesr"]
    main = "from edgesr.cli import main\nsys.argv = ['edgesr'] + sys.argv[1:]\nmain()\n"
    return [sys.executable, "-c", block_source(block) + main]


def run_python(code: str, block_torch: bool = False, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -c code`` from the repository root, with torch unimportable if asked."""
    return subprocess.run([sys.executable, "-c", (BLOCK_TORCH if block_torch else "") + code],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, block_torch: bool = False,
            block: tuple[str, ...] = (), cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m edgesr ARGS``; importing torch (``block_torch``) or any module in ``block``
    fails as it does where the package is not installed."""
    # from another working folder too (``cwd``), edgesr is this checkout
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    cmd = [*edgesr_command((*block, "torch") if block_torch else block), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Non-zero exit, no traceback, and the message on one line of stderr."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
