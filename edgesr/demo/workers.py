"""The demo's inference threads: ``n`` threads running blocking jobs for the event loop.

They are daemon threads, and the server ends them itself when it stops (:meth:`WorkerThreads.join`):
a process must not exit while one of them is inside a runtime call (onnxruntime aborts the
process, ``terminate called without an active exception``), nor wait for ever on one that a
backend cannot interrupt.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable


class WorkerThreads:
    """``n`` threads taking jobs in order; the server's semaphore keeps at most ``n`` in flight."""

    def __init__(self, n: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"edgesr-demo-worker-{i}", daemon=True)
                         for i in range(n)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, fut, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 (handed to the awaiting coroutine)
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_resolve, fut, result, error)
            except RuntimeError:  # the loop has closed: the server stopped meanwhile
                pass

    def close(self) -> None:
        """Let every thread end once it is idle (queued jobs still run first)."""
        for _ in self._threads:
            self._jobs.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in all for the threads to end; whether they all did."""
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    async def run(self, fn: Callable, *args):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._jobs.put((loop, fut, fn, args))
        return await fut


def _resolve(fut: asyncio.Future, result, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
