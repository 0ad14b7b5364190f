"""User-facing errors.

Anything raised as :class:`EdgesrError` is a problem with the user's input (a file, a flag, a
recipe), not a bug: the CLI prints its message as one line and exits non-zero, without a
traceback. Everything else is a bug and keeps its traceback.
"""


class EdgesrError(Exception):
    """A one-line, actionable error about the user's input."""
