"""Just enough HTTP/1.1 for the demo, on asyncio streams, with every read bounded in size and time.

One request per connection (``Connection: close``): the page makes a handful of requests, and
holding no idle keep-alive sockets is what lets a small device cap its connections. A request
is a request line and headers (at most :data:`MAX_HEAD` bytes) and then exactly
``Content-Length`` bytes of body; chunked uploads are refused (browsers send a length for
files) and so is anything ambiguous about the length, the classic request-smuggling door.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from .limits import Limits

#: request line plus headers; also the stream reader's buffer limit
MAX_HEAD = 16 * 1024
#: what a client may keep sending after an error reply before the socket is closed, unless
#: it is the rest of an upload the server would have taken (see ``DemoServer._drain_budget``)
LINGER_BYTES, LINGER_SECONDS = 1 << 20, 1.0
#: sent with every reply: no sniffing, no framing, scripts and styles from this server only
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
}


class HttpError(Exception):
    """A request answered with ``status`` and a one-line ``message`` for the person."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ClientGone(Exception):
    """The client closed or reset the connection, or stopped reading it: there is nobody to
    answer (the message, when there is one, says which for the log)."""


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    #: lower-cased names
    headers: dict[str, str] = field(default_factory=dict)
    #: whether reading the body began (an error after that needs no long drain)
    body_started: bool = False

    def content_length(self, max_bytes: int) -> int:
        """The declared body size, refused unless it is one plain number from 1 to ``max_bytes``."""
        if "transfer-encoding" in self.headers:
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "chunked uploads are not supported: send a Content-Length")
        raw = self.headers.get("content-length")
        if raw is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "the upload needs a Content-Length header")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a number of bytes, not {raw[:40]!r}")
        n = int(raw)
        if n == 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the upload is empty: choose an image file")
        if n > max_bytes:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the upload is {n / 1e6:.1f} MB; this server takes files up to {max_bytes / 1e6:g} MB")
        return n


async def read_request(reader: asyncio.StreamReader, timeout: float) -> Request:
    """The request line and headers, which must arrive within ``timeout`` seconds in all."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.TimeoutError:
        raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the request headers took longer than {timeout:g} s") from None
    except asyncio.LimitOverrunError:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        f"the request headers are longer than {MAX_HEAD} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "the request ended inside its headers") from None
        raise ClientGone from None
    except ConnectionError:
        raise ClientGone from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, _ = parts
    if not (method.isascii() and method.isalpha() and method.isupper() and len(method) <= 16):
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request method")
    if not target.startswith("/") or not target.isprintable():
        raise HttpError(HTTPStatus.BAD_REQUEST, "the request target must be a path on this server")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not name.isprintable():
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
        name = name.lower()
        if name in headers and name in ("content-length", "transfer-encoding", "host", "expect"):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"more than one {name} header")
        headers[name] = value.strip()
    url = urlsplit(target)
    try:
        query = dict(parse_qsl(url.query, max_num_fields=16))
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "too many query parameters") from None
    return Request(method, target, unquote(url.path), query, headers)


async def read_body(reader: asyncio.StreamReader, n: int, limits: Limits) -> bytes:
    """Exactly ``n`` bytes, pausing at most ``idle_timeout`` and averaging at least ``min_rate``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.transfer_timeout(n)
    buf = bytearray()
    while len(buf) < n:
        left = deadline - loop.time()
        if left <= 0:
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the upload was too slow: {len(buf)} of {n} bytes in "
                                                        f"{limits.transfer_timeout(n):.0f} s")
        try:
            chunk = await asyncio.wait_for(reader.read(min(1 << 16, n - len(buf))), min(limits.idle_timeout, left))
        except asyncio.TimeoutError:
            if loop.time() >= deadline:
                continue
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the upload stalled after {len(buf)} of {n} bytes "
                                                        f"(nothing for {limits.idle_timeout:g} s)") from None
        except ConnectionError:
            raise ClientGone from None
        if not chunk:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the upload ended after {len(buf)} of the {n} bytes "
                                                    "its Content-Length announced")
        buf += chunk
    return bytes(buf)


def response_head(status: int, content_type: str, length: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}",
             f"Content-Length: {length}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in {**SECURITY_HEADERS, **(headers or {})}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str,
               headers: dict[str, str] | None, limits: Limits, head_only: bool = False) -> None:
    """One complete reply, which must leave as a body must arrive (see :func:`drain`)."""
    writer.write(response_head(status, content_type, len(body), headers))
    if not head_only:
        writer.write(body)
    await drain(writer, len(body), limits)


async def drain(writer: asyncio.StreamWriter, nbytes: int, limits: Limits) -> None:
    """Wait until what was written has left for the client, which may pause reading at most
    ``idle_timeout`` and must average ``min_rate`` (``nbytes`` sets the whole deadline): a
    client that stops reading is cut off, its unsent reply dropped, and :class:`ClientGone`
    raised, so that it frees its slot instead of holding it for as long as its size allows."""
    loop = asyncio.get_running_loop()
    transport = writer.transport
    deadline = loop.time() + limits.transfer_timeout(nbytes)
    pending = transport.get_write_buffer_size()
    while True:
        try:
            await asyncio.wait_for(writer.drain(), max(0.0, min(limits.idle_timeout, deadline - loop.time())))
            return
        except ConnectionError:
            raise ClientGone from None
        except asyncio.TimeoutError:
            left = transport.get_write_buffer_size()
            if loop.time() >= deadline:
                reason = f"the client read the reply too slowly ({left} bytes unsent after " \
                         f"{limits.transfer_timeout(nbytes):.0f} s)"
            elif left >= pending:
                reason = f"the client stopped reading the reply ({left} bytes unsent, nothing for " \
                         f"{limits.idle_timeout:g} s)"
            else:
                pending = left
                continue
        transport.abort()
        raise ClientGone(reason)


async def close(reader: asyncio.StreamReader | None, writer: asyncio.StreamWriter,
                drain: tuple[int, float] = (0, 0.0), flush_timeout: float = LINGER_SECONDS) -> None:
    """Close the connection; after an error reply, first read and drop up to ``drain`` =
    ``(bytes, seconds)`` of what the client still sends: closing on unread data resets the
    connection, and a client mid-upload would then see the reset instead of the reply. What is
    still unsent must leave within ``flush_timeout``, else the connection is cut off."""
    limit, seconds = drain
    try:
        if limit and reader is not None:
            if writer.can_write_eof():
                writer.write_eof()
            loop = asyncio.get_running_loop()
            end, dropped = loop.time() + seconds, 0
            while dropped < limit and loop.time() < end:
                chunk = await asyncio.wait_for(reader.read(1 << 16), end - loop.time())
                if not chunk:
                    break
                dropped += len(chunk)
    except (ConnectionError, asyncio.TimeoutError, OSError):
        pass
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), flush_timeout)
        except asyncio.TimeoutError:  # a client that does not read what is left
            writer.transport.abort()
        except (ConnectionError, OSError):
            pass
