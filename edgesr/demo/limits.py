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

from dataclasses import dataclass, fields

from ..errors import EdgesrError

MB = 1_000_000
MP = 1_000_000


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
            if value < 0 or (value == 0 and f.name != "queue"):
                raise EdgesrError(f"demo limit {f.name} must be positive, got {value}")

    @property
    def tickets(self) -> int:
        """Uploads admitted at once: running plus waiting."""
        return self.workers + self.queue

    def transfer_timeout(self, nbytes: int) -> float:
        """The longest a body of ``nbytes`` may take to arrive, or a reply to leave."""
        return self.idle_timeout + nbytes / self.min_rate
