"""The demo server over real sockets: the page and its API, every limit, hostile and broken
clients (each followed by a good request that must succeed), and ``edgesr demo`` as a device
runs it (torch unimportable): the host warning, disconnects, SIGTERM leaving nothing behind."""

from __future__ import annotations

import io
import json
import signal
import socket
import struct
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edgesr.demo import server as demo_server
from edgesr.demo.catalog import build_catalog
from edgesr.demo.limits import Limits
from edgesr.demo.server import DemoServer
from edgesr.demo.work import upscale_upload
from edgesr.runtime import open_upscaler
from edgesr.runtime.photo import read_photo, upscale_photo
from tests.artifacts import bicubic_artifact
from tests.cli_helpers import assert_user_error, run_cli
from tests.demo_helpers import bomb_png, demo_process, get, png_bytes, post, read_reply, request, server_thread

# the header check refuses bombs before Pillow's own warning matters
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

#: short waits so that slow-client cases take about a second each
FAST = dict(head_timeout=1.5, idle_timeout=1.0, queue=2, connections=16)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return bicubic_artifact(tmp_path_factory.mktemp("art") / "tiny.onnx")


@pytest.fixture(scope="module")
def catalog(model_path):
    return build_catalog([open_upscaler(model_path, threads=1)])


@pytest.fixture(scope="module")
def demo(catalog):
    log: list[str] = []
    with server_thread(DemoServer(catalog, Limits(**FAST), log=log.append)) as running:
        running.log = log
        yield running
    assert not [line for line in log if "Traceback" in line], log


def assert_alive(port: int) -> None:
    reply = post(port, png_bytes(12, 10))
    assert reply.status == 200, reply.text
    assert Image.open(io.BytesIO(reply.body)).size == (20, 24)


def test_page_info_and_security_headers(demo, model_path):
    page = get(demo.port, "/")
    assert page.status == 200 and b'<input type="file" id="file" accept="image/*">' in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in ("/app.js", "/app.css", "/favicon.svg", "/index.html"):
        assert get(demo.port, path).status == 200, path
    head = get(demo.port, "/app.js", "HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 1000
    info = json.loads(get(demo.port, "/api/info").body)
    (m,) = info["models"]
    assert (m["id"], m["file"], m["scale"], m["scales"], m["precision"], m["runtime"], m["input"]) == (
        "tiny", "tiny.onnx", 2, [2], "fp32", "onnxruntime", "bicubic")
    assert info["reference"]["id"] == "bicubic" and info["reference"]["scales"] == [2, 3, 4]
    assert info["limits"] == {"max_upload": 16_000_000, "max_pixels": 4_000_000, "max_output_pixels": 16_000_000}
    everything = b"".join(get(demo.port, p).body for p in ("/", "/app.js", "/api/info", "/nope"))
    assert str(model_path.parent).encode() not in everything and b"/tmp" not in everything


def test_upscale_is_the_upscale_command_pipeline(demo, catalog):
    data = png_bytes(17, 23, seed=3, fmt="JPEG")
    reply = post(demo.port, data, "?model=tiny&scale=2")
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    assert reply.headers["x-edgesr-input"] == "23x17" and reply.headers["x-edgesr-output"] == "46x34"
    stages = [part.split(";")[0] for part in reply.headers["server-timing"].split(", ")]
    assert stages == ["queue", "decode", "model", "encode"]
    expected = upscale_photo(catalog.models[0].upscaler, read_photo(data), 2).pixels
    assert np.array_equal(read_photo(reply.body).pixels, expected)
    bicubic = post(demo.port, data, "?model=bicubic&scale=3")
    assert bicubic.status == 200 and Image.open(io.BytesIO(bicubic.body)).size == (69, 51)


def test_one_pixel_and_gray_images(demo):
    one = post(demo.port, png_bytes(1, 1))
    assert one.status == 200 and Image.open(io.BytesIO(one.body)).size == (2, 2)
    gray = post(demo.port, png_bytes(5, 4, c=1))
    assert gray.status == 200 and Image.open(io.BytesIO(gray.body)).mode == "L"


def _truncated() -> bytes:
    return png_bytes(64, 64)[:300]


@pytest.mark.parametrize("name, send, status, fragment", [
    ("not an image", lambda p: post(p, b"hello, not an image"), 400, "not a PNG, JPEG"),
    ("empty", lambda p: post(p, b""), 400, "the upload is empty"),
    ("truncated", lambda p: post(p, _truncated()), 400, "cannot read the image"),
    ("bomb", lambda p: post(p, bomb_png(12000, 12000)), 413, "12000x12000 (144.0 MP), more than the 4.0 MP"),
    ("bomb over Pillow's guard", lambda p: post(p, bomb_png(15000, 15000)), 413, "more than the 179 MP Pillow"),
    ("output too large", lambda p: post(p, bomb_png(1500, 1500), "?model=bicubic&scale=4"), 413,
     "the x4 result would be 6000x6000 (36.0 MP)"),
    ("non-numeric length", lambda p: post(p, b"abc", length="abc"), 400, "Content-Length must be a number"),
    ("negative length", lambda p: post(p, b"abc", length="-3"), 400, "Content-Length must be a number"),
    ("10 GB length", lambda p: post(p, b"x" * 1000, length=10_000_000_000), 413, "up to 16 MB"),
    ("two lengths", lambda p: post(p, b"abc", extra="Content-Length: 3\r\n"), 400, "more than one content-length"),
    ("chunked", lambda p: request(p, b"POST /api/upscale HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"3\r\nabc\r\n0\r\n\r\n"), 501, "chunked uploads are not supported"),
    ("no length", lambda p: request(p, b"POST /api/upscale HTTP/1.1\r\n\r\n"), 411, "Content-Length header"),
    ("unknown model", lambda p: post(p, b"abc", "?model=../../etc/passwd"), 404, "no model '../../etc/passwd'"),
    ("bad scale", lambda p: post(p, b"abc", "?scale=7"), 400, "scale '7' is not available for tiny: choose 2"),
    ("scale of 5000 digits", lambda p: post(p, b"abc", "?scale=" + "9" * 5000), 400,
     "scale '99999999' is not available for tiny: choose 2"),
    ("path traversal", lambda p: get(p, "/../../../etc/passwd"), 404, "nothing at"),
    ("encoded traversal", lambda p: get(p, "/static/%2e%2e/%2e%2e/server.py"), 404, "nothing at"),
    ("unknown method", lambda p: get(p, "/", "BREW"), 501, "method BREW is not supported"),
    ("wrong method", lambda p: get(p, "/", "DELETE"), 405, "takes GET, HEAD only"),
    ("GET the API", lambda p: get(p, "/api/upscale"), 405, "takes POST only"),
    ("huge headers", lambda p: request(p, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"), 431,
     "headers are longer"),
    ("bad request line", lambda p: request(p, b"HELLO\r\n\r\n"), 400, "malformed request line"),
    ("absolute target", lambda p: request(p, b"GET http://evil/ HTTP/1.1\r\n\r\n"), 400, "must be a path"),
])
def test_bad_requests_get_a_status_and_a_message(demo, name, send, status, fragment):
    reply = send(demo.port)
    assert reply.status == status, (name, reply.status, reply.text)
    assert fragment in reply.text and reply.text.count("\n") == 1, reply.text
    assert "Traceback" not in reply.text and "/tmp" not in reply.text
    assert_alive(demo.port)


def test_bomb_is_refused_without_decoding(demo):
    started = time.perf_counter()
    assert post(demo.port, bomb_png(12000, 12000)).status == 413
    assert time.perf_counter() - started < 2.0  # decoding 144 MP would take far longer


def test_expect_100_continue(demo):
    data = png_bytes(6, 6)
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as s:
        s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(data)
        assert read_reply(s).status == 200


@pytest.mark.parametrize("case", ["stalled headers", "stalled body", "trickled body", "short body, half-closed"])
def test_slow_and_stalled_clients_time_out_and_hold_nothing(demo, case):
    data = png_bytes(16, 16)
    with socket.create_connection(("127.0.0.1", demo.port), timeout=20) as s:
        started = time.monotonic()
        if case == "stalled headers":
            s.sendall(b"POST /api/upscale HTTP/1.1\r\nContent-Le")
        else:
            s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data) + 1000}\r\n\r\n".encode() + data)
        if case == "short body, half-closed":
            s.shutdown(socket.SHUT_WR)
        assert_alive(demo.port)  # meanwhile, others are served
        if case == "trickled body":
            for _ in range(12):  # one byte every 0.2 s: never idle for a second, but far below min_rate
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                time.sleep(0.2)
        reply = read_reply(s)
        elapsed = time.monotonic() - started
    expected = {"stalled headers": (408, "headers took longer than 1.5 s"),
                "stalled body": (408, "the upload stalled after"),
                "trickled body": (408, "the upload was too slow"),
                "short body, half-closed": (400, "the upload ended after")}[case]
    assert (reply.status, expected[1] in reply.text) == (expected[0], True), reply.text
    assert elapsed < 5
    assert_alive(demo.port)


def test_client_disconnects_are_one_log_line(demo, monkeypatch):
    before = len(demo.log)
    data = png_bytes(40, 40)
    # the upscale waits until the second client has reset its connection: without this, a job
    # that takes a millisecond could be answered before the reset arrives (a 200, rightly logged)
    reset = threading.Event()
    monkeypatch.setattr(demo_server, "upscale_upload", lambda *args: reset.wait(10) and upscale_upload(*args))
    with socket.create_connection(("127.0.0.1", demo.port)) as s:  # gone halfway through the upload
        s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:100])
    with socket.create_connection(("127.0.0.1", demo.port)) as s:  # gone before the reply, with a reset
        s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.set()
    with socket.create_connection(("127.0.0.1", demo.port)) as s:  # gone before sending anything
        pass
    assert_alive(demo.port)

    def gone() -> list[str]:
        return [line for line in demo.log[before:] if "client went away" in line or "upload ended" in line]

    deadline = time.monotonic() + 10
    while len(gone()) < 3 and time.monotonic() < deadline:  # lines are written after closing
        time.sleep(0.05)
    assert len(gone()) == 3, demo.log[before:]
    assert all("\n" not in line and "Traceback" not in line for line in demo.log[before:]), demo.log[before:]


def test_busy_server_answers_503_with_retry_after(catalog, monkeypatch):
    import edgesr.demo.server as server_module

    release, started = threading.Event(), threading.Event()
    real = server_module.upscale_upload

    def slow(*args):
        started.set()
        release.wait(30)
        return real(*args)

    server = DemoServer(catalog, Limits(workers=1, queue=0))
    monkeypatch.setattr(server_module, "upscale_upload", slow)
    with server_thread(server) as running:
        first: dict = {}
        thread = threading.Thread(target=lambda: first.update(reply=post(running.port, png_bytes(8, 8))))
        thread.start()
        assert started.wait(10)
        busy = post(running.port, png_bytes(8, 8))
        assert busy.status == 503 and "busy" in busy.text and 1 <= int(busy.headers["retry-after"]) <= 60
        # a large upload answered before its body is read still gets to read the reply
        big = post(running.port, np.random.default_rng(0).bytes(6_000_000))
        assert big.status == 503 and "busy" in big.text
        assert get(running.port, "/api/info").status == 200  # the page itself is never queued
        release.set()
        thread.join(30)
        assert first["reply"].status == 200
        assert post(running.port, png_bytes(8, 8)).status == 200


def test_clients_that_never_read_their_reply_lose_their_slot(catalog, monkeypatch):
    """Nine clients fill every ticket (1 worker + 8 queued) with uploads whose 5 MB replies they
    never read (more than the socket buffers hold): each stalled reply is cut off after
    ``idle_timeout`` without progress, not after the ~100 s its size would allow on average, so
    a tenth client is served well within the 10 s the README promises; each cut-off is one log
    line. (Their jobs return a ready reply, so that only the stalls are timed.)"""
    import edgesr.demo.server as server_module
    from edgesr.demo.work import Upscaled

    silent_upload = b"never reads" * 10
    big = Upscaled(np.random.default_rng(0).bytes(5_000_000), (1, 1), (2, 2), {})
    real = server_module.upscale_upload
    monkeypatch.setattr(server_module, "upscale_upload",
                        lambda up, data, *args: big if data == silent_upload else real(up, data, *args))
    limits = Limits(workers=1, queue=8, idle_timeout=1.0, head_timeout=1.5)
    log: list[str] = []
    head = f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(silent_upload)}\r\n\r\n".encode()
    with server_thread(DemoServer(catalog, limits, log=log.append)) as running:
        silent = []
        for _ in range(limits.tickets):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", running.port))
            s.sendall(head + silent_upload)
            silent.append(s)
        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < 30:
            reply = post(running.port, png_bytes(8, 8))
            statuses.append(reply.status)
            if reply.status == 200:
                break
            assert reply.status == 503 and "busy" in reply.text, reply.text
            time.sleep(0.2)
        waited = time.monotonic() - started
        print(f"tenth client served after {waited:.2f} s ({len(statuses) - 1} answers 503 before)")
        assert statuses[-1] == 200 and waited < 10, (waited, statuses)
        assert 503 in statuses  # the nine did hold every ticket for a while
        deadline = time.monotonic() + 10
        while sum("stopped reading" in line for line in log) < limits.tickets and time.monotonic() < deadline:
            time.sleep(0.1)
        for s in silent:
            s.close()
    stalled = [line for line in log if "the client stopped reading the reply" in line]
    assert len(stalled) == limits.tickets, log
    assert not [line for line in log if "Traceback" in line], log


@pytest.mark.parametrize("job_seconds, status", [(0.3, 200), (None, 503)])
def test_stop_gives_a_running_inference_its_grace_then_cancels_it(catalog, monkeypatch, job_seconds, status):
    """DemoServer.stop(): a job that ends within stop_grace is answered 200; one that does not
    is cancelled (the upscaler's cancel reaches it) and answered 503, and the workers end."""
    import asyncio

    import edgesr.demo.server as server_module
    from edgesr.errors import EdgesrError

    started, real = threading.Event(), server_module.upscale_upload

    def slow(upscaler, *args):
        started.set()
        end = time.monotonic() + (job_seconds if job_seconds is not None else 30)
        while time.monotonic() < end:
            if upscaler.cancelled:
                raise EdgesrError("stopped")
            time.sleep(0.02)
        return real(upscaler, *args)

    monkeypatch.setattr(server_module, "upscale_upload", slow)
    model = build_catalog([open_upscaler(catalog.models[0].upscaler.path, threads=1)])
    server = DemoServer(model, Limits(stop_grace=1.0))
    with server_thread(server) as running:
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(reply=post(running.port, png_bytes(8, 8))))
        thread.start()
        assert started.wait(10)
        t0 = time.monotonic()
        asyncio.run_coroutine_threadsafe(server.stop(), running.loop).result(10)
        took = time.monotonic() - t0
        thread.join(10)
    assert box["reply"].status == status, box["reply"].text
    assert took < (0.5 if status == 200 else 2.0), took
    assert model.models[0].upscaler.cancelled and server.close(1.0)


def test_connection_cap(catalog):
    with server_thread(DemoServer(catalog, Limits(connections=2, head_timeout=1.0))) as running:
        idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(2)]
        time.sleep(0.2)
        refused = get(running.port, "/")
        assert refused.status == 503 and "too many open connections" in refused.text
        for s in idle:
            s.close()
        time.sleep(0.2)
        assert get(running.port, "/").status == 200


def test_several_models_get_unique_ids(model_path):
    up = open_upscaler(model_path, threads=1)
    catalog = build_catalog([up, up])
    with server_thread(DemoServer(catalog)) as running:
        info = json.loads(get(running.port, "/api/info").body)
        assert [m["id"] for m in info["models"]] == ["tiny", "tiny-2"]
        assert post(running.port, png_bytes(6, 5), "?model=tiny-2").status == 200


def test_limits_are_validated():
    from edgesr.errors import EdgesrError

    with pytest.raises(EdgesrError, match="workers must be positive"):
        Limits(workers=0)
    assert Limits(queue=0).tickets == 1


def test_cli_on_a_device_warns_survives_disconnects_and_stops_clean(tmp_path, model_path):
    """``edgesr demo`` with torch unimportable, on all interfaces; SIGTERM ends it at once with
    exit 0, no traceback, and nothing left in its temp folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = ("--model", str(model_path), "--host", "0.0.0.0", "--port", "0", "--threads", "1")
    with demo_process(*args, env={"TMPDIR": str(tmp)}) as (proc, port, out):
        assert any("tiny: tiny.onnx (onnxruntime, fp32, bicubic input, x2)" in line for line in out), out
        data = png_bytes(30, 20)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        assert post(port, data).status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err = proc.stderr.read()
    assert "warning: listening on 0.0.0.0" in err and "no login" in err
    assert "Traceback" not in err and "Error" not in err, err
    # onnxruntime itself drops a session marker, ".ses", in $TMPDIR on import (any process that
    # imports it, edgesr upscale too); the demo writes nothing there
    assert [p.name for p in tmp.iterdir() if p.name != ".ses"] == []


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """A wider VDSR: a 1200x1200 upload at x2 takes it a few seconds on one thread."""
    from tests.artifacts import tiny_vdsr

    return bicubic_artifact(tmp_path_factory.mktemp("slow") / "slow.onnx", tiny_vdsr(width=32, depth=8))


def _upload(port: int, data: bytes, cut: int | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(f"POST /api/upscale HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:cut])
    return s


@pytest.mark.parametrize("attempt", range(4))
def test_sigterm_during_an_inference_stops_within_seconds(slow_model, attempt):
    """SIGTERM while an inference runs, two uploads wait, one is half sent and one connection is
    idle: exit 0 within 5 s, nothing on stderr but one log line per connection, and every
    connection answered (the running one: 200 if it finished within the grace, else 503) or closed.
    Before the fix: an abort in onnxruntime (rc -6) and a CancelledError traceback per connection."""
    args = ("--model", str(slow_model), "--port", "0", "--threads", "1")
    with demo_process(*args) as (proc, port, _):
        running = _upload(port, png_bytes(1200, 1200, seed=attempt))
        time.sleep(0.5)  # decoded and at the worker
        waiting = [_upload(port, png_bytes(64, 64)) for _ in range(2)]
        half = _upload(port, png_bytes(64, 64), cut=100)
        idle = socket.create_connection(("127.0.0.1", port), timeout=20)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        took = time.monotonic() - started
        err = proc.stderr.read()
        replies = [_reply_or_none(s) for s in (running, *waiting, half)]
        closed = idle.recv(100) == b""
        for s in (running, *waiting, half, idle):
            s.close()
    print(f"SIGTERM attempt {attempt}: exit {code} in {took:.2f} s")
    assert code == 0 and took < 5, (code, took, err)
    assert "Traceback" not in err and "Error" not in err and "terminate" not in err, err
    assert len(err.splitlines()) == 5, err  # one log line per connection
    assert replies[0] is not None and replies[0].status in (200, 503), replies[0]
    for reply in replies[1:]:
        assert reply is not None and reply.status == 503 and "the server is stopping" in reply.text, reply
    assert closed


def _reply_or_none(s: socket.socket):
    try:
        return read_reply(s)
    except OSError:
        return None


def test_cli_errors_are_one_line(tmp_path, model_path):
    assert_user_error(run_cli("demo", "--model", str(tmp_path / "missing.onnx"), block_torch=True),
                      "model not found")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = run_cli("demo", "--model", str(model_path), "--port", str(taken.getsockname()[1]), block_torch=True)
    assert_user_error(r, "cannot listen on 127.0.0.1")
