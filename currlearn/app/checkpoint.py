"""The run's checkpoint file: written atomically, read back with one-line errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from currlearn.app.errors import AppError, first_line

__all__ = ["CHECKPOINT", "CHECKPOINT_VERSION", "atomic_path", "load_checkpoint", "save_checkpoint"]

CHECKPOINT = "last.pt"
CHECKPOINT_VERSION = 1


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (a name of its own, so two writers never share it) that
    replaces ``path`` when the block succeeds and is removed when it fails: ``path`` is always
    the old file or the new one, never a half-written one.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: an existing checkpoint is
    never left half-written.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The last checkpoint of ``run_dir``.

    Raises:
        AppError: no such directory, no checkpoint in it, or an unreadable or foreign file.
    """
    import torch

    if not run_dir.is_dir():
        raise AppError(f"resume={str(run_dir)!r}: no such run directory.")
    files = sorted(run_dir.glob(f"**/{CHECKPOINT}"))
    if not files:
        raise AppError(f"resume={str(run_dir)!r}: the run directory has no checkpoint ({CHECKPOINT}).")
    if len(files) > 1:
        shown = ", ".join(str(f.relative_to(run_dir)) for f in files[:3]) + (", ..." if len(files) > 3 else "")
        raise AppError(
            f"resume={str(run_dir)!r} holds {len(files)} checkpoints ({shown}): pass the directory of one run."
        )
    path = files[0]
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise AppError(f"resume={str(run_dir)!r}: the checkpoint {path} is unreadable ({first_line(e)}).") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION or "trainer" not in ckpt:
        raise AppError(
            f"resume={str(run_dir)!r}: {path} is not a currlearn-train checkpoint (version {CHECKPOINT_VERSION})."
        )
    return ckpt
