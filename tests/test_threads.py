"""The thread rule of the host commands (edgesr/threads.py)."""

from __future__ import annotations

import pytest

from edgesr import threads
from edgesr.errors import EdgesrError


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (2, 0.1, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 4.4, 1), (8, 2.2, 6), (8, 0.0, 8), (4, None, 4)])
def test_free_threads(cores, load, expected):
    assert threads.free_threads(cores, load) == expected


def test_flag_then_environment_then_free_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose(2) == threads.ThreadChoice(2, "--threads")
    assert threads.choose().threads == 3 and "OMP_NUM_THREADS" in threads.choose().reason
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "load_average", lambda: 1.3)
    choice = threads.choose()
    assert choice.threads == 1 and "load average 1.3" in choice.describe()
    monkeypatch.setattr(threads, "load_average", lambda: 0.2)
    assert threads.choose().threads == 2


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_bad_environment_is_one_line(monkeypatch, bad):
    monkeypatch.setenv("OMP_NUM_THREADS", bad)
    with pytest.raises(EdgesrError, match="OMP_NUM_THREADS"):
        threads.choose()


def test_bad_flag():
    with pytest.raises(EdgesrError, match="--threads"):
        threads.choose(0)


def test_flag_beyond_the_cores_is_refused(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.choose(4).threads == 4
    with pytest.raises(EdgesrError, match=r"--threads must be from 1 to 4 \(the cores of this machine\), got 5"):
        threads.choose(5)
    with pytest.raises(EdgesrError, match="got 1000"):
        threads.check_requested(1000)


def test_apply_sets_torch_and_later_sessions(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        threads.apply(threads.ThreadChoice(1, "test"))
        assert torch.get_num_threads() == 1 and threads.chosen() == 1
    finally:
        torch.set_num_threads(before)
        monkeypatch.setattr(threads, "_chosen", None)
