"""Run the real ``edgesr`` entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def edgesr_command(block: tuple[str, ...] = ()) -> list[str]:
    """The argv prefix that runs the ``edgesr`` entry point; importing any module in ``block``
    fails as it does where the package is not installed."""
    if not block:
        return [sys.executable, "-m", "edgesr"]
    return [sys.executable, "-c", (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {block!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "from edgesr.cli import main\n"
        "sys.argv = ['edgesr'] + sys.argv[1:]\n"
        "main()\n"
    )]


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, block_torch: bool = False,
            block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m edgesr ARGS``; importing torch (``block_torch``) or any module in ``block``
    fails as it does where the package is not installed."""
    full_env = {**os.environ, **(env or {})}
    cmd = [*edgesr_command((*block, "torch") if block_torch else block), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Non-zero exit, no traceback, and the message on one line of stderr."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
