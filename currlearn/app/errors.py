"""The app's error for bad input, and how Hydra's errors become one line."""

from __future__ import annotations

import re

__all__ = ["PROG", "AppError", "Interrupted", "WriteFailed", "first_line", "one_line"]

PROG = "currlearn-train"


class AppError(ValueError):
    """Bad input: reported as one line ``<prog>: error: ...`` and exit status 1."""


class WriteFailed(OSError):
    """A write of the run's own files (``metrics.csv``, the checkpoint) failed: a full disk, a
    file size limit, a directory gone. The previous file is left as it was."""

    @classmethod
    def wrap(cls, error: OSError, path: object) -> WriteFailed:
        """``error`` as a :class:`WriteFailed` naming ``path`` when it names no file."""
        return cls(error.errno, error.strerror or type(error).__name__, str(error.filename or path))


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal (SIGINT, SIGTERM); the exit status is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def first_line(error: BaseException) -> str:
    """``"<type>: <first line of the message>"`` of an exception (its type alone without one)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def one_line(text: str) -> str:
    """Condense a (Hydra) error message to one line: list items (indented lines) are joined
    with commas, other lines with semicolons; the search path and hints are dropped.

    Examples:
        >>> one_line("Could not find 'curriculum/foo'\\nAvailable options in 'curriculum':\\n\\tlevel\\n\\tnone")
        "Could not find 'curriculum/foo'; Available options in 'curriculum': level, none"
    """
    out = ""
    prev_item = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=")):
            continue
        if line.startswith("Config search path"):
            break
        item = raw[:1] in (" ", "\t") and not line.endswith(":")
        if not out:
            out = line
        elif item and prev_item:
            out += f", {line}"
        elif out.endswith(":"):
            out += f" {line}"
        else:
            out = out.rstrip(".;") + f"; {line}"
        prev_item = item
    return re.sub(r"\s+", " ", out)
