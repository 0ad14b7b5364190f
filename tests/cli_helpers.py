"""Run the real ``edgesr`` entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: ``python -c BLOCK_TORCH ARGS`` runs ``edgesr ARGS`` with every ``import torch`` failing
BLOCK_TORCH = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is blocked in this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
    "from edgesr.cli import main\n"
    "sys.argv = ['edgesr'] + sys.argv[1:]\n"
    "main()\n"
)


def edgesr_command(block_torch: bool = False) -> list[str]:
    """The argv prefix that runs the ``edgesr`` entry point, with torch made unimportable or not."""
    return [sys.executable, "-c", BLOCK_TORCH] if block_torch else [sys.executable, "-m", "edgesr"]


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, block_torch: bool = False
            ) -> subprocess.CompletedProcess:
    """``python -m edgesr ARGS``; with ``block_torch`` any ``import torch`` fails."""
    full_env = {**os.environ, **(env or {})}
    cmd = [*edgesr_command(block_torch), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Non-zero exit, no traceback, and the message on one line of stderr."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
