"""The thread rule of the host commands (edgesr/threads.py)."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from edgesr import threads
from edgesr.errors import EdgesrError


@pytest.mark.parametrize(("cores", "busy", "expected"), [
    (2, 0.1, 2), (2, 0.4, 2), (2, 0.5, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 4.4, 1), (8, 2.2, 6), (8, 0.0, 8),
    (4, None, 4)])
def test_free_threads(cores, busy, expected):
    assert threads.free_threads(cores, busy) == expected


STAT = """cpu  300 0 100 900 10 0 0 0 0 0
cpu0 100 0 50 400 5 0 0 0 0 0
cpu1 200 0 50 500 5 0 0 0 0 0
cpu2 7 0 0 1 0 0 0 3 0 0
intr 1 2 3
"""


def test_cpu_ticks_reads_the_cores_of_this_process(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    assert threads.cpu_ticks({0, 1}, stat) == (400, 1310)
    assert threads.cpu_ticks({2}, stat) == (10, 11)  # steal is busy: the core went to someone else
    assert threads.cpu_ticks(None, stat) == (410, 1321)
    assert threads.cpu_ticks({5}, stat) is None
    assert threads.cpu_ticks({0}, tmp_path / "missing") is None


def _fake_machine(monkeypatch, ticks: list[tuple[int, int]], own_seconds: float = 0.0) -> None:
    """Two cores whose /proc/stat reads ``ticks`` in turn; this process used ``own_seconds``."""
    reads, own = iter(ticks), iter([0.0, own_seconds])
    monkeypatch.setattr(threads, "_cpu_set", lambda: {0, 1})
    monkeypatch.setattr(threads, "cpu_ticks", lambda cpus, stat=None: next(reads))
    monkeypatch.setattr(threads, "_sleep", lambda s: None)
    monkeypatch.setattr(threads, "_own_cpu", lambda: next(own))
    clock = iter([0.0, 0.5])
    monkeypatch.setattr(threads, "_wall", lambda: next(clock))


def test_busy_cores_is_the_others_share_now(monkeypatch):
    _fake_machine(monkeypatch, [(1000, 5000), (1090, 5100)])  # 90 of 100 ticks busy on 2 cores
    assert threads.busy_cores() == pytest.approx(1.8)
    _fake_machine(monkeypatch, [(1000, 5000), (1090, 5100)], own_seconds=0.25)  # half a core was ours
    assert threads.busy_cores() == pytest.approx(1.3)
    _fake_machine(monkeypatch, [(1000, 5000), (1000, 5100)], own_seconds=0.25)
    assert threads.busy_cores() == 0.0


def test_an_idle_machine_after_busy_minutes_gets_every_core(monkeypatch):
    """The misfire of the load-average rule: right after the tests, the 1-minute load average
    still reads 2 on an idle machine; the cores are idle now, so the job takes both."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "load_average", lambda: 2.0)
    _fake_machine(monkeypatch, [(1000, 5000), (1001, 5100)])
    choice = threads.choose()
    assert choice.threads == 2 and "0.0 busy" in choice.describe()
    _fake_machine(monkeypatch, [(1000, 5000), (1100, 5100)])  # both cores busy now
    assert threads.choose().threads == 1


def test_load_average_where_proc_stat_is_missing(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: None)
    monkeypatch.setattr(threads, "load_average", lambda: 1.3)
    choice = threads.choose()
    assert choice.threads == 1 and "load average 1.3" in choice.describe()
    monkeypatch.setattr(threads, "load_average", lambda: 0.2)
    assert threads.choose().threads == 2


def test_flag_then_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose(2) == threads.ThreadChoice(2, "--threads")
    assert threads.choose().threads == 3 and "OMP_NUM_THREADS" in threads.choose().reason


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(threads.usable_cores() > 4 or not threads.PROC_STAT.exists(),
                    reason="needs /proc/stat and at most 4 cores (one busy process per core)")
def test_busy_processes_on_every_core_leave_one_thread(monkeypatch):
    """Real contention: one CPU-bound process per core, started a moment ago (a load average
    would still read low); the rule must see them now."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    ctx = mp.get_context("spawn")
    busy = [ctx.Process(target=_spin, args=(30.0,), daemon=True) for _ in range(threads.usable_cores())]
    for p in busy:
        p.start()
    try:
        time.sleep(1.0)  # spawn's interpreter start-up, then spinning
        assert threads.choose().threads == 1
    finally:
        for p in busy:
            p.terminate()
            p.join()


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
        assert threads.applied() == threads.ThreadChoice(1, "test")
    finally:
        torch.set_num_threads(before)
        monkeypatch.setattr(threads, "_choice", None)
