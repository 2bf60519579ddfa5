"""The app's own settings, declared once: their types, ranges and allowed values.

Each setting is a dataclass field; :func:`setting` adds its bounds (``ge``, ``gt``, ``le``)
and, for strings, a pattern with the words that describe it. :func:`check` walks a composed,
resolved config against a dataclass and raises one line naming the first bad key, its value
and what is allowed; keys the dataclass does not declare are refused too (a typo such as
``+eval.episods=8`` would otherwise be ignored).

Hydra's structured configs check types at composition time, but neither ranges nor NaN/inf,
and their errors are several lines naming the dataclass; the app composes untyped YAML and
checks it here, so ``--help`` and the config files stay plain. The nodes the app hands to
factories (``curriculum``, ``env``, ``algo``, ``log``) are checked by those factories.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from currlearn.app.errors import AppError

__all__ = ["EvalSettings", "OutputSettings", "TaskInterface", "TrainSettings", "check", "setting"]


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    pattern: str | None = None,
    allowed: str = "",
    name_only: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its bounds.

    Args:
        default: the default value.
        ge (float, optional): the value must be ``>= ge``.
        gt (float, optional): the value must be ``> gt``.
        le (float, optional): the value must be ``<= le``.
        pattern (str, optional): a string value must match it whole.
        allowed (str): how the pattern reads in a message (``cpu, cuda, cuda:N``).
        name_only (bool): a string must be a file or directory name (no ``/``, not empty).
        default_factory: as in :func:`dataclasses.field`.
    """
    meta = {"ge": ge, "gt": gt, "le": le, "pattern": pattern, "allowed": allowed, "name_only": name_only}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EvalSettings:
    """``eval``: evaluation on the target task (``task.eval``, else ``task.target``)."""

    episodes: int = setting(256, ge=1)
    deterministic: bool = False
    max_steps: int = setting(1000, ge=1)
    num_envs: int | None = setting(None, ge=1)
    every: int = setting(10, ge=0)
    every_episodes: int = setting(32, ge=1)


@dataclass
class OutputSettings:
    """``output``: the names of the files and directory written into the run dir."""

    metrics: str = setting("metrics.csv", name_only=True)
    summary: str = setting("summary.json", name_only=True)
    checkpoint_dir: str = setting("checkpoints", name_only=True)
    plots: bool = True


@dataclass
class TaskInterface:
    """``task``: what an env config tells the curriculum configs (see the README); each env
    config sets the keys that make sense for it.
    """

    metric: Any = None
    threshold: Any = None
    floor: Any = None
    target: Any = None
    eval: Any = None
    heldout: Any = None
    ladder: Any = None
    grid: Any = None
    low: Any = None
    high: Any = None
    stage: Any = None
    generator: Any = None
    simple_generator: Any = None
    editor: Any = None
    bots: Any = None


@dataclass
class TrainSettings:
    """The top level of ``currlearn-train``'s config (``conf/train.yaml``)."""

    curriculum: Any = None
    env: Any = None
    task: TaskInterface = field(default_factory=TaskInterface)
    algo: Any = None
    log: Any = None
    seed: int = setting(0, ge=0)
    device: str = setting("cpu", pattern=r"cpu|cuda(:\d+)?", allowed="cpu, cuda, cuda:N")
    num_threads: int = setting(1, ge=1)
    frames: int = setting(102_400, ge=1)
    checkpoint_every: int = setting(10, ge=0)
    resume: str | None = None
    progress: bool = True
    eval: EvalSettings = field(default_factory=EvalSettings)
    output: OutputSettings = field(default_factory=OutputSettings)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _expected(kind: type, meta: Mapping[str, Any], optional: bool) -> str:
    """What a value of ``kind`` with bounds ``meta`` must be, in words."""
    if kind is bool:
        text = "true or false"
    elif kind is str:
        text = (
            f"one of {meta['allowed']}"
            if meta.get("allowed")
            else "a file or directory name inside the run dir"
            if meta.get("name_only")
            else "a string"
        )
    else:
        noun = "an integer" if kind is int else "a finite number"
        ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
        if ge is not None and le is not None:
            text = f"{'an integer' if kind is int else 'a number'} in [{_number(ge)}, {_number(le)}]"
        elif gt is not None:
            text = f"{noun} > {_number(gt)}"
        elif ge is not None:
            text = f"{noun} >= {_number(ge)}"
        else:
            text = noun
    return f"{text} or null" if optional else text


def _ok(kind: type, value: Any, meta: Mapping[str, Any]) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is str:
        if not isinstance(value, str):
            return False
        if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
            return False
        return not meta.get("name_only") or (value not in ("", ".", "..") and "/" not in value and "\0" not in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int and not isinstance(value, int):
        return False
    if not math.isfinite(value):
        return False
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    return not ((ge is not None and value < ge) or (gt is not None and value <= gt) or (le is not None and value > le))


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> ``(X, True)``; ``X`` -> ``(X, False)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def check(values: Mapping[str, Any], schema: type, path: str = "") -> None:
    """Check ``values`` (a resolved config node) against the dataclass ``schema``.

    Args:
        values (mapping): the node.
        schema (type): a dataclass whose fields declare the node's keys.
        path (str): the node's config path, for messages (``eval``).

    Raises:
        AppError: an undeclared key, or a value of the wrong type or out of range (one line:
            ``eval.episodes=0 is invalid: expected an integer >= 1.``).
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in values:
        if key not in fields:
            where = f"{path}.{key}" if path else key
            raise AppError(
                f"{where} is not a setting of currlearn-train: allowed {path or 'keys'}: {', '.join(fields)}."
            )
    for name, f in fields.items():
        if name not in values:
            continue
        kind, optional = _unwrap(hints[name])
        value = values[name]
        where = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise AppError(f"{where}={value!r} is invalid: expected a config node (a mapping of settings).")
            check(value, kind, where)
        elif kind is Any or (optional and value is None):
            continue
        elif not _ok(kind, value, f.metadata):
            raise AppError(f"{where}={value!r} is invalid: expected {_expected(kind, f.metadata, optional)}.")
