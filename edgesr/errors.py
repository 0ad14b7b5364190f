"""User-facing errors.

Anything raised as :class:`EdgesrError` is a problem with the user's input (a file, a flag, a
recipe), not a bug: the CLI prints its message as one line and exits non-zero, without a
traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


class EdgesrError(Exception):
    """A one-line, actionable error about the user's input."""

    #: end the process right after printing, without the interpreter's shutdown: set where
    #: threads of a native library may still be running that would crash that shutdown
    #: (``train.distributed.RankLost``)
    exit_at_once: bool = False


def end_process(code: int) -> NoReturn:
    """Flush the standard streams and end this process with ``code`` at once (no atexit
    handlers, no interpreter shutdown): how the CLI ends after an ``exit_at_once`` error."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
            pass
    os._exit(code)
