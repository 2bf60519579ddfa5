"""An ordered ladder of levels, climbed when a smoothed metric passes a threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum, check_finite, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import DiscreteSpace

__all__ = ["LevelCurriculum"]


class LevelCurriculum(Curriculum):
    """Levels in order of difficulty; advance when the agent masters the current one.

    Each finished episode played at the current level contributes its metric to an
    exponential moving average (EMA). After at least ``min_episodes`` episodes on a level, the
    curriculum promotes to the next level when the EMA reaches ``threshold``, and, if
    ``demote_threshold`` is set, demotes to the previous level when the EMA falls below it.
    The EMA and the episode count restart on every level change. Episodes that finish on
    another level than the current one (started before a change) are ignored.

    With ``per_env=True`` every env climbs its own ladder (needs ``num_envs`` and ``env_id``
    in the feedback); otherwise one level is shared by all envs.

    A batch with ``k`` episodes for the same ladder and mean ``m`` moves the EMA as ``k``
    sequential updates with value ``m`` would: ``ema <- (1 - a)^k ema + (1 - (1 - a)^k) m``.
    The first batch on a level initialises the EMA with ``m``.

    Args:
        levels (DiscreteSpace or mapping): the levels in order; a mapping
            ``{name: [value per level]}`` is turned into a :class:`DiscreteSpace`.
        threshold (float): promote when the EMA is ``>= threshold``.
        metric (str or callable): ``"return"`` (default), ``"success"``, a name given to
            :func:`~currlearn.metrics.register_metric`, or a callable ``batch -> Tensor [envs,
            time]`` of per-step values summed over each episode (see :mod:`currlearn.metrics`;
            :meth:`make_tracker` computes it). ``"metric"`` reads the entry of a tracker built
            with ``EpisodeTracker(step_metric=...)``.
        demote_threshold (float, optional): demote when the EMA is ``< demote_threshold``;
            must be ``< threshold``.
        min_episodes (int): episodes on a level before it can change. Default 10.
        smoothing (float): EMA weight ``a`` of a new episode, in (0, 1]. Default 0.1.
        per_env (bool): one ladder per env. Default False.
        num_envs (int, optional): number of envs; required with ``per_env``.
        start_level (int): initial level. Default 0.
        seed (int, optional): generator seed (checkpointed).
        device: device of the state.

    Examples:
        >>> import torch
        >>> from currlearn.feedback import episode_feedback
        >>> cur = LevelCurriculum({"gate_width": [4.0, 2.0, 1.0]}, threshold=0.8, min_episodes=2)
        >>> cur.update(episode_feedback(torch.tensor([0, 0]), torch.tensor([0.9, 1.0])))
        >>> cur.level
        tensor([1])
        >>> cur.params(cur.sample(1))["gate_width"]
        tensor([2.])
    """

    def __init__(
        self,
        levels: DiscreteSpace | Mapping[str, Sequence[float]],
        threshold: float,
        *,
        metric: MetricLike = "return",
        demote_threshold: float | None = None,
        min_episodes: int = 10,
        smoothing: float = 0.1,
        per_env: bool = False,
        num_envs: int | None = None,
        start_level: int = 0,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        space = levels if isinstance(levels, DiscreteSpace) else DiscreteSpace(levels)
        self.threshold = check_finite("threshold", threshold)
        if demote_threshold is not None:
            demote_threshold = check_finite("demote_threshold", demote_threshold)
            if demote_threshold >= self.threshold:
                raise ValueError(
                    f"demote_threshold={demote_threshold} must be < threshold={self.threshold}, "
                    "or the level would move both ways at once."
                )
        self._set_metric(metric)
        if metric == "success" and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold={threshold!r} is out of range: a success rate lies in [0, 1].")
        if per_env and num_envs is None:
            raise ValueError("per_env=True needs num_envs (the number of envs, one ladder each).")
        check_positive_int("min_episodes", min_episodes)
        check_positive_int("start_level", start_level, minimum=0)
        if start_level >= space.num_tasks:
            raise ValueError(f"start_level={start_level} is outside [0, {space.num_tasks}) levels.")
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        self.demote_threshold = demote_threshold
        self.min_episodes = min_episodes
        self.smoothing = check_probability("smoothing", smoothing, open_low=True)
        self.per_env = per_env
        self.start_level = start_level
        rows = num_envs if per_env else 1
        self.state = TensorDict(
            {
                "level": torch.full((rows,), start_level, dtype=torch.int64),
                "ema": torch.zeros(rows),
                "count": torch.zeros(rows, dtype=torch.int64),
                "promotions": torch.zeros((), dtype=torch.int64),
                "demotions": torch.zeros((), dtype=torch.int64),
            },
            device=self.device,
        )

    @property
    def level(self) -> Tensor:
        """Current level(s): shape ``[num_envs]`` with ``per_env``, else ``[1]``."""
        return self.state["level"]

    @property
    def num_levels(self) -> int:
        """Number of levels."""
        return self.space.num_tasks

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        if not self.per_env:
            return self.state["level"].expand(num).clone()
        if env_ids is None:
            raise ValueError("This LevelCurriculum has per_env=True: sample(env_ids=...) must say which envs.")
        return self.state["level"][env_ids]

    def _check_feedback(self, feedback: TensorDictBase) -> None:
        super()._check_feedback(feedback)
        if self.metric_key == "success" and torch.isnan(feedback["success"]).any():
            raise ValueError(
                "metric='success' but the feedback's success is NaN (unknown): the env reports no success flag; use metric='return' or set success_key."
            )
        if self.per_env and "env_id" not in feedback.keys():
            raise ValueError("per_env=True needs 'env_id' in the feedback.")

    def _update(self, feedback: TensorDictBase) -> None:
        level, ema, count = self.state["level"], self.state["ema"], self.state["count"]
        values = feedback[self.metric_key].to(ema.dtype)
        if self.per_env:
            row = feedback["env_id"]
        else:
            row = torch.zeros_like(feedback["task"])
        on_level = feedback["task"] == level[row]
        row = torch.where(on_level, row, torch.full_like(row, level.numel()))  # off-level -> dump row
        n = torch.zeros(level.numel() + 1, device=self.device).index_add_(0, row, torch.ones_like(values))[:-1]
        total = torch.zeros(level.numel() + 1, device=self.device).index_add_(0, row, values)[:-1]
        seen = n > 0
        mean = total / n.clamp_min(1)
        keep = (1 - self.smoothing) ** n
        new_ema = torch.where(count > 0, keep * ema + (1 - keep) * mean, mean)
        ema.copy_(torch.where(seen, new_ema, ema))
        count += n.to(torch.int64)

        ready = count >= self.min_episodes
        promote = ready & (ema >= self.threshold) & (level < self.num_levels - 1)
        demote = ready & (level > 0) & ~promote
        demote &= (ema < self.demote_threshold) if self.demote_threshold is not None else torch.zeros_like(demote)
        moved = promote | demote
        level += promote.to(torch.int64) - demote.to(torch.int64)
        ema.masked_fill_(moved, 0.0)
        count.masked_fill_(moved, 0)
        self.state["promotions"] += promote.sum()
        self.state["demotions"] += demote.sum()

    def _metrics(self) -> dict[str, Tensor | float]:
        level = self.state["level"].to(torch.get_default_dtype())
        out: dict[str, Tensor | float] = {
            "level_mean": level.mean(),
            "level_max": level.max(),
            "level_min": level.min(),
            "ema_mean": self.state["ema"].mean(),
            "promotions": self.state["promotions"],
            "demotions": self.state["demotions"],
        }
        if not self.per_env:
            params = self.space.params(self.state["level"])
            out.update({f"param/{k}": v[0] for k, v in params.items()})
        return out
