"""The composed config as a plain dict, its top-level settings checked, resumes merged.

Env and curriculum configs are checked by the factories they name (their ``_target_``); this
module checks only what the app itself reads: ``seed``, ``device``, ``frames``, ``num_threads``,
``checkpoint_every``, ``progress``, ``eval`` and ``output``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from currlearn.app.errors import AppError, one_line

__all__ = ["RESUME_KEEP", "check_device", "merge_resumed", "resolve", "validate"]

# The config nodes a resumed run takes from the run it resumes (the rest from the command line).
RESUME_KEEP = ("curriculum", "env", "task", "algo", "seed")


def resolve(cfg: Any) -> dict[str, Any]:
    """A composed config (``DictConfig`` or mapping) as a plain, resolved dict without ``hydra``.

    Raises:
        AppError: an interpolation that does not resolve (e.g. a curriculum config reading
            ``task.ladder`` with an env config that has no ``task`` node).
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            out = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:
            msg = one_line(str(e))
            if "task." in msg or "'task'" in msg:
                msg += (
                    " (curriculum configs read the task interface node `task`: ladder, grid, low, high, "
                    "target, metric, threshold, floor, stage; give your env config one, see the README)"
                )
            raise AppError(msg) from None
        out.pop("hydra", None)  # type: ignore[union-attr]
        return out  # type: ignore[return-value]
    return json.loads(json.dumps(cfg))


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AppError(f"{key}={value!r} is invalid: expected an integer >= {minimum}.")
    return value


def check_device(value: Any) -> str:
    """``value`` if it names a usable torch device: ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        AppError: another name, or CUDA asked for where torch sees no such GPU.
    """
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise AppError(f"device={value!r} is invalid: allowed values: cpu, cuda, cuda:N.")
    if value.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= count:
            raise AppError(
                f"device={value!r} is not available: torch sees {count} CUDA device(s); use device=cpu"
                + (f" or device=cuda:0..{count - 1}." if count else ".")
            )
    return value


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the settings the app reads itself.

    Raises:
        AppError: one line naming the key, the value and what is allowed.
    """
    _int("frames", cfg["frames"], 1)
    _int("seed", cfg["seed"], 0)
    _int("checkpoint_every", cfg["checkpoint_every"], 0)
    _int("num_threads", cfg["num_threads"], 1)
    ev = cfg["eval"]
    _int("eval.episodes", ev["episodes"], 1)
    _int("eval.max_steps", ev["max_steps"], 1)
    if ev.get("num_envs") is not None:
        _int("eval.num_envs", ev["num_envs"], 1)
    flags = (("eval.deterministic", ev["deterministic"]), ("progress", cfg["progress"]))
    for key, value in (*flags, ("output.plots", cfg["output"]["plots"])):
        if not isinstance(value, bool):
            raise AppError(f"{key}={value!r} is invalid: expected true or false.")
    for key in ("metrics", "summary", "checkpoint_dir"):
        value = cfg["output"][key]
        if not isinstance(value, str) or not value or "/" in value:
            raise AppError(f"output.{key}={value!r} is invalid: expected a file or directory name inside the run dir.")
    check_device(cfg["device"])
    for node in ("env", "task"):
        if not isinstance(cfg.get(node), Mapping):
            raise AppError(f"the config has no `{node}` node: choose an env config (env=point_mass, ...) that sets it.")
    if not cfg["env"].get("_target_"):
        raise AppError("env._target_ is not set: an env config names the factory that builds its env.")
    _int("env.num_envs", cfg["env"].get("num_envs"), 1)


def merge_resumed(conf: dict[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` with the resumed run's :data:`RESUME_KEEP` nodes (the budget, checkpoints,
    evaluation, outputs and logger stay those of the command line).
    """
    for key in RESUME_KEEP:
        if key in old:
            conf[key] = old[key]
    return conf


def resume_dir(conf: Mapping[str, Any]) -> Path | None:
    """The run directory to resume from, or None."""
    return Path(conf["resume"]).expanduser().resolve() if conf.get("resume") else None
