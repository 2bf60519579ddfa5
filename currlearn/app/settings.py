"""The composed config as a plain dict, its top-level settings checked, resumes merged.

Env and curriculum configs are checked by the factories they name (their ``_target_``); the
settings the app reads itself are declared in :mod:`currlearn.app.schema`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from currlearn.app.errors import AppError, one_line

__all__ = ["RESUME_CHANGEABLE", "RESUME_KEEP", "check_device", "merge_resumed", "override_keys", "resolve", "validate"]

# On resume, these config nodes cannot change (the run is defined by them) ...
RESUME_KEEP = ("curriculum", "env", "task", "algo", "seed")
# ... and these take the command line's value when it sets one, else the resumed run's.
RESUME_CHANGEABLE = ("frames", "checkpoint_every", "progress", "eval", "output", "log", "num_threads", "device")


def resolve(cfg: Any) -> dict[str, Any]:
    """A composed config (``DictConfig`` or mapping) as a plain, resolved dict without ``hydra``.

    Raises:
        AppError: an interpolation that does not resolve (e.g. a curriculum config reading
            ``task.ladder`` with an env config that has no ``task`` node).
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            # hydra's own node is left out unresolved (a sweep's job config lacks its runtime values)
            out = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
        except Exception as e:
            msg = one_line(str(e))
            if "task." in msg or "'task'" in msg:
                msg += (
                    " (curriculum configs read the task interface node `task`: ladder, grid, low, high, "
                    "target, metric, threshold, floor, stage for parameter tasks, generator, simple_generator, "
                    "editor for generated levels (curriculum=level_replay, accel), bots for opponents "
                    "(curriculum=self_play, fsp, pfsp); give your env config the keys its curricula read, see the README)"
                )
            raise AppError(msg) from None
        out.pop("hydra", None)  # type: ignore[union-attr]
        return out  # type: ignore[return-value]
    return json.loads(json.dumps(cfg))


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
    """Check the settings the app reads itself against :class:`~currlearn.app.schema.TrainSettings`.

    Raises:
        AppError: one line naming the key, the value and what is allowed.
    """
    from currlearn.app.schema import TrainSettings, check

    check(cfg, TrainSettings)
    check_device(cfg["device"])
    for node in ("env", "task"):
        if not isinstance(cfg.get(node), Mapping):
            raise AppError(f"the config has no `{node}` node: choose an env config (env=point_mass, ...) that sets it.")
    if not cfg["env"].get("_target_"):
        raise AppError("env._target_ is not set: an env config names the factory that builds its env.")
    num_envs = cfg["env"].get("num_envs")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise AppError(f"env.num_envs={num_envs!r} is invalid: expected an integer >= 1.")


def _differs(new: Any, old: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first leaf (``path``, new value, old value) where ``new`` and ``old`` differ, or None."""
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        for key in [*new, *(k for k in old if k not in new)]:
            found = _differs(new.get(key), old.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    return None if new == old else (path, new, old)


def override_keys(overrides: list[str]) -> list[str]:
    """The config keys of Hydra command-line overrides (``+a.b=1`` -> ``a.b``; ``hydra.*`` left out)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o or o.startswith("~")]
    return [k for k in keys if k and not k.startswith("hydra")]


def merge_resumed(conf: dict[str, Any], old: Mapping[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """The resumed run's whole config, with the command line's values of :data:`RESUME_CHANGEABLE`.

    Args:
        conf (dict): the config composed for this command.
        old (mapping): the resumed run's config (from its checkpoint).
        overrides (list of str, optional): the command line's overrides; None (no command line
            known): any difference in :data:`RESUME_KEEP` is an override.

    Raises:
        AppError: an override changes a key of :data:`RESUME_KEEP` (the message names the key
            and both values).
    """
    keys = None if overrides is None else override_keys(overrides)

    def overridden(node: str) -> bool:
        return keys is None or any(k == node or k.startswith(f"{node}.") for k in keys)

    for node in RESUME_KEEP:
        if node in old and overridden(node):
            new_node = dict(conf.get(node) or {}) if isinstance(conf.get(node), Mapping) else conf.get(node)
            old_node = dict(old[node]) if isinstance(old[node], Mapping) else old[node]
            if isinstance(new_node, dict) and isinstance(old_node, dict) and node == "algo":
                new_node.pop("total_frames", None)  # follows frames, which may change
                old_node.pop("total_frames", None)
            found = _differs(new_node, old_node, node)
            if found:
                path, new, previous = found
                raise AppError(
                    f"{path}={new!r} cannot change on resume: the resumed run has {path}={previous!r} "
                    f"(a resumed run keeps its {', '.join(RESUME_KEEP)}; start a new run to change them)."
                )
    merged = {**dict(old), "resume": conf["resume"]}
    for key in RESUME_CHANGEABLE:
        if key in conf and (key not in old or overridden(key)):
            merged[key] = conf[key]
        elif isinstance(conf.get(key), Mapping) and isinstance(old.get(key), Mapping) and key != "log":
            # a setting added since the resumed run was saved (eval.every) takes today's default
            merged[key] = {**conf[key], **old[key]}
    return merged


def resume_dir(conf: Mapping[str, Any]) -> Path | None:
    """The run directory to resume from, or None."""
    return Path(conf["resume"]).expanduser().resolve() if conf.get("resume") else None
