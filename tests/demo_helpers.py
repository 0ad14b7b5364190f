"""Run the demo server in a thread, or ``edgesr demo`` in a process, and talk to it over raw
sockets, so tests can send exactly the bytes a hostile or broken client would."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from tests.cli_helpers import ROOT, edgesr_command


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Running:
    host: str
    port: int
    log: list[str] = field(default_factory=list)
    #: the server's event loop (``asyncio.run_coroutine_threadsafe(server.stop(), running.loop)``)
    loop: asyncio.AbstractEventLoop | None = None


def png_bytes(h: int, w: int, c: int = 3, seed: int = 0, fmt: str = "PNG") -> bytes:
    px = (np.random.default_rng(seed).random((h, w, c)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(px[..., 0] if c == 1 else px).save(buf, fmt)
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG declaring ``width x height`` gray pixels, all zero: tiny on disk, huge decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows, block = zlib.compressobj(9), b"\x00" * (width + 1) * 100
    body = b"".join(rows.compress(block) for _ in range(height // 100))
    body += rows.compress(b"\x00" * (width + 1) * (height % 100)) + rows.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@contextmanager
def server_thread(server) -> Iterator[Running]:
    """``server`` (a :class:`edgesr.demo.server.DemoServer`) on a free 127.0.0.1 port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(server.start("127.0.0.1", 0))
        box["port"] = srv.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        srv.close()
        tasks = asyncio.all_tasks(loop)  # connections still open: cancelled, as asyncio.run does
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the demo server did not start"
    try:
        yield Running("127.0.0.1", box["port"], loop=loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()


def request(port: int, raw: bytes, timeout: float = 30.0, shut_write: bool = False) -> Reply:
    """Send ``raw`` bytes, read the reply until the server closes, parse it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        return read_reply(s)


def read_reply(s: socket.socket) -> Reply:
    data = bytearray()
    while True:
        try:
            chunk = s.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0]:
        raise ConnectionError("no reply")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Reply(int(lines[0].split(" ")[1]), headers, body)


def post(port: int, body: bytes, query: str = "", extra: str = "", length: int | None = None, **kw) -> Reply:
    n = len(body) if length is None else length
    head = f"POST /api/upscale{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n{extra}\r\n"
    return request(port, head.encode() + body, **kw)


def get(port: int, path: str, method: str = "GET") -> Reply:
    return request(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


@contextmanager
def demo_process(*args: str, env: dict | None = None, block_torch: bool = True
                 ) -> Iterator[tuple[subprocess.Popen, int, list[str]]]:
    """``edgesr demo ARGS`` (torch blocked by default, as on a device) until the block ends;
    yields the process, its port and the stdout lines it printed before it was ready."""
    proc = subprocess.Popen([*edgesr_command(("torch",) if block_torch else ()), "demo", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    try:
        port = None
        deadline = time.monotonic() + 120
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            m = re.search(r"edgesr demo: http://[^/]*:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            proc.kill()
            raise AssertionError(f"edgesr demo did not start: {lines} {proc.stderr.read()}")
        while not lines[-1].startswith("Ctrl-C"):
            lines.append(proc.stdout.readline().rstrip("\n"))
        yield proc, port, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
