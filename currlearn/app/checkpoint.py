"""The run's checkpoint: written atomically, read back with one-line errors, and the state
TorchRL's trainer checkpoint leaves out (the collector's episodes in progress, the global RNGs).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from currlearn.app.errors import AppError, first_line

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_VERSION",
    "atomic_path",
    "collector_state",
    "continues_episodes",
    "load_checkpoint",
    "load_collector_state",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]

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
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e  # a failed write names no file
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: an existing checkpoint is
    never left half-written.

    Raises:
        OSError: the file could not be written (a full disk, a file size limit); the previous
            checkpoint is left as it was and the temporary file is removed.
    """
    import io

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised first: a failed write is then an OSError naming its cause
    torch.save(payload, buffer)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(run_dir: Path, arg: str = "resume") -> dict[str, Any]:
    """The last checkpoint of ``run_dir`` (given as the setting ``arg``, for messages).

    Raises:
        AppError: no such directory, no checkpoint in it, or an unreadable or foreign file.
    """
    import torch

    if not run_dir.is_dir():
        raise AppError(f"{arg}={str(run_dir)!r}: no such run directory.")
    files = sorted(run_dir.glob(f"**/{CHECKPOINT}"))
    if not files:
        raise AppError(f"{arg}={str(run_dir)!r}: the run directory has no checkpoint ({CHECKPOINT}).")
    if len(files) > 1:
        shown = ", ".join(str(f.relative_to(run_dir)) for f in files[:3]) + (", ..." if len(files) > 3 else "")
        raise AppError(
            f"{arg}={str(run_dir)!r} holds {len(files)} checkpoints ({shown}): pass the directory of one run."
        )
    path = files[0]
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise AppError(f"{arg}={str(run_dir)!r}: the checkpoint {path} is unreadable ({first_line(e)}).") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION or "trainer" not in ckpt:
        raise AppError(
            f"{arg}={str(run_dir)!r}: {path} is not a currlearn-train checkpoint (version {CHECKPOINT_VERSION})."
        )
    return ckpt


def _generators(env: Any) -> dict[str, Any]:
    """The ``torch.Generator`` attributes of the env under ``env``'s transforms, by name."""
    import torch

    base = getattr(env, "base_env", env)
    return {k: v for k, v in vars(base).items() if isinstance(v, torch.Generator)}


def seed_everything(seed: int) -> None:
    """Seed the global torch, numpy and Python random generators (each component with a
    generator of its own, the curriculum and the envs, is seeded by its config).
    """
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The global torch (CPU and, where initialised, every CUDA device), numpy and Python random states."""
    import random

    import numpy as np
    import torch

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (an older checkpoint's bare torch state is accepted too)."""
    import random

    import numpy as np
    import torch

    if not isinstance(state, dict):  # a checkpoint that kept the torch state only
        torch.set_rng_state(state)
        return
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    # a run moved to a machine with fewer GPUs (or none) goes on with fresh CUDA generators
    if state.get("cuda") is not None and torch.cuda.is_available() and torch.cuda.device_count() >= len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])


def collector_state(collector: Any) -> dict[str, Any]:
    """What TorchRL's collector checkpoint leaves out and an exact resume needs: the collector's
    current tensordict (observations, step counts, parameters of the episodes in progress) and
    the env's own generators. Envs whose state lives outside their tensordict (Gymnasium envs
    in worker processes) are not covered: their episodes restart on resume.
    """
    carrier = getattr(collector, "_carrier", None)
    env = getattr(collector, "env", None)
    pool = getattr(collector, "_traj_pool", None)
    return {
        "carrier": carrier.clone() if carrier is not None else None,
        "generators": {k: g.get_state() for k, g in _generators(env).items()} if env is not None else {},
        # the trajectory counter: TorchRL's collector starts new trajectories on load (the
        # carrier above continues the old ones instead)
        "traj_pool": pool.state_dict() if pool is not None else None,
    }


def continues_episodes(env: Any) -> bool:
    """Whether the episodes in progress of ``env`` can be continued from a checkpoint: the state
    of a TorchRL env lives in its tensordict (and its generators); a Gymnasium env keeps it in
    Python objects (in this process or in worker processes) that the checkpoint does not hold.
    """
    from torchrl.envs import GymLikeEnv
    from torchrl.envs.batched_envs import BatchedEnvBase

    base = getattr(env, "base_env", env)
    return not isinstance(base, (BatchedEnvBase, GymLikeEnv))


def load_collector_state(collector: Any, state: dict[str, Any] | None) -> bool:
    """Continue the episodes of :func:`collector_state` (after ``trainer.load_state_dict``).

    Returns:
        False where they cannot be continued (:func:`continues_episodes`): the envs start new
        episodes, from the reset the collector made when it was built.
    """
    env = getattr(collector, "env", None)
    if not state or env is None or not continues_episodes(env):
        return False
    carrier = state.get("carrier")
    if carrier is not None and getattr(collector, "_carrier", None) is not None:
        if carrier.batch_size != collector._carrier.batch_size:
            raise AppError(
                f"the checkpoint's envs had batch size {list(carrier.batch_size)}, "
                f"these have {list(collector._carrier.batch_size)}."
            )
        collector._carrier = carrier.to(collector._carrier.device)
        pool = getattr(collector, "_traj_pool", None)
        if pool is not None and state.get("traj_pool") is not None:
            pool.load_state_dict(state["traj_pool"])
    generators = _generators(env)
    for name, value in state.get("generators", {}).items():
        if name in generators:
            generators[name].set_state(value)
    return True
