"""Uniform sampling over a task space: the baseline every curriculum is compared with."""

from __future__ import annotations

import torch
from torch import Tensor

from currlearn.base import Curriculum
from currlearn.spaces import TaskSpace

__all__ = ["DomainRandomization"]


class DomainRandomization(Curriculum):
    """Each reset draws a task uniformly from the space (discrete ids or a box).

    Args:
        space (TaskSpace): the tasks.
        num_envs (int, optional): number of envs (unused; kept for a uniform signature).
        seed (int, optional): generator seed.
        device: device of the state.

    Examples:
        >>> from currlearn.spaces import BoxSpace
        >>> dr = DomainRandomization(BoxSpace({"m": 0.5}, {"m": 2.0}), seed=0)
        >>> t = dr.sample(1000)
        >>> bool((t >= 0.5).all() and (t <= 2.0).all())
        True
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)  # learns nothing: no metric

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        return self.space.sample_uniform(num, self.generator)

    def weights(self) -> Tensor:
        """Uniform probabilities over a discrete space, shape ``[num_tasks]``."""
        n = self.space.num_tasks
        return torch.full((n,), 1.0 / n, device=self.device)
