"""Schedules: callables ``iteration -> value`` on tensors.

A schedule maps a training iteration (a Python ``int`` or a tensor of any shape) to a value
tensor of the same shape. Values are clamped outside the schedule's range: before ``start``
the schedule returns its initial value, after ``start + total`` its final value. Evaluating a
schedule on a tensor never synchronises with the host, so schedules can be evaluated on CUDA
inside a compiled or captured step.

Examples:
    >>> import torch
    >>> from currlearn.schedules import ChainSchedule, ConstantSchedule, LinearSchedule
    >>> s = LinearSchedule(0.0, 1.0, total=10)
    >>> s(5)
    tensor(0.5000)
    >>> warmup = ConstantSchedule(0.0, total=5)
    >>> warmup_then_linear = ChainSchedule([warmup, LinearSchedule(0.0, 1.0, total=10)])
    >>> warmup_then_linear(torch.tensor([0, 5, 10, 15, 30]))
    tensor([0.0000, 0.0000, 0.5000, 1.0000, 1.0000])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence as _SequenceABC

import torch
from torch import Tensor

__all__ = [
    "ChainSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "Schedule",
    "StepSchedule",
    "make_schedule",
]


def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def _check_total(total: int) -> int:
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"total must be an int number of iterations, got {total!r}.")
    if total <= 0:
        raise ValueError(f"total must be > 0 iterations, got {total}. Use ConstantSchedule for a fixed value.")
    return total


class Schedule(ABC):
    """A value that changes with the training iteration.

    Subclasses implement :meth:`_value` on a float tensor ``progress`` of iterations already
    shifted by ``start``; :meth:`__call__` does the conversion and the clamping.

    Args:
        total (int): number of iterations over which the value changes. Must be > 0.
        start (int): iteration at which the change begins. Default 0.
    """

    def __init__(self, total: int, start: int = 0) -> None:
        self.total = _check_total(total)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}.")
        self.start = start

    @property
    def end(self) -> int:
        """The iteration after which the value stays at its final value."""
        return self.start + self.total

    def __call__(self, iteration: int | Tensor) -> Tensor:
        """Evaluate the schedule.

        Args:
            iteration (int or Tensor): iteration(s), any shape.

        Returns:
            A float tensor of the same shape as ``iteration`` (a 0-d tensor for an int).
        """
        if isinstance(iteration, Tensor):
            t = iteration.to(torch.get_default_dtype())
        else:
            t = torch.tensor(float(iteration))
        t = (t - self.start).clamp(0, self.total)
        return self._value(t)

    @abstractmethod
    def _value(self, t: Tensor) -> Tensor:
        """Value at ``t`` iterations after ``start``, with ``0 <= t <= total``."""

    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value the schedule takes."""
        grid = self(torch.arange(self.start, self.end + 1))
        return float(grid.min()), float(grid.max())

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class ConstantSchedule(Schedule):
    """A constant value (useful as a warm-up segment in a :class:`ChainSchedule`).

    Args:
        value (float): the value.
        total (int): length of the segment in iterations when used in a :class:`ChainSchedule`.
        start (int): iteration at which it begins.
    """

    def __init__(self, value: float, total: int = 1, start: int = 0) -> None:
        super().__init__(total, start)
        self.value = _check_finite("value", value)

    def _value(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.value)


class LinearSchedule(Schedule):
    """Linear interpolation from ``init`` to ``final`` over ``total`` iterations.

    value(t) = init + (final - init) * t / total

    Args:
        init (float): value at ``start`` and before.
        final (float): value at ``start + total`` and after.
        total (int): iterations of the change. Must be > 0.
        start (int): first iteration of the change.
    """

    def __init__(self, init: float, final: float, total: int, start: int = 0) -> None:
        super().__init__(total, start)
        self.init = _check_finite("init", init)
        self.final = _check_finite("final", final)

    def _value(self, t: Tensor) -> Tensor:
        return self.init + (self.final - self.init) * (t / self.total)


class CosineSchedule(Schedule):
    """Half-cosine interpolation from ``init`` to ``final``.

    value(t) = final + (init - final) * (1 + cos(pi * t / total)) / 2

    Args:
        init (float): value at ``start`` and before.
        final (float): value at ``start + total`` and after.
        total (int): iterations of the change. Must be > 0.
        start (int): first iteration of the change.
    """

    def __init__(self, init: float, final: float, total: int, start: int = 0) -> None:
        super().__init__(total, start)
        self.init = _check_finite("init", init)
        self.final = _check_finite("final", final)

    def _value(self, t: Tensor) -> Tensor:
        return self.final + (self.init - self.final) * 0.5 * (1 + torch.cos(math.pi * t / self.total))


class ExponentialSchedule(Schedule):
    """Geometric interpolation from ``init`` to ``final`` (both of the same sign, non-zero).

    value(t) = init * (final / init) ** (t / total)

    Args:
        init (float): value at ``start`` and before. Non-zero.
        final (float): value at ``start + total`` and after. Same sign as ``init``.
        total (int): iterations of the change. Must be > 0.
        start (int): first iteration of the change.
    """

    def __init__(self, init: float, final: float, total: int, start: int = 0) -> None:
        super().__init__(total, start)
        self.init = _check_finite("init", init)
        self.final = _check_finite("final", final)
        if self.init == 0 or self.final == 0 or (self.init > 0) != (self.final > 0):
            raise ValueError(
                f"ExponentialSchedule needs init and final non-zero and of the same sign, "
                f"got init={init!r}, final={final!r}."
            )

    def _value(self, t: Tensor) -> Tensor:
        return self.init * (self.final / self.init) ** (t / self.total)


class StepSchedule(Schedule):
    """Piecewise-constant values that change at given iterations.

    ``values[0]`` holds before ``boundaries[0]``, ``values[i]`` from ``boundaries[i - 1]`` on.

    Args:
        values (list of float): ``len(boundaries) + 1`` values.
        boundaries (list of int): strictly increasing iterations at which the value changes.

    Examples:
        >>> import torch
        >>> StepSchedule([1.0, 2.0, 3.0], boundaries=[10, 20])(torch.tensor([0, 10, 19, 20, 99]))
        tensor([1., 2., 2., 3., 3.])
    """

    def __init__(self, values: _SequenceABC[float], boundaries: _SequenceABC[int]) -> None:
        values = [_check_finite(f"values[{i}]", v) for i, v in enumerate(values)]
        boundaries = list(boundaries)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"StepSchedule needs len(values) == len(boundaries) + 1, got {len(values)} values "
                f"and {len(boundaries)} boundaries."
            )
        for i, b in enumerate(boundaries):
            if isinstance(b, bool) or not isinstance(b, int) or b < 0:
                raise ValueError(f"boundaries[{i}] must be an int >= 0, got {b!r}.")
        if any(b1 <= b0 for b0, b1 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}.")
        last = boundaries[-1] if boundaries else 0
        super().__init__(total=max(last, 1), start=0)
        self.values = values
        self.boundaries = boundaries
        self._values_t = torch.tensor(values)
        self._bounds_t = torch.tensor(boundaries, dtype=torch.get_default_dtype())
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The boundaries and values on ``device``, copied there once (not on every call)."""
        tables = self._on_device.get(device)
        if tables is None:
            tables = self._on_device[device] = (self._bounds_t.to(device), self._values_t.to(device))
        return tables

    def _value(self, t: Tensor) -> Tensor:
        bounds, values = self._tables(t.device)
        return values[torch.bucketize(t, bounds, right=True)]

    def __call__(self, iteration: int | Tensor) -> Tensor:  # noqa: D102 (no clamping window)
        t = iteration.to(torch.get_default_dtype()) if isinstance(iteration, Tensor) else torch.tensor(float(iteration))
        return self._value(t)


class ChainSchedule(Schedule):
    """Schedules played one after another (e.g. a warm-up then a linear ramp).

    Each schedule runs for its own ``total`` iterations, in local time starting at 0 (its own
    ``start`` is ignored); after the last one the final value holds.

    Args:
        schedules (list of Schedule): the segments, in order. At least one.
    """

    def __init__(self, schedules: _SequenceABC[Schedule]) -> None:
        schedules = list(schedules)
        if not schedules:
            raise ValueError("ChainSchedule needs at least one schedule, got an empty list.")
        for i, s in enumerate(schedules):
            if not isinstance(s, Schedule):
                raise TypeError(f"schedules[{i}] must be a Schedule, got {type(s).__name__}.")
        super().__init__(total=sum(s.total for s in schedules), start=0)
        self.schedules = schedules

    def _value(self, t: Tensor) -> Tensor:
        out = self.schedules[0](t)
        offset = 0
        for s in self.schedules:
            local = t - offset
            out = torch.where(t >= offset, s._value(local.clamp(0, s.total)), out)
            offset += s.total
        return out


_SCHEDULES: dict[str, type[Schedule]] = {
    "constant": ConstantSchedule,
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "exponential": ExponentialSchedule,
    "step": StepSchedule,
}


def make_schedule(kind: str, **kwargs: object) -> Schedule:
    """Build a schedule from its name.

    Args:
        kind (str): one of ``constant``, ``linear``, ``cosine``, ``exponential``, ``step``.
        **kwargs: the schedule's constructor arguments.

    Raises:
        ValueError: for an unknown ``kind``; the message lists the known ones.

    Examples:
        >>> make_schedule("cosine", init=1.0, final=0.0, total=4)(2)
        tensor(0.5000)
    """
    if kind not in _SCHEDULES:
        raise ValueError(f"Unknown schedule kind={kind!r}; known kinds: {sorted(_SCHEDULES)}.")
    return _SCHEDULES[kind](**kwargs)  # type: ignore[arg-type]
