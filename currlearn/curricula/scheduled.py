"""Env parameters that follow schedules over training iterations."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from currlearn.base import Curriculum
from currlearn.schedules import Schedule
from currlearn.spaces import BoxSpace

__all__ = ["ScheduledCurriculum"]


class ScheduledCurriculum(Curriculum):
    """Every env plays the parameters given by schedules at the current iteration.

    The task space is the box spanned by each schedule's range; a task is the vector of the
    scheduled values. :meth:`step` advances the iteration; the CurriculumTransform applies the
    new values to running envs at their next env step (not only at their next reset), whether
    or not a hook calls its ``refresh()``.

    Args:
        schedules (mapping of str to Schedule): env parameter name -> schedule.
        seed (int, optional): seed of the (unused but checkpointed) generator.
        device: device of the state.

    Examples:
        >>> from currlearn.schedules import LinearSchedule
        >>> cur = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=3)})
        >>> cur.sample(2)
        tensor([[0.5000],
                [0.5000]])
        >>> cur.step(); cur.step(); cur.params(cur.sample(1))["m"]
        tensor([1.5000])
    """

    per_episode = False

    def __init__(
        self,
        schedules: Mapping[str, Schedule],
        *,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(schedules, Mapping) or not schedules:
            raise ValueError(f"schedules must be a non-empty mapping of parameter name -> Schedule, got {schedules!r}.")
        for name, s in schedules.items():
            if not isinstance(s, Schedule):
                raise TypeError(
                    f"schedules[{name!r}] must be a Schedule (e.g. LinearSchedule), got {type(s).__name__}."
                )
        bounds = {name: s.bounds() for name, s in schedules.items()}
        space = BoxSpace({k: b[0] for k, b in bounds.items()}, {k: b[1] for k, b in bounds.items()})
        super().__init__(space, seed=seed, device=device)
        self.schedules = dict(schedules)

    def current(self) -> Tensor:
        """The scheduled values now, shape ``[dim]``."""
        it = self.counters["iteration"]
        return torch.stack([s(it).to(self.device) for s in self.schedules.values()])

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        return self.current().expand(num, -1).clone()

    def _metrics(self) -> dict[str, Tensor | float]:
        return {f"param/{k}": v for k, v in zip(self.schedules, self.current())}
