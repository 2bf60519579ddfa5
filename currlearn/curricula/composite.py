"""Several curricula acting on different env parameters at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum
from currlearn.spaces import ProductSpace

__all__ = ["CompositeCurriculum"]


class CompositeCurriculum(Curriculum):
    """Run several curricula side by side, each on its own parameters.

    The task space is the :class:`~currlearn.spaces.ProductSpace` of the parts' spaces; a
    sampled task joins one task of each part, and feedback is split so each part learns from
    its own component of the task. Each part keeps its own generator and state.
    :meth:`make_tracker` computes the parts' user metric, if one uses one (at most one may).

    Args:
        curricula (list of Curriculum): the parts; their parameter names must not overlap.
        seed (int, optional): unused by the parts (each has its own); checkpointed.
        device: moves every part to this device.

    Examples:
        >>> from currlearn.curricula import ScheduledCurriculum, DomainRandomization
        >>> from currlearn.schedules import LinearSchedule
        >>> from currlearn.spaces import DiscreteSpace
        >>> both = CompositeCurriculum([
        ...     ScheduledCurriculum({"m": LinearSchedule(1.0, 2.0, total=10)}),
        ...     DomainRandomization(DiscreteSpace({"g": [9.0, 10.0]}), seed=0),
        ... ])
        >>> sorted(both.params(both.sample(4)).keys())
        ['g', 'm']
    """

    def __init__(
        self,
        curricula: Sequence[Curriculum],
        *,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        curricula = list(curricula)
        if not curricula:
            raise ValueError("curricula must list at least one curriculum, got an empty list.")
        for i, c in enumerate(curricula):
            if not isinstance(c, Curriculum):
                raise TypeError(f"curricula[{i}] must be a Curriculum, got {type(c).__name__}.")
            if device is not None:
                c.to(device)
        envs = {c.num_envs for c in curricula} - {None}
        if len(envs) > 1:
            raise ValueError(f"curricula disagree on num_envs: {sorted(envs)}.")
        # The feedback carries one "metric" entry: the parts that read it must agree on its source.
        sources = {id(c.step_metric): (i, c) for i, c in enumerate(curricula) if c.metric_key == "metric"}
        if len(sources) > 1:
            names = [f"curricula[{i}] metric={c.metric_name!r}" for i, c in sources.values()]
            raise ValueError(
                f"parts read different user metrics ({', '.join(names)}); the feedback holds one 'metric' "
                "entry, so at most one user metric (or the same registered name) may be used by the parts."
            )
        super().__init__(ProductSpace([c.space for c in curricula]), num_envs=envs.pop() if envs else None, seed=seed)
        self.curricula = curricula
        self.step_metric = next((c.step_metric for c in curricula if c.step_metric is not None), None)

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        if env_ids is None:
            return self.space.join([c.sample(num) for c in self.curricula])  # type: ignore[attr-defined]
        return self.space.join([c.sample(env_ids=env_ids) for c in self.curricula])  # type: ignore[attr-defined]

    def _update(self, feedback: TensorDictBase) -> None:
        parts = self.space.split(feedback["task"])  # type: ignore[attr-defined]
        for c, part in zip(self.curricula, parts):
            fb = feedback.clone(False)
            fb["task"] = part
            c.update(fb)

    def _on_step(self) -> None:
        for c in self.curricula:
            c.step(0)

    def metrics(self) -> dict[str, float]:  # noqa: D102
        out = super().metrics()
        for i, c in enumerate(self.curricula):
            out.update({k.replace("curriculum/", f"curriculum/{i}/", 1): v for k, v in c.metrics().items()})
        return out

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        out = super().state_dict()
        out["parts"] = [c.state_dict() for c in self.curricula]
        return out

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().check_state_dict(state_dict)
        parts = state_dict.get("parts", [])
        if len(parts) != len(self.curricula):
            raise ValueError(f"state_dict has {len(parts)} parts, this CompositeCurriculum has {len(self.curricula)}.")
        for c, sd in zip(self.curricula, parts):
            c.check_state_dict(sd)

    def load_state_dict(self, state_dict: dict[str, Any], *, load_rng: bool = True) -> None:  # noqa: D102
        super().load_state_dict(state_dict, load_rng=load_rng)
        for c, sd in zip(self.curricula, state_dict["parts"]):
            c.load_state_dict(sd, load_rng=load_rng)

    def to(self, device: torch.device | str) -> CompositeCurriculum:  # noqa: D102
        for c in self.curricula:
            c.to(device)
        super().to(device)
        return self
