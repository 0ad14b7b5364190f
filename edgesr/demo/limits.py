"""Everything that bounds the demo server's work, memory and waiting, in one place.

The server is meant for a small device that anyone on the network may reach, so each
resource has a limit and each limit has a reason:

- inference: ``workers`` at a time (one already uses every core it is given), and at most
  ``queue`` more uploads admitted (reading, waiting or being answered); beyond that a 503
  with Retry-After, so threads and memory never pile up;
- memory: an admitted request holds at most ``max_upload`` bytes of upload and one reply,
  and decoding is refused above ``max_pixels`` (read from the file's header, before a pixel
  is decoded) or when the result would exceed ``max_output_pixels``;
- time: headers must arrive within ``head_timeout``; a body or reply may pause at most
  ``idle_timeout`` and must average ``min_rate`` bytes/s, so a stalled or trickling client
  cannot hold a slot; ``connections`` caps open sockets; on SIGTERM a running inference has
  ``stop_grace`` to finish, then it is cancelled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from ..errors import EdgesrError

MB = 1_000_000
MP = 1_000_000
#: the ports a server can listen on (0: any free one)
PORTS = (0, 65535)
#: the largest upload a flag may allow: 1 GB (a 16-bit 178 MP TIFF, uncompressed, is about that)
MAX_UPLOAD_MB = 1000.0
#: Pillow refuses to decode more than twice its ``MAX_IMAGE_PIXELS`` (89,478,485): about 179 MP
MAX_INPUT_MP = 2 * 89_478_485 / MP
#: the largest result a flag may allow: 1 gigapixel, 3 GB as 8-bit RGB before it is encoded
MAX_OUTPUT_MP = 1000.0


@dataclass(frozen=True)
class Limits:
    workers: int = 1
    queue: int = 8
    connections: int = 64
    max_upload: int = 16 * MB
    max_pixels: int = 4 * MP
    max_output_pixels: int = 16 * MP
    head_timeout: float = 10.0
    idle_timeout: float = 10.0
    min_rate: int = 50_000
    #: seconds a running inference gets to finish and be answered once SIGTERM came
    stop_grace: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0 or (value == 0 and f.name != "queue"):
                raise EdgesrError(f"demo limit {f.name} must be positive, got {value}")

    @property
    def tickets(self) -> int:
        """Uploads admitted at once: running plus waiting."""
        return self.workers + self.queue

    def transfer_timeout(self, nbytes: int) -> float:
        """The longest a body of ``nbytes`` may take to arrive, or a reply to leave."""
        return self.idle_timeout + nbytes / self.min_rate


def _in_range(flag: str, value: float, low: float, high: float, why: str, above: bool = False) -> None:
    """``value`` finite and in ``[low, high]`` (``(low, high]`` when ``above``), else one line naming the flag."""
    if not (math.isfinite(value) and (value > low if above else value >= low) and value <= high):
        lowest = f"more than {low:g}" if above else f"from {low:g}"
        raise EdgesrError(f"{flag} must be {lowest} to {high:g} ({why}), got {value!r}")


def check_port(port: int) -> None:
    _in_range("--port", port, *PORTS, "0 picks a free port")


def limits_from_flags(workers: int, queue: int, max_upload_mb: float, max_mp: float, max_output_mp: float
                      ) -> Limits:
    """The limits ``edgesr demo``'s flags ask for (MB, MP), each checked first: finite and
    within what the machine and the server can use, so a mistyped flag is one line, not a
    crash of the server later."""
    cores = os.cpu_count() or 1
    _in_range("--workers", workers, 1, cores, f"this machine has {cores} cores; each inference uses its own")
    default = Limits()
    _in_range("--queue", queue, 0, default.connections, f"admitted uploads are open connections, at most "
              f"{default.connections}")
    _in_range("--max-upload-mb", max_upload_mb, 0, MAX_UPLOAD_MB, "each admitted upload is held in memory",
              above=True)
    _in_range("--max-mp", max_mp, 0, math.floor(MAX_INPUT_MP * 10) / 10, "Pillow decodes no more", above=True)
    _in_range("--max-output-mp", max_output_mp, 0, MAX_OUTPUT_MP, "each result is made in memory", above=True)
    return Limits(workers=workers, queue=queue, max_upload=max(1, round(max_upload_mb * MB)),
                  max_pixels=max(1, round(max_mp * MP)), max_output_pixels=max(1, round(max_output_mp * MP)))
