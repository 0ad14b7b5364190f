"""Silence the converters' chatter for one call, and leave the process as it was.

torch's ONNX exporter, onnxruntime's quantizer and coremltools print progress, warnings and
log lines that would bury edgesr's own one-line output. Everything changed here (logger
levels, the root logger's handlers, which ``logging.warning`` may add behind our back,
warning filters, stdout/stderr) is restored on exit, so an application that imports edgesr
keeps its own logging setup.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*loggers: str, stderr: bool = False) -> Iterator[None]:
    """Below ERROR, nothing from ``loggers`` (``""`` is the root logger); no warnings, no stdout."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    root_handlers = list(logging.root.handlers)
    try:
        for logger, _ in saved:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                (contextlib.redirect_stderr(io.StringIO()) if stderr else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
        logging.root.handlers[:] = root_handlers
