"""The demo's HTTP server: static page, model list, and ``POST /api/upscale``, on asyncio.

Standard library only, so it runs wherever the device runtime does (a Jetson, a laptop) with no
web framework to install. One event-loop thread handles every connection, so slow or idle
clients cost a socket, not a thread; inference runs on ``workers`` threads, never on the loop.
What is admitted, for how long, and how big it may be is in :class:`Limits`. On SIGTERM or
SIGINT it stops within :data:`Limits.stop_grace` plus a second or two (:meth:`DemoServer.stop`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from importlib import resources

from .. import __version__
from ..errors import EdgesrError
from ..runtime.photo import TooManyPixels
from .catalog import Catalog, Choice
from .limits import Limits
from .protocol import (
    LINGER_BYTES,
    LINGER_SECONDS,
    MAX_HEAD,
    ClientGone,
    HttpError,
    Request,
    close,
    read_body,
    read_request,
    send,
)
from .work import Upscaled, upscale_upload, warm_up
from .workers import WorkerThreads

#: path -> (file under static/, content type); nothing else is ever read from disk
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
API_INFO, API_UPSCALE = "/api/info", "/api/upscale"
#: methods HTTP defines; any other token is answered 501 Not Implemented
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
TEXT = "text/plain; charset=utf-8"
#: where a connection is, for a stopping server: OPEN ones (reading, queued, idle) are answered
#: at once, RUNNING ones (at a worker) get the stop grace, REPLYING ones only finish their reply
OPEN, RUNNING, REPLYING = "open", "running", "replying"


def _stopping() -> HttpError:
    return HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is stopping: try again in a moment",
                     {"Retry-After": "10"})


def _printable(s: str, n: int = 200) -> str:
    """Client-controlled text made safe for a one-line log."""
    return "".join(c if c.isprintable() else "?" for c in s[:n])


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class DemoServer:
    def __init__(self, catalog: Catalog, limits: Limits | None = None,
                 log: Callable[[str], None] = _stderr) -> None:
        self.catalog, self.limits, self.log = catalog, limits or Limits(), log
        # Pillow warns on opening images above ~89 MP; the header check here, which runs first
        # and refuses far smaller ones, makes the warning noise in the log
        from PIL import Image

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        folder = resources.files(__package__) / "static"
        self.static = {path: ((folder / name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()}
        self.connections = 0
        #: upscale requests holding a ticket: reading their upload, waiting, running or replying
        self.admitted = 0
        #: running average of a job's seconds, for Retry-After
        self.job_seconds = 1.0
        self._workers: asyncio.Semaphore | None = None
        #: each open connection's task and where it is (OPEN, RUNNING, REPLYING), for stop()
        self._phases: dict[asyncio.Task, str] = {}
        self.stopping = False
        #: the short waits of a stopping server: a 503 that does not leave in a second is dropped
        self._stop_limits = replace(self.limits, idle_timeout=1.0)
        self._threads = WorkerThreads(self.limits.workers)
        for choice in (*catalog.models, catalog.reference):
            warm_up(choice.upscaler, self.limits)

    def info(self) -> dict:
        lim = self.limits
        return {"version": __version__, "models": [c.info() for c in self.catalog.models],
                "reference": self.catalog.reference.info(),
                "limits": {"max_upload": lim.max_upload, "max_pixels": lim.max_pixels,
                           "max_output_pixels": lim.max_output_pixels}}

    def close(self, timeout: float = 1.0) -> bool:
        """End the worker threads: whether they all ended within ``timeout`` seconds (one still
        inside a runtime call that :meth:`stop` could not interrupt would not)."""
        self._threads.close()
        return self._threads.join(timeout)

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._workers = asyncio.Semaphore(self.limits.workers)
        return await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD, backlog=128)

    # -- one connection, one request ---------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._phases[task] = OPEN
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:  # cancelled again while stopping: cut off, quietly
            writer.transport.abort()
        finally:
            del self._phases[task]

    def _phase(self, phase: str) -> None:
        """Where the current connection is, for :meth:`stop`."""
        task = asyncio.current_task()
        if task in self._phases:
            self._phases[task] = phase

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        if self.stopping:  # accepted just before the listening socket closed
            writer.transport.abort()
            return
        if self.connections >= self.limits.connections:
            await self._refuse(writer, peer)
            return
        self.connections += 1
        started = time.monotonic()
        req: Request | None = None
        status, size, note, drain = 0, 0, "", (0, 0.0)
        try:
            req = await read_request(reader, self.limits.head_timeout)
            status, size = await self._route(req, reader, writer)
        except HttpError as exc:
            status, note, drain = exc.status, exc.message, self._drain_budget(req)
            size = await self._error(writer, exc, req)
        except ClientGone as exc:
            note = str(exc) or "client went away"
        except asyncio.CancelledError:  # only stop() cancels a connection
            _uncancel()
            note = "the server stopped"
            if req is not None and self._phases.get(asyncio.current_task()) != REPLYING:
                status, size = 503, await self._error(writer, _stopping(), req, self._stop_limits)
        except Exception:  # a bug, not the client's fault: keep its traceback in the log
            self.log(traceback.format_exc().rstrip())
            status, note, drain = 500, "internal error", self._drain_budget(req)
            size = await self._error(writer, HttpError(500, "internal error: the server's log has the details"), req)
        finally:
            try:
                await close(reader, writer, drain, 1.0 if self.stopping else self.limits.idle_timeout)
            finally:
                self.connections -= 1
        what = f"{req.method} {_printable(req.target)}" if req else "-"
        self.log(f"{time.strftime('%H:%M:%S')} {peer} {what} {status or '-'} {size}B "
                 f"{time.monotonic() - started:.2f}s" + (f" {note}" if note else ""))

    # -- stopping ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop serving, once the listening socket is closed: requests not yet at a worker get
        503 at once, idle connections are closed, running inferences get ``stop_grace`` seconds
        to finish and be answered; then the rest is cancelled (a 503 if nothing was sent yet),
        the runs in progress included (:meth:`edgesr.runtime.Upscaler.cancel`)."""
        self.stopping = True
        for task, phase in list(self._phases.items()):
            if phase == OPEN:
                task.cancel()
        if self._phases:
            await asyncio.wait(list(self._phases), timeout=self.limits.stop_grace)
        for choice in (*self.catalog.models, self.catalog.reference):
            choice.upscaler.cancel()
        for task in self._phases:
            task.cancel()
        if self._phases:
            await asyncio.wait(list(self._phases), timeout=2 * self._stop_limits.idle_timeout)

    def _drain_budget(self, req: Request | None) -> tuple[int, float]:
        """After an error reply: read and drop the rest of an upload the server would have
        taken (a 503 or a wrong model id, answered before the body) at the upload's own pace,
        so a browser sees the reply rather than a reset; anything else gets a short linger."""
        raw = req.headers.get("content-length", "") if req is not None and not req.body_started else ""
        if raw.isascii() and raw.isdigit() and 0 < int(raw) <= self.limits.max_upload:
            return int(raw), self.limits.transfer_timeout(int(raw))
        return LINGER_BYTES, LINGER_SECONDS

    async def _refuse(self, writer: asyncio.StreamWriter, peer: str) -> None:
        """Over the connection cap: a short 503 without reading anything, then close."""
        body = b"too many open connections: try again in a moment\n"
        try:
            await send(writer, HTTPStatus.SERVICE_UNAVAILABLE, body, TEXT, {"Retry-After": "1"},
                       Limits(idle_timeout=1.0))
        except ClientGone:
            pass
        finally:
            await close(None, writer, flush_timeout=1.0)
        self.log(f"{time.strftime('%H:%M:%S')} {peer} - 503 refused: {self.connections} connections open")

    async def _error(self, writer: asyncio.StreamWriter, exc: HttpError, req: Request | None,
                     limits: Limits | None = None) -> int:
        self._phase(REPLYING)
        body = (exc.message + "\n").encode()
        try:
            await send(writer, exc.status, body, TEXT, {"Cache-Control": "no-store", **exc.headers},
                       limits or self.limits, head_only=req is not None and req.method == "HEAD")
        except ClientGone:
            return 0
        return len(body)

    async def _route(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> tuple[int, int]:
        allowed = ("GET, HEAD" if req.path in STATIC or req.path == API_INFO
                   else "POST" if req.path == API_UPSCALE else None)
        if req.method not in KNOWN_METHODS:
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, f"method {req.method} is not supported")
        if allowed is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"nothing at {_printable(req.path, 80)}")
        if req.method not in allowed.split(", "):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{req.path} takes {allowed} only, not {req.method}",
                            {"Allow": allowed})
        if req.path == API_UPSCALE:
            return await self._upscale(req, reader, writer)
        if req.path == API_INFO:
            body, ctype = json.dumps(self.info()).encode(), "application/json"
        else:
            body, ctype = self.static[req.path]
        self._phase(REPLYING)
        await send(writer, 200, body, ctype, {"Cache-Control": "no-cache"}, self.limits,
                   head_only=req.method == "HEAD")
        return 200, len(body)

    # -- the upscale endpoint ----------------------------------------------------------------

    def _choose(self, req: Request) -> tuple[Choice, int]:
        try:
            choice = self.catalog.get(req.query.get("model"))
        except KeyError:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no model {_printable(req.query['model'], 40)!r} here: "
                                                  f"{API_INFO} lists them") from None
        raw = req.query.get("scale", str(choice.upscaler.meta.scale))
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 2) or int(raw) not in choice.scales:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"scale {_printable(raw, 8)!r} is not available for "
                                                    f"{choice.id}: choose {', '.join(map(str, choice.scales))}")
        return choice, int(raw)

    def _busy(self) -> HttpError:
        wait = self.job_seconds * self.admitted / self.limits.workers
        retry = min(60, max(1, math.ceil(wait)))
        return HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                         f"the server is busy with {self.admitted} images: try again in {retry} s",
                         {"Retry-After": str(retry)})

    async def _upscale(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> tuple[int, int]:
        choice, scale = self._choose(req)
        n = req.content_length(self.limits.max_upload)
        if self.admitted >= self.limits.tickets:
            raise self._busy()
        self.admitted += 1
        try:
            if req.headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.body_started = True
            data = await read_body(reader, n, self.limits)
            queued = time.perf_counter()
            assert self._workers is not None
            async with self._workers:
                if writer.transport.is_closing():
                    raise ClientGone
                if self.stopping:
                    raise _stopping()
                waited = time.perf_counter() - queued
                self._phase(RUNNING)
                result = await self._run(choice, data, scale)
            del data
            headers = self._result_headers(result, waited)
            self._phase(REPLYING)
            await send(writer, 200, result.png, "image/png", headers, self.limits)
            return 200, len(result.png)
        finally:
            self.admitted -= 1

    async def _run(self, choice: Choice, data: bytes, scale: int) -> Upscaled:
        started = time.perf_counter()
        try:
            return await self._threads.run(choice.call, upscale_upload, data, scale, self.limits)
        except TooManyPixels as exc:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc)) from None
        except EdgesrError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except MemoryError:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the server ran out of memory for this image: "
                                                            "try a smaller one", {"Retry-After": "10"}) from None
        finally:
            self.job_seconds = 0.8 * self.job_seconds + 0.2 * (time.perf_counter() - started)

    @staticmethod
    def _result_headers(result: Upscaled, waited: float) -> dict[str, str]:
        timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in {"queue": waited, **result.seconds}.items())
        return {"Server-Timing": timing, "Cache-Control": "no-store",
                "X-Edgesr-Input": "{}x{}".format(*result.input_size),
                "X-Edgesr-Output": "{}x{}".format(*result.output_size)}


def _uncancel() -> None:
    """Forget a cancellation the current task has handled (Python 3.11+ counts them)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


def serve(server: DemoServer, host: str, port: int, on_ready: Callable[[int], None] = lambda port: None) -> None:
    """Serve until SIGINT or SIGTERM, then stop: no new connection, every open one answered or
    closed (:meth:`DemoServer.stop`), the worker threads ended, within ``stop_grace`` plus about
    two seconds. The demo writes no files, so there is nothing else to clean up."""

    async def main() -> None:
        srv = await server.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        on_ready(srv.sockets[0].getsockname()[1])
        try:
            await stop.wait()
        finally:
            srv.close()
            await server.stop()

    try:
        asyncio.run(main())
    except BaseException:
        server.close(0.0)
        raise
    if not server.close(timeout=1.0):
        # a backend that cannot be interrupted is still inside a call: the interpreter's normal
        # exit would tear the runtime down under it and abort; the demo has nothing left to save
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
