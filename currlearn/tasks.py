"""Curriculum arguments from a description of an env's tasks.

An env describes its tasks once — an ordered *ladder* of levels (``{name: [easiest, ...,
target]}``), a *box* (``low`` / ``high`` per parameter) — and these functions turn that
description into what each curriculum's constructor takes: the stages of a
:class:`~currlearn.SequentialCurriculum`, the schedules of a
:class:`~currlearn.ScheduledCurriculum`, the start and step sizes of an
:class:`~currlearn.ADRCurriculum`. The app's curriculum configs call them through Hydra
(``_target_: currlearn.tasks.ladder_stages``), which is how one curriculum config composes with
any env config.

Examples:
    >>> ladder = {"gate_width": [8.0, 2.0, 0.5]}
    >>> [s["params"] for s in ladder_stages(ladder, until={"max_episodes": 10})]
    [{'gate_width': 8.0}, {'gate_width': 2.0}, {'gate_width': 0.5}]
    >>> float(ladder_schedules(ladder, kind="linear", total=10)["gate_width"](5))
    4.25
    >>> first_level(ladder), box_steps({"g": 2.0}, {"g": 10.0}, steps=16)
    ({'gate_width': 8.0}, {'g': 0.5})
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["box_steps", "check_ladder", "first_level", "ladder_schedules", "ladder_stages"]


def check_ladder(ladder: Any, argument: str = "ladder") -> dict[str, list[float]]:
    """``ladder`` as ``{name: [float, ...]}`` with lists of one common, non-zero length.

    Raises:
        ValueError: not a non-empty mapping of equal-length, non-empty lists of finite numbers.
    """
    if not isinstance(ladder, Mapping) or not ladder:
        raise ValueError(f"{argument} must be a non-empty mapping of parameter -> list of values, got {ladder!r}.")
    out: dict[str, list[float]] = {}
    for name, values in ladder.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{argument}.{name} must be a non-empty list of values, got {values!r}.")
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"{argument}.{name} must hold numbers, got {list(values)!r}.") from None
        if not all(math.isfinite(v) for v in floats):
            raise ValueError(f"{argument}.{name} must hold finite numbers, got {floats!r}.")
        out[str(name)] = floats
    lengths = {n: len(v) for n, v in out.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{argument} lists must all have the same length (one value per level), got {lengths}.")
    return out


def ladder_stages(ladder: Mapping[str, Sequence[float]], until: Mapping[str, Any] | None = None) -> list[dict]:
    """One :class:`~currlearn.Stage` (as a dict) per level of ``ladder``, in order.

    Args:
        ladder (mapping of str to list of numbers): the levels, easiest first.
        until (mapping, optional): the stop conditions of every stage but the last (the fields
            of :class:`~currlearn.Stage`: ``max_episodes``, ``min_avg_reward``,
            ``reward_window``, ...); the last stage never ends.
    """
    levels = check_ladder(ladder)
    until = dict(until or {})
    if "params" in until:
        raise ValueError("until must not set 'params': each stage's params come from the ladder.")
    n = len(next(iter(levels.values())))
    return [{"params": {k: v[i] for k, v in levels.items()}, **(until if i < n - 1 else {})} for i in range(n)]


def ladder_schedules(
    ladder: Mapping[str, Sequence[float]], kind: str = "linear", total: int = 30, start: int = 0
) -> dict[str, Any]:
    """A schedule per parameter of ``ladder``, from its first to its last value.

    Args:
        ladder (mapping of str to list of numbers): the levels, easiest first.
        kind (str): ``linear``, ``cosine`` or ``exponential`` (from the first value to the last
            over ``total`` iterations), ``step`` (through every value of the ladder, evenly
            spaced over ``total`` iterations) or ``constant`` (the last value).
        total (int): iterations of the ramp.
        start (int): iterations before the ramp starts.

    An exponential needs non-zero ends of the same sign; a parameter that has not follows a
    linear schedule, with a warning.
    """
    from currlearn.base import check_positive_int
    from currlearn.schedules import make_schedule

    levels = check_ladder(ladder)
    check_positive_int("total", total)
    check_positive_int("start", start, minimum=0)
    out = {}
    for name, values in levels.items():
        init, final = values[0], values[-1]
        if kind == "step":
            n = len(values)
            bounds = [start + round(total * i / (n - 1)) for i in range(1, n)]
            out[name] = (
                make_schedule("step", values=values, boundaries=bounds)
                if n > 1
                else make_schedule("constant", value=init)
            )
        elif kind == "constant":
            out[name] = make_schedule("constant", value=final)
        elif kind == "exponential" and (init == 0 or final == 0 or (init > 0) != (final > 0)):
            warnings.warn(
                f"kind=exponential: ladder.{name} goes from {init} to {final}, but an exponential needs non-zero "
                "ends of the same sign; this parameter follows a linear schedule instead.",
                UserWarning,
                stacklevel=2,
            )
            out[name] = make_schedule("linear", init=init, final=final, total=total, start=start)
        else:
            out[name] = make_schedule(kind, init=init, final=final, total=total, start=start)
    return out


def first_level(ladder: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The easiest level of ``ladder`` (its first values), e.g. the start of ADR's box."""
    return {k: v[0] for k, v in check_ladder(ladder).items()}


def box_steps(low: Mapping[str, float], high: Mapping[str, float], steps: int = 16) -> dict[str, float]:
    """``(high - low) / steps`` per parameter: boundary steps that cross the box in ``steps``."""
    from currlearn.base import check_positive_int

    check_positive_int("steps", steps)
    if not isinstance(low, Mapping) or not isinstance(high, Mapping) or set(low) != set(high):
        raise ValueError(f"low and high must be mappings with the same parameters, got {low!r} and {high!r}.")
    out = {}
    for name in low:
        lo, hi = float(low[name]), float(high[name])
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"the box of {name!r} must satisfy low < high (finite), got [{lo}, {hi}].")
        out[str(name)] = (hi - lo) / steps
    return out
