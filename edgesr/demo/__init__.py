"""A minimal upscaling web page on top of :mod:`edgesr.runtime`: standard library only.

One page, one POST: the browser sends the image file's bytes to ``/upscale`` and shows the
PNG that comes back. No web framework, so it runs on a device with just the runtime.
"""

from __future__ import annotations

import tempfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock

from ..errors import EdgesrError
from ..runtime import Upscaler
from ..runtime.photo import read_photo, upscale_photo, write_photo

#: uploads larger than this are refused before reading them
MAX_UPLOAD = 32 << 20

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgesr upscale</title>
<style>body{font-family:sans-serif;margin:2em}img{max-width:48%;image-rendering:pixelated;margin-right:1%}</style>
</head><body>
<h1>edgesr upscale</h1>
<p>{model}</p>
<input type="file" id="f" accept="image/*"> <span id="s"></span>
<div><img id="a"><img id="b"></div>
<script>
document.getElementById('f').onchange = async (e) => {
  const file = e.target.files[0], s = document.getElementById('s');
  document.getElementById('a').src = URL.createObjectURL(file);
  s.textContent = 'upscaling...';
  const r = await fetch('upscale', {method: 'POST', body: file});
  if (!r.ok) { s.textContent = await r.text(); return; }
  document.getElementById('b').src = URL.createObjectURL(await r.blob());
  s.textContent = 'done';
};
</script></body></html>
"""


def upscale_bytes(upscaler: Upscaler, data: bytes, scale: int | None = None) -> bytes:
    """Image file bytes in, PNG bytes out, through the same path as ``edgesr upscale``."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "upload", Path(tmp) / "out.png"
        src.write_bytes(data)
        write_photo(dst, upscale_photo(upscaler, read_photo(src), scale))
        return dst.read_bytes()


def make_server(upscaler: Upscaler, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for the page; ``port=0`` picks a free port (see ``server.server_port``)."""
    page = PAGE.replace("{model}", upscaler.describe()).encode()
    lock = Lock()  # one inference at a time: the runtime already uses every core it was given

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/upscale":
                return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_UPLOAD:
                return self._send(HTTPStatus.BAD_REQUEST, f"upload 1 byte to {MAX_UPLOAD >> 20} MB".encode(),
                                  "text/plain")
            data = self.rfile.read(length)
            try:
                with lock:
                    png = upscale_bytes(upscaler, data)
            except EdgesrError as exc:
                return self._send(HTTPStatus.BAD_REQUEST, str(exc).replace(str(tempfile.gettempdir()), "").encode(),
                                  "text/plain; charset=utf-8")
            self._send(HTTPStatus.OK, png, "image/png")

        def log_message(self, fmt: str, *args) -> None:  # keep the terminal for the URL line
            pass

    return ThreadingHTTPServer((host, port), Handler)
