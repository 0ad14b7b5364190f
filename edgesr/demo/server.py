"""The demo's HTTP server: static page, model list, and ``POST /api/upscale``, on asyncio.

Standard library only, so it runs wherever the device runtime does (a Jetson, a laptop) with no
web framework to install. One event-loop thread handles every connection, so slow or idle
clients cost a socket, not a thread; inference runs on ``workers`` daemon threads, never on the
loop. What is admitted, for how long, and how big it may be is in :class:`Limits`.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
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


class WorkerThreads:
    """``n`` daemon threads running blocking jobs for the event loop.

    Daemon threads, unlike an executor's, do not hold the process after a SIGTERM until a long
    inference ends; the server's semaphore keeps at most ``n`` jobs in flight.
    """

    def __init__(self, n: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(n):
            threading.Thread(target=self._work, name=f"edgesr-demo-worker-{i}", daemon=True).start()

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

    def close(self, n: int) -> None:
        """Let the ``n`` threads end once they are idle."""
        for _ in range(n):
            self._jobs.put(None)

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
        self._threads = WorkerThreads(self.limits.workers)
        for choice in (*catalog.models, catalog.reference):
            warm_up(choice.upscaler, self.limits)

    def info(self) -> dict:
        lim = self.limits
        return {"version": __version__, "models": [c.info() for c in self.catalog.models],
                "reference": self.catalog.reference.info(),
                "limits": {"max_upload": lim.max_upload, "max_pixels": lim.max_pixels,
                           "max_output_pixels": lim.max_output_pixels}}

    def close(self) -> None:
        self._threads.close(self.limits.workers)

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._workers = asyncio.Semaphore(self.limits.workers)
        return await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD, backlog=128)

    # -- one connection, one request ---------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
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
        except Exception:  # a bug, not the client's fault: keep its traceback in the log
            self.log(traceback.format_exc().rstrip())
            status, note, drain = 500, "internal error", self._drain_budget(req)
            size = await self._error(writer, HttpError(500, "internal error: the server's log has the details"), req)
        finally:
            try:
                await close(reader, writer, drain, self.limits.idle_timeout)
            finally:
                self.connections -= 1
        what = f"{req.method} {_printable(req.target)}" if req else "-"
        self.log(f"{time.strftime('%H:%M:%S')} {peer} {what} {status or '-'} {size}B "
                 f"{time.monotonic() - started:.2f}s" + (f" {note}" if note else ""))

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

    async def _error(self, writer: asyncio.StreamWriter, exc: HttpError, req: Request | None) -> int:
        body = (exc.message + "\n").encode()
        try:
            await send(writer, exc.status, body, TEXT, {"Cache-Control": "no-store", **exc.headers}, self.limits,
                       head_only=req is not None and req.method == "HEAD")
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
        if not (raw.isascii() and raw.isdigit()) or int(raw) not in choice.scales:
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
                waited = time.perf_counter() - queued
                result = await self._run(choice, data, scale)
            del data
            headers = self._result_headers(result, waited)
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


def serve(server: DemoServer, host: str, port: int, on_ready: Callable[[int], None] = lambda port: None) -> None:
    """Serve until SIGINT or SIGTERM, then stop at once: the demo writes no files to clean up,
    and a running inference (on a daemon thread) is abandoned."""

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
            srv.close()  # open connections are cancelled as asyncio.run ends
            server.close()

    asyncio.run(main())
