"""User metrics: what a curriculum learns from, beyond an episode's return and success.

A curriculum's ``metric=`` argument (:class:`~currlearn.curricula.LevelCurriculum`, the
learning-progress, difficulty, ALP-GMM and ADR curricula) is one of:

- a built-in name: ``"return"`` (the undiscounted episode return) or ``"success"``;
- ``"outcome"``: the ``"outcome"`` entry of a game's last step (``("next", "outcome")``), the
  learner's result in a two-player game, 1 / 0.5 / 0 for a win / draw / loss
  (:class:`~currlearn.envs.TicTacToeEnv`);
- a name given to :func:`register_metric`;
- a callable ``fn(batch) -> Tensor``: ``batch`` is a collector batch (a ``TensorDictBase``)
  of shape ``[envs, time]`` and ``fn`` returns one value per step, of that same shape (a
  trailing singleton dim, as in ``[envs, time, 1]``, is accepted). Bool values count as 0/1.
  The values of an episode's steps are summed into the episode's value (wrap ``fn`` in
  :class:`StepMetric` to take their mean, maximum or last value instead);
- ``"metric"``: the ``"metric"`` entry of feedback from a tracker built by hand with
  ``EpisodeTracker(step_metric=...)`` (kept for older code).

For a user metric, :meth:`Curriculum.make_tracker <currlearn.base.Curriculum.make_tracker>`
builds an :class:`~currlearn.feedback.EpisodeTracker` that computes it, so the TorchRL hook,
the Lightning callback and hand-written loops get it with no further wiring. Episodes whose
value is NaN or infinite are skipped and counted in the curriculum's ``skipped_nonfinite``.

Checkpoints store a metric's name (built-in or registered), never a callable: the
constructor argument is the source of truth when a run resumes.

Examples:
    >>> import torch
    >>> from currlearn.curricula import LevelCurriculum
    >>> def crossed_wall(batch):  # 1 on the steps that end above the wall (y > 0)
    ...     return batch["next", "position"][..., 1] > 0
    >>> cur = LevelCurriculum({"gate_width": [8.0, 4.0, 1.0]}, threshold=1.0, metric=crossed_wall)
    >>> cur.make_tracker().step_metric
    StepMetric('crossed_wall', reduction='sum')
    >>> _ = register_metric("crossed_wall", crossed_wall, reduction="max")
    >>> LevelCurriculum({"gate_width": [8.0, 4.0]}, threshold=1.0, metric="crossed_wall").step_metric
    StepMetric('crossed_wall', reduction='max')
    >>> unregister_metric("crossed_wall")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

from tensordict import TensorDictBase
from torch import Tensor

__all__ = [
    "BUILTIN_METRICS",
    "REDUCTIONS",
    "STANDARD_METRICS",
    "MetricLike",
    "StepMetric",
    "metric_names",
    "register_metric",
    "resolve_metric",
    "unregister_metric",
]

BUILTIN_METRICS = ("return", "success", "metric")
"""Feedback entries a curriculum can learn from by name (``"metric"``: a hand-built tracker's)."""

REDUCTIONS = ("sum", "mean", "max", "last")
"""How a :class:`StepMetric` turns an episode's per-step values into the episode's value."""

StepFn = Callable[[TensorDictBase], Tensor]

MetricLike = Union[str, "StepMetric", StepFn]
"""What a curriculum's ``metric=`` accepts: a name, a :class:`StepMetric` or a callable."""


def _callable_name(fn: Any) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial, e.g. from Hydra's ``_partial_: true``
    return getattr(inner, "__name__", None) or type(inner).__name__


class StepMetric:
    """A per-step user metric and the reduction that turns it into a per-episode value.

    Args:
        fn (callable): ``fn(batch) -> Tensor``: ``batch`` has shape ``[envs, time]`` and the
            result one value per step, shape ``[envs, time]`` (or ``[envs, time, 1]``).
        reduction (str): over the steps of an episode: ``"sum"`` (default), ``"mean"``,
            ``"max"`` or ``"last"`` (the value at the episode's final step).
        name (str, optional): shown in reprs and errors; default the function's name.

    Raises:
        TypeError: ``fn`` is not callable, ``name`` not a string.
        ValueError: an unknown ``reduction`` (the message lists the valid ones).

    Examples:
        >>> import torch
        >>> m = StepMetric(lambda batch: batch["next", "reward"] > 0, reduction="max", name="any_reward")
        >>> m
        StepMetric('any_reward', reduction='max')
    """

    def __init__(self, fn: StepFn, reduction: str = "sum", *, name: str | None = None) -> None:
        if isinstance(fn, StepMetric):
            raise TypeError("fn is already a StepMetric; pass its .fn to wrap it with another reduction.")
        if not callable(fn):
            raise TypeError(
                f"fn must be callable (batch -> Tensor of shape [envs, time]), got {type(fn).__name__} {fn!r}."
            )
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is not one of {list(REDUCTIONS)}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be None or a non-empty string, got {name!r}.")
        self.fn = fn
        self.reduction = reduction
        self.name = name if name is not None else _callable_name(fn)

    def __call__(self, batch: TensorDictBase) -> Tensor:
        """Per-step values of ``batch`` (shape ``[envs, time]``)."""
        return self.fn(batch)

    def __repr__(self) -> str:
        return f"StepMetric({self.name!r}, reduction={self.reduction!r})"


def outcome(batch: TensorDictBase) -> Tensor:
    """A two-player game's result from the learner's side at each step, ``("next", "outcome")``
    (1 a win, 0.5 a draw, 0 a loss at a game's last step)."""
    return batch["next", "outcome"]


STANDARD_METRICS: dict[str, StepMetric] = {"outcome": StepMetric(outcome, "last", name="outcome")}
"""Step metrics that every curriculum can name: ``"outcome"`` (:func:`outcome` at the episode's
last step)."""

_REGISTRY: dict[str, StepMetric] = {}


def register_metric(name: str, fn: StepFn, *, reduction: str = "sum") -> StepFn:
    """Register a user metric that curricula can name (``metric="name"``, also from YAML).

    Registering a name again replaces its function. A curriculum binds the function when it
    is built.

    Args:
        name (str): the name; not one of the built-in names ``"return"``, ``"success"``,
            ``"metric"``.
        fn (callable): ``fn(batch) -> Tensor`` of per-step values, shape ``[envs, time]``
            (see :class:`StepMetric`).
        reduction (str): ``"sum"`` (default), ``"mean"``, ``"max"`` or ``"last"``.

    Returns:
        ``fn``.

    Raises:
        TypeError: ``name`` is not a non-empty string or ``fn`` is not callable.
        ValueError: ``name`` is a built-in name; an unknown ``reduction``.

    Examples:
        >>> _ = register_metric("reward_steps", lambda batch: batch["next", "reward"] > 0)
        >>> "reward_steps" in metric_names()
        True
        >>> unregister_metric("reward_steps")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"metric name must be a non-empty string, got {name!r}.")
    if name in BUILTIN_METRICS or name in STANDARD_METRICS:
        taken = [*BUILTIN_METRICS, *STANDARD_METRICS]
        raise ValueError(f"metric name {name!r} is built in; choose a name other than {taken}.")
    _REGISTRY[name] = StepMetric(fn, reduction, name=name)
    return fn


def unregister_metric(name: str) -> None:
    """Remove a name given to :func:`register_metric`.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    if name not in _REGISTRY:
        raise ValueError(f"metric {name!r} is not registered; registered: {sorted(_REGISTRY)}.")
    del _REGISTRY[name]


def metric_names() -> tuple[str, ...]:
    """The names a curriculum's ``metric=`` accepts: the built-in ones, then the registered ones."""
    return BUILTIN_METRICS + tuple(STANDARD_METRICS) + tuple(sorted(_REGISTRY))


def resolve_metric(metric: object) -> tuple[str, StepMetric | None]:
    """The feedback entry a curriculum reads for ``metric``, and the step metric that fills it.

    Args:
        metric: a built-in name, a registered name, a :class:`StepMetric` or a callable
            ``batch -> Tensor [envs, time]`` (summed over each episode).

    Returns:
        ``(key, step_metric)``: ``("return", None)``, ``("success", None)``, ``("metric",
        None)`` for the hand-built tracker's entry, else ``("metric", StepMetric)``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: neither a string nor a callable.
    """
    if isinstance(metric, str):
        if metric in BUILTIN_METRICS:
            return metric, None
        if metric in STANDARD_METRICS:
            return "metric", STANDARD_METRICS[metric]
        if metric in _REGISTRY:
            return "metric", _REGISTRY[metric]
        registered = f"the registered metrics {sorted(_REGISTRY)}" if _REGISTRY else "a registered metric (none is)"
        raise ValueError(
            f"metric={metric!r} is not one of {[*BUILTIN_METRICS, *STANDARD_METRICS]} nor {registered}; "
            "register it with currlearn.metrics.register_metric(name, fn) "
            "or pass a callable batch -> Tensor [envs, time]."
        )
    if isinstance(metric, StepMetric):
        return "metric", metric
    if callable(metric):
        return "metric", StepMetric(metric)
    raise TypeError(
        f"metric must be a name ({list(metric_names())}) or a callable batch -> Tensor [envs, time], "
        f"got {type(metric).__name__} {metric!r}."
    )
