"""Shared fixtures.

Integration tests use the real teacher and images in ``../shared/data``. Where the folder is
absent (a user's fresh clone) they skip with the reason; CI sets ``EDGESR_REQUIRE_DATA=1`` so
that a missing folder fails instead of silently skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run tiny models, for which intra-op threads only add synchronisation, and two threads
# per process oversubscribe a 2-core machine that runs anything else. Subprocesses (CLI tests)
# inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
except ImportError:  # the device side is tested without torch too
    pass

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EDGESR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The README's commands first: they are the longest file and run in order in one process
    (``--dist loadfile``), so the other process works through every other file meanwhile
    instead of waiting for them at the end."""
    items.sort(key=lambda item: item.path.name != "test_readme.py")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (DATA / "Set5").is_dir():
        msg = f"real data not found at {DATA} (set EDGESR_SHARED_DATA)"
        if os.environ.get("EDGESR_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return DATA


@pytest.fixture(scope="session")
def teacher_path(shared_data: Path) -> Path:
    return shared_data / "teachers" / "vdsr_pytorch_x234.pth"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("EDGESR_HOME", str(tmp_path_factory.mktemp("edgesr_home")))
