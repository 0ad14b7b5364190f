"""The demo server under load and abuse: ``edgesr demo`` as a user starts it, on 127.0.0.1.

    python benchmarks/demo_load.py [--model ART.onnx] [--clients 16] [--requests 200] [--threads 2]

1. Load: ``--clients`` concurrent clients upload a real image (Set5 butterfly's 128x128
   MATLAB-bicubic LR, 256x256 out at x2) until ``--requests`` have succeeded. A 503 is the
   server's deliberate back-pressure: the client waits Retry-After and sends again. Anything
   else is an error. Reports successes, 503s, errors, p50/p95 latency of the successful
   requests, the server's peak resident memory (``VmHWM``) and thread count.
2. Big uploads, one at a time, and the server's peak memory: the largest the default limits
   accept (2000x2000 in, 4000x4000 out) through the bicubic reference (the photo pipeline's
   memory, which grows with the image), then 1000x1000 through the model (whose memory is
   bounded by its 512-pixel tiles).
3. Hostile requests, each followed by a good request that must succeed.
4. SIGTERM: how long the server takes to stop, and its exit code.

Without ``--model`` the shipped pytorch-vdsr teacher is exported to a temporary x2 ONNX file
(needs torch here; the server itself never imports it). Everything is bounded: sockets time out,
and the script stops by itself. Writes ``benchmarks/results/demo_load.{json,md}`` with the
machine's load average before and after, since the cores may be shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGESR_SHARED_DATA", ROOT.parent / "shared" / "data"))
HOST = "127.0.0.1"
SOCKET_TIMEOUT = 120.0
#: the whole load phase stops here whatever happens
LOAD_DEADLINE_S = 1800


# -- a raw HTTP client: hostile requests need exact bytes ------------------------------------

def exchange(port: int, raw: bytes, *, shut_write: bool = False, then: bytes = b"", pause: float = 0.0,
             timeout: float = SOCKET_TIMEOUT) -> tuple[int | None, str, dict, bytes, float]:
    """Send ``raw`` (then, after ``pause`` s, ``then``); ``(status, message, headers, body, seconds)``."""
    started = time.perf_counter()
    data = bytearray()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(raw)
            if pause:
                time.sleep(pause)
            if then:
                s.sendall(then)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(1 << 16):
                data += chunk
    except (TimeoutError, ConnectionError) as exc:
        if not data:
            return None, type(exc).__name__, {}, b"", time.perf_counter() - started
    seconds = time.perf_counter() - started
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        return None, "no HTTP reply", {}, b"", seconds
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    status = int(lines[0].split(" ")[1])
    message = "" if headers.get("content-type") == "image/png" else body.decode("utf-8", "replace").strip()
    return status, message, headers, body, seconds


def upload(port: int, body: bytes, query: str = "", length: int | str | None = None, extra: str = "") -> bytes:
    n = len(body) if length is None else length
    return f"POST /api/upscale{query} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {n}\r\n{extra}\r\n".encode() + body


# -- inputs ----------------------------------------------------------------------------------

def set5_lr(name: str = "butterfly", scale: int = 2) -> bytes:
    from edgesr.ops import imresize, modcrop

    gt = modcrop(np.asarray(Image.open(SHARED / "Set5" / "gt" / f"{name}.png").convert("RGB")), scale)
    lr = np.moveaxis(imresize(np.moveaxis(gt / 255.0, -1, 0), 1 / scale), 0, -1)
    return png(np.round(np.clip(lr, 0, 1) * 255).astype(np.uint8))


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def bomb(width: int, height: int) -> bytes:
    """A valid PNG of zeros declaring ``width x height`` gray pixels: ~140 kB for 12000x12000."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, block = zlib.compressobj(9), b"\x00" * (width + 1) * 100
    body = b"".join(z.compress(block) for _ in range(height // 100)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# -- the server ------------------------------------------------------------------------------

class Server:
    """``edgesr demo`` in a child process; its stderr (the access log) is collected."""

    def __init__(self, model: Path, threads: int, extra: list[str]) -> None:
        cmd = [sys.executable, "-m", "edgesr", "demo", "--model", str(model), "--port", "0",
               "--threads", str(threads), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.log: list[str] = []
        self.port = None
        deadline = time.monotonic() + 120
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"edgesr demo did not start: {self.proc.stderr.read()}")
            if m := re.search(r"edgesr demo: http://[^/]*:(\d+)/", line):
                self.port = int(m.group(1))
        threading.Thread(target=self._collect, daemon=True).start()
        self.rss_start_mb = self.status_kb("VmRSS") / 1024

    def _collect(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> tuple[int | None, float]:
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        return code, time.perf_counter() - started


class Sampler:
    """The server's resident memory and thread count, every 50 ms while a phase runs."""

    def __init__(self, server: Server) -> None:
        self.server, self.rss_mb, self.threads = server, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05) and self.server.alive():
            try:
                self.rss_mb.append(self.server.status_kb("VmRSS") / 1024)
                self.threads.append(self.server.status_kb("Threads"))
            except (OSError, KeyError):
                return

    def done(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_rss_mb": round(max(self.rss_mb), 1), "threads_max": max(self.threads),
                "threads_min": min(self.threads)}


# -- phases ----------------------------------------------------------------------------------

def load(server: Server, image: bytes, clients: int, requests: int) -> dict:
    lock = threading.Lock()
    latencies: list[float] = []
    end_to_end: list[float] = []
    counts = {"ok": 0, "busy_503": 0, "errors": 0}
    errors: list[str] = []
    started = time.perf_counter()
    stop_at = time.monotonic() + LOAD_DEADLINE_S

    def client() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if counts["ok"] + counts["errors"] + in_flight[0] >= requests:
                    return
                in_flight[0] += 1
            first = time.perf_counter()
            try:
                while time.monotonic() < stop_at:
                    status, message, headers, body, seconds = exchange(server.port, upload(server.port, image))
                    if status == 503:
                        with lock:
                            counts["busy_503"] += 1
                        time.sleep(float(headers.get("retry-after", "1")))
                        continue
                    with lock:
                        if status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n":
                            counts["ok"] += 1
                            latencies.append(seconds)
                            end_to_end.append(time.perf_counter() - first)
                            if counts["ok"] % 20 == 0:
                                print(f"  {counts['ok']}/{requests} ok, {counts['busy_503']} x 503", flush=True)
                        else:
                            counts["errors"] += 1
                            errors.append(f"{status}: {message[:120]}")
                    break
            finally:
                with lock:
                    in_flight[0] -= 1

    in_flight = [0]
    sampler = Sampler(server)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [float("nan")] * 99
    qe = statistics.quantiles(end_to_end, n=100, method="inclusive") if len(end_to_end) > 1 else [float("nan")] * 99
    return {"clients": clients, "requests": requests, **counts, "error_samples": errors[:10],
            "wall_s": round(wall, 1), "throughput_per_s": round(counts["ok"] / wall, 2),
            "latency_p50_s": round(q[49], 2), "latency_p95_s": round(q[94], 2),
            "with_retries_p50_s": round(qe[49], 2), "with_retries_p95_s": round(qe[94], 2),
            **sampler.done(), "vmhwm_mb": round(server.status_kb("VmHWM") / 1024, 1)}


def smooth_png(side: int) -> bytes:
    """A photo-like RGB PNG (smooth colour waves plus a little noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(9 * xx + k) * np.cos(7 * yy - k) for k in range(3)], -1)
    return png(np.clip((0.5 + 0.4 * base + 0.05 * rng.random((side, side, 3))) * 255, 0, 255).astype(np.uint8))


def largest(server: Server, side: int, query: str) -> dict:
    """One ``side x side`` upload; the server's peak memory meanwhile."""
    data = smooth_png(side)
    sampler = Sampler(server)
    status, message, headers, body, seconds = exchange(server.port, upload(server.port, data, query))
    return {"input": f"{side}x{side}", "query": query, "upload_mb": round(len(data) / 1e6, 2), "status": status,
            "reply_mb": round(len(body) / 1e6, 2), "seconds": round(seconds, 1),
            "server_timing": headers.get("server-timing", message), **sampler.done(),
            "vmhwm_mb": round(server.status_kb("VmHWM") / 1024, 1)}


def hostile(server: Server, image: bytes) -> list[dict]:
    port = server.port
    rows = []

    def good() -> tuple[int | None, float]:
        status, _, _, _, seconds = exchange(port, upload(port, image))
        return status, seconds

    def row(name: str, result: tuple, note: str = "") -> None:
        status, message, _, _, seconds = result
        after, after_s = good()
        rows.append({"case": name, "status": status, "message": message, "seconds": round(seconds, 2),
                     "next_good_status": after, "next_good_s": round(after_s, 2), "note": note,
                     "server_alive": server.alive()})
        print(f"  {name}: {status} {message[:70]!r} in {seconds:.2f} s; next good request {after}", flush=True)

    row("not an image", exchange(port, upload(port, b"hello, this is not an image")))
    row("empty body", exchange(port, upload(port, b"")))
    row("truncated PNG", exchange(port, upload(port, image[: len(image) // 3])))
    b = bomb(12000, 12000)
    row(f"decompression bomb ({len(b) // 1000} kB PNG declaring 12000x12000)", exchange(port, upload(port, b)))
    row("Content-Length 1 MB, 1 kB sent, client waits", exchange(port, upload(port, b"x" * 1000, length=1_000_000)))
    row("Content-Length 1 MB, 1 kB sent, client half-closes",
        exchange(port, upload(port, b"x" * 1000, length=1_000_000), shut_write=True))
    row("Content-Length 10 GB", exchange(port, upload(port, b"x" * 1000, length=10_000_000_000)))
    row("Content-Length not a number", exchange(port, upload(port, b"x" * 10, length="12abc")))
    row("chunked upload", exchange(port, b"POST /api/upscale HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         b"5\r\nhello\r\n0\r\n\r\n"))

    # a stalled client: half its headers, then nothing; a good request is served meanwhile
    box: dict = {}
    stalled = threading.Thread(target=lambda: box.update(r=exchange(port, b"POST /api/upscale HTTP/1.1\r\nConte")))
    stalled.start()
    time.sleep(0.5)
    during = good()
    stalled.join()
    row("stalled client (half the headers, then silence)", box["r"],
        f"a good request sent while it was stalled: {during[0]} in {during[1]:.2f} s")
    # a slow client: the body trickles at 1 byte every 0.5 s (never idle 10 s, far below min_rate)
    slow = upload(port, b"", length=5000)
    trickle: dict = {}

    def drip() -> None:
        """One byte every 0.5 s until the server answers (read as soon as it does: a reset
        after its reply would otherwise discard the reply from the receive buffer)."""
        started = time.perf_counter()
        data = b""
        with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as s:
            s.sendall(slow)
            try:
                for _ in range(200):
                    if select.select([s], [], [], 0.5)[0]:
                        while chunk := s.recv(4096):
                            data += chunk
                        break
                    s.sendall(b"x")
            except OSError:
                pass
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1") else None
        trickle["r"] = (status, body.decode().strip(), {}, body, time.perf_counter() - started)

    dripper = threading.Thread(target=drip)
    dripper.start()
    dripper.join()
    row("slow client (body at 2 bytes/s)", trickle["r"])

    # many slow clients at once: more sockets than the connection cap, all silent
    held = []
    for _ in range(100):
        s = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
        held.append(s)
    time.sleep(0.5)
    threads_held = server.status_kb("Threads")
    refused = exchange(port, b"GET / HTTP/1.1\r\n\r\n")
    statuses = []
    for s in held:
        try:
            statuses.append(re.match(rb"HTTP/1.1 (\d+)", s.recv(4096) or b"").group(1).decode())
        except (OSError, AttributeError):
            statuses.append("closed")
        s.close()
    counts = {k: statuses.count(k) for k in sorted(set(statuses))}
    row("100 silent connections at once", refused,
        f"server threads while held: {threads_held}; what the 100 got: {counts}")

    row("path traversal /../../etc/passwd", exchange(port, b"GET /../../etc/passwd HTTP/1.1\r\n\r\n"))
    row("path traversal, encoded", exchange(port, b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n"))
    row("unknown model id ../../etc/passwd", exchange(port, upload(port, image, "?model=../../etc/passwd")))
    row("method DELETE /", exchange(port, b"DELETE / HTTP/1.1\r\n\r\n"))
    row("method TRACE /", exchange(port, b"TRACE / HTTP/1.1\r\n\r\n"))
    row("method BREW / (unknown)", exchange(port, b"BREW / HTTP/1.1\r\n\r\n"))
    row("GET /api/upscale", exchange(port, b"GET /api/upscale HTTP/1.1\r\n\r\n"))
    row("20 kB of headers", exchange(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"))
    row("garbage request line", exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"))
    one = png(np.full((1, 1, 3), 200, np.uint8))
    row("1x1 image (valid: answered 200)", exchange(port, upload(port, one)))
    # disconnects: mid-upload, and before the reply with a reset
    with socket.create_connection((HOST, port)) as s:
        s.sendall(upload(port, image)[: len(image) // 2])
    with socket.create_connection((HOST, port)) as s:
        s.sendall(upload(port, image))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(3)
    row("client gone mid-upload, another reset before its reply", (None, "(no reply expected)", {}, b"", 0.0),
        "see the log check: one line each, no traceback")
    return rows


def markdown(result: dict) -> str:
    ld, big, machine = result["load"], result["big"], result["machine"]
    lines = [
        "# edgesr demo under load and abuse",
        "",
        f"`{result['command']}`; server: `{result['server_command']}`",
        f"Model: {result['model']}; image: {result['image']}. Machine: {machine['cpus']} CPUs, load average "
        f"{machine['load_before']} before, {machine['load_after_load_phase']} after the load phase.",
        "",
        "## Load",
        "",
        "| clients | requests | 200 | 503 (retried) | other errors | p50 s | p95 s | p50 / p95 s with retries "
        "| throughput /s | peak RSS MB (start) | threads |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {ld['clients']} | {ld['requests']} | {ld['ok']} | {ld['busy_503']} | {ld['errors']} | "
        f"{ld['latency_p50_s']} | {ld['latency_p95_s']} | {ld['with_retries_p50_s']} / {ld['with_retries_p95_s']} | "
        f"{ld['throughput_per_s']} | {ld['vmhwm_mb']} ({result['rss_start_mb']}) | "
        f"{ld['threads_min']}-{ld['threads_max']} |",
        "",
        "Big uploads, one at a time (the first is the largest the default limits accept; the photo "
        "pipeline's memory grows with it, the model's is bounded by its 512-pixel tiles):",
        "",
        "| input | through | upload MB | status | s | reply MB | server peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        *[f"| {b['input']} | {'bicubic' if 'bicubic' in b['query'] else 'the model'} | {b['upload_mb']} | "
          f"{b['status']} | {b['seconds']} | {b['reply_mb']} | {b['peak_rss_mb']} |" for b in big],
        "",
        "## Hostile requests (each followed by a good request)",
        "",
        "| case | status | message | s | next good request | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["hostile"]:
        msg = r["message"].replace("|", "\\|")[:110]
        lines.append(f"| {r['case']} | {r['status']} | {msg} | {r['seconds']} | {r['next_good_status']} "
                     f"({r['next_good_s']} s) | {r['note']} |")
    log = result["log"]
    lines += ["", f"Server log: {log['lines']} lines, {log['tracebacks']} tracebacks, "
                  f"{log['client_gone']} 'client went away'. SIGTERM: exit {result['sigterm']['exit_code']} "
                  f"in {result['sigterm']['seconds']} s.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="an edgesr artifact (default: the shipped teacher exported to ONNX, x2)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads of the server")
    ap.add_argument("--out", default=str(RESULTS / "demo_load"), help="results path without suffix")
    args = ap.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    image = set5_lr()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else Path(tmp) / "pytorch-vdsr_x2.onnx"
        if not args.model:
            from edgesr.export.pipeline import ExportRequest, export_model

            print("exporting the shipped teacher (pytorch-vdsr, x2) to ONNX", flush=True)
            export_model(ExportRequest("pytorch-vdsr", "onnx", 2, out=model))
        server = Server(model, args.threads, [])
        print(f"server on {HOST}:{server.port}, pid {server.proc.pid}; load: {args.clients} clients, "
              f"{args.requests} requests", flush=True)
        ld = load(server, image, args.clients, args.requests)
        load_after = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(ld), flush=True)
        print("largest accepted upload, through bicubic; then 1 MP through the model", flush=True)
        big = [largest(server, 2000, "?model=bicubic"), largest(server, 1000, "")]
        print(json.dumps(big), flush=True)
        print("hostile requests", flush=True)
        rows = hostile(server, image)
        code, seconds = server.stop()
        time.sleep(0.2)
    log = server.log
    result = {
        "command": "python benchmarks/demo_load.py " + " ".join(sys.argv[1:]),
        "server_command": f"edgesr demo --model {model.name} --port 0 --threads {args.threads} "
                          "(defaults: --workers 1 --queue 8, 64 connections, 16 MB, 4 MP in, 16 MP out)",
        "model": model.name, "image": f"Set5 butterfly, MATLAB-bicubic x2 LR, 128x128 RGB PNG ({len(image)} bytes), "
                                      "256x256 out",
        "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after_load_phase": load_after,
                    "load_end": [round(x, 2) for x in os.getloadavg()]},
        "rss_start_mb": round(server.rss_start_mb, 1),
        "load": ld, "big": big, "hostile": rows,
        "log": {"lines": len(log), "tracebacks": sum("Traceback" in line for line in log),
                "client_gone": sum("client went away" in line for line in log),
                "warnings": [line for line in log if "Warning" in line][:5]},
        "sigterm": {"exit_code": code, "seconds": round(seconds, 2)},
    }
    from edgesr.io import write_json, write_text

    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    bad = [r["case"] for r in rows if r["next_good_status"] != 200 or not r["server_alive"]]
    if ld["errors"] or bad or result["log"]["tracebacks"]:
        raise SystemExit(f"FAILED: {ld['errors']} load errors, good request failed after {bad}, "
                         f"{result['log']['tracebacks']} tracebacks")


if __name__ == "__main__":
    main()
