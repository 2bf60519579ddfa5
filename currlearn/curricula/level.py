"""An ordered ladder of levels, climbed when a smoothed metric passes a threshold."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum, check_choice, check_finite, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import DiscreteSpace

__all__ = ["LevelCurriculum"]

COMPARES = ("ge", "gt")
"""The ``compare=`` choices of :class:`LevelCurriculum`."""


def _check_thresholds(name: str, value: object, num_levels: int, success: bool) -> float | list[float]:
    """Return ``value`` as a float, or as a list of ``num_levels - 1`` floats, else raise.

    Raises:
        ValueError: neither a finite number nor a sequence of ``num_levels - 1`` finite numbers,
            or, with ``success``, a value outside [0, 1]; the message names ``name`` and the value.
    """
    rungs = num_levels - 1
    allowed = f"a finite number or a list of num_levels - 1 = {rungs} finite numbers (one per promotion)"
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, int, float)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    if not isinstance(value, Sequence):
        out: float | list[float] = check_finite(name, value)
        items = [(name, out)]
    else:
        if len(value) != rungs:
            raise ValueError(
                f"{name}={list(value)!r} has {len(value)} values; a ladder of {num_levels} levels needs {allowed}."
            )
        out = [check_finite(f"{name}[{i}]", v) for i, v in enumerate(value)]
        items = [(f"{name}[{i}]", v) for i, v in enumerate(out)]
    if success:
        for label, v in items:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{label}={v!r} is out of range: a success rate lies in [0, 1].")
    return out


def _per_rung(value: float | list[float], rungs: int) -> list[float]:
    return list(value) if isinstance(value, list) else [value] * rungs


class LevelCurriculum(Curriculum):
    """Levels in order of difficulty; advance when the agent masters the current one.

    Each finished episode played at the current level contributes its metric to an
    exponential moving average (EMA). After at least ``min_episodes`` episodes on a level, the
    curriculum promotes to the next level when the EMA reaches ``threshold`` (``>=``, or
    ``>`` with ``compare="gt"``), and, if ``demote_threshold`` is set, demotes to the previous
    level when the EMA falls below it (``<``, or ``<=`` with ``compare="gt"``). The EMA
    restarts at ``ema_init`` and the episode count at 0 on every level change. Episodes that
    finish on another level than the current one (started before a change) are ignored.

    ``threshold`` and ``demote_threshold`` are a number for every rung or a list of
    ``num_levels - 1`` values, one per rung: entry ``i`` promotes from level ``i`` to ``i + 1``
    (resp. demotes from level ``i + 1`` to ``i``), e.g. ``threshold=[50, 100, 150]`` for 4
    levels. A demotion threshold lies below the promotion threshold of its rung and below
    that of the level it demotes from, so no level can move both ways at once.

    With ``per_env=True`` every env climbs its own ladder (needs ``num_envs`` and ``env_id``
    in the feedback); otherwise one level is shared by all envs.

    A batch with ``k`` episodes for the same ladder and mean ``m`` moves the EMA as ``k``
    sequential updates with value ``m`` would: ``ema <- (1 - a)^k ema + (1 - (1 - a)^k) m``.
    With ``ema_init=None`` (default) the first batch on a level initialises the EMA with
    ``m``; with a number, the EMA starts at that number and the first batch moves it by the
    rule above. Lerax's ``LevelCurriculum`` starts its running metric at 0 and advances when
    it exceeds the threshold: its settings are ``ema_init=0.0, compare="gt"``,
    ``min_episodes=1`` and its ``smoothing`` (0.05 there by default).

    Numerics: episodes whose return (or user metric) is NaN or infinite are skipped by
    :meth:`~currlearn.base.Curriculum.update`. With ``metric="success"``, a success that is
    NaN (unknown), infinite or outside [0, 1] is skipped as well and counted in the
    ``skipped_nonfinite`` counter, while the batch's other episodes count: a long run goes on
    past a broken episode. Only feedback without a ``"success"`` entry raises; while no known
    success has arrived, a warning (once) says that the env may report no success flag.
    Batch sums are taken in float64 and the EMA is kept within the finite range of its
    dtype, so any mix of finite values (``±3e38`` in float32, larger ones in float64), NaN
    and ±inf leaves the state finite.

    Args:
        levels (DiscreteSpace or mapping): the levels in order; a mapping
            ``{name: [value per level]}`` is turned into a :class:`DiscreteSpace`.
        threshold (float or list of float): promote when the EMA is ``>= threshold`` (``>``
            with ``compare="gt"``); a list gives one value per promotion (``num_levels - 1``).
            In [0, 1] with ``metric="success"``.
        metric (str or callable): ``"return"`` (default), ``"success"``, a name given to
            :func:`~currlearn.metrics.register_metric`, or a callable ``batch -> Tensor [envs,
            time]`` of per-step values summed over each episode (see :mod:`currlearn.metrics`;
            :meth:`make_tracker` computes it). ``"metric"`` reads the entry of a tracker built
            with ``EpisodeTracker(step_metric=...)``.
        demote_threshold (float or list of float, optional): demote when the EMA is
            ``< demote_threshold`` (``<=`` with ``compare="gt"``); a list gives one value per
            rung (``num_levels - 1``), each ``<`` the promotion threshold of that rung and of
            the level it demotes from. Default None: never demote.
        min_episodes (int): episodes on a level before it can change. Default 10.
        smoothing (float): EMA weight ``a`` of a new episode, in (0, 1]. Default 0.1.
        ema_init (float, optional): the EMA's value on arriving at a level. Default None: the
            first batch's mean. In [0, 1] with ``metric="success"``.
        compare (str): ``"ge"`` (default): promote at ``ema >= threshold``, demote at
            ``ema < demote_threshold``; ``"gt"``: promote at ``ema > threshold``, demote at
            ``ema <= demote_threshold``.
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
        >>> staged = LevelCurriculum({"speed": [4.0, 6.0, 8.0, 10.0]}, threshold=[50, 100, 150])
        >>> staged.threshold
        [50.0, 100.0, 150.0]
    """

    def __init__(
        self,
        levels: DiscreteSpace | Mapping[str, Sequence[float]],
        threshold: float | Sequence[float],
        *,
        metric: MetricLike = "return",
        demote_threshold: float | Sequence[float] | None = None,
        min_episodes: int = 10,
        smoothing: float = 0.1,
        ema_init: float | None = None,
        compare: str = "ge",
        per_env: bool = False,
        num_envs: int | None = None,
        start_level: int = 0,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        space = levels if isinstance(levels, DiscreteSpace) else DiscreteSpace(levels)
        self._set_metric(metric)
        success = self.metric_key == "success"
        num_levels = space.num_tasks
        rungs = num_levels - 1
        self.threshold = _check_thresholds("threshold", threshold, num_levels, success)
        if demote_threshold is not None:
            demote_threshold = _check_thresholds("demote_threshold", demote_threshold, num_levels, success)
            self._check_hysteresis(demote_threshold, rungs)
        self.compare = check_choice("compare", compare, COMPARES)
        if ema_init is not None:
            ema_init = check_finite("ema_init", ema_init)
            if success and not 0.0 <= ema_init <= 1.0:
                raise ValueError(f"ema_init={ema_init!r} is out of range: a success rate lies in [0, 1].")
        if per_env and num_envs is None:
            raise ValueError("per_env=True needs num_envs (the number of envs, one ladder each).")
        check_positive_int("min_episodes", min_episodes)
        check_positive_int("start_level", start_level, minimum=0)
        if start_level >= num_levels:
            raise ValueError(f"start_level={start_level} is outside [0, {num_levels}) levels.")
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        self.demote_threshold = demote_threshold
        self.min_episodes = min_episodes
        self.smoothing = check_probability("smoothing", smoothing, open_low=True)
        self.ema_init = ema_init
        big = torch.finfo(torch.get_default_dtype()).max
        self._ema_start = 0.0 if ema_init is None else min(max(ema_init, -big), big)  # saturated to the state's dtype
        self._success_known = False  # whether a batch had a known (non-NaN) success
        self._warned_unknown = False
        self.per_env = per_env
        self.start_level = start_level
        rows = num_envs if per_env else 1
        self.state = TensorDict(
            {
                "level": torch.full((rows,), start_level, dtype=torch.int64),
                "ema": torch.full((rows,), self._ema_start),
                "count": torch.zeros(rows, dtype=torch.int64),
                "promotions": torch.zeros((), dtype=torch.int64),
                "demotions": torch.zeros((), dtype=torch.int64),
            },
            device=self.device,
        )
        # Per level: the EMA that promotes from it (+inf at the top) and the EMA that demotes
        # from it (-inf at the bottom, and everywhere without demote_threshold).
        up = [*_per_rung(self.threshold, rungs), math.inf]
        down = [
            -math.inf,
            *(_per_rung(demote_threshold, rungs) if demote_threshold is not None else [-math.inf] * rungs),
        ]
        self._promote_at = torch.tensor(up, dtype=self.state["ema"].dtype, device=self.device)
        self._demote_at = torch.tensor(down, dtype=self.state["ema"].dtype, device=self.device)

    def _check_hysteresis(self, demote: float | list[float], rungs: int) -> None:
        """Raise if a demotion threshold is not below the promotion thresholds it must undercut."""
        if not isinstance(demote, list) and not isinstance(self.threshold, list):
            if demote >= self.threshold:
                raise ValueError(
                    f"demote_threshold={demote} must be < threshold={self.threshold}, "
                    "or the level would move both ways at once."
                )
            return
        up, down = _per_rung(self.threshold, rungs), _per_rung(demote, rungs)
        for i in range(rungs):
            if down[i] >= up[i]:  # the rung's own promotion threshold
                raise ValueError(
                    f"demote_threshold={demote} must lie below threshold={self.threshold} on every rung: "
                    f"rung {i} (level {i} <-> {i + 1}) has demote_threshold {down[i]} >= threshold {up[i]}."
                )
            if i + 1 < rungs and down[i] >= up[i + 1]:  # level i + 1 would move both ways at once
                raise ValueError(
                    f"demote_threshold={demote} must lie below threshold={self.threshold} on every level: "
                    f"level {i + 1} demotes below {down[i]} and promotes from {up[i + 1]}, "
                    "so it would move both ways at once."
                )

    @property
    def level(self) -> Tensor:
        """Current level(s): shape ``[num_envs]`` with ``per_env``, else ``[1]``."""
        return self.state["level"]

    @property
    def num_levels(self) -> int:
        """Number of levels."""
        return self.space.num_tasks

    def _on_load(self) -> None:
        self._promote_at = self._promote_at.to(self.device)
        self._demote_at = self._demote_at.to(self.device)

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        if not self.per_env:
            return self.state["level"].expand(num).clone()
        if env_ids is None:
            raise ValueError("This LevelCurriculum has per_env=True: sample(env_ids=...) must say which envs.")
        return self.state["level"][env_ids]

    def update(self, feedback: TensorDictBase) -> None:
        """Learn from finished episodes (see :meth:`Curriculum.update <currlearn.base.Curriculum.update>`).

        Raises:
            ValueError: as :meth:`Curriculum.update <currlearn.base.Curriculum.update>`; with
                ``metric="success"``, feedback without a ``"success"`` entry. Nothing is
                changed then.
        """
        if self.metric_key == "success" and isinstance(feedback, TensorDictBase) and "success" not in feedback.keys():
            raise ValueError(
                "metric='success' but the feedback has no 'success' entry: the env reports no success flag; "
                f"use metric='return' or set success_key (it has {sorted(map(str, feedback.keys()))})."
            )
        super().update(feedback)

    def _check_feedback(self, feedback: TensorDictBase) -> None:
        super()._check_feedback(feedback)
        if self.per_env and "env_id" not in feedback.keys():
            raise ValueError("per_env=True needs 'env_id' in the feedback.")
        if self.metric_key == "success" and not self._success_known and feedback.numel():
            # Until one success is known (normally the first batch), look for one: one sync
            # per batch, none afterwards.
            if bool((~torch.isnan(feedback["success"])).any()):
                self._success_known = True
            elif not self._warned_unknown:
                self._warned_unknown = True
                warnings.warn(
                    "LevelCurriculum(metric='success'): every success in the feedback so far is NaN (unknown), "
                    "so these episodes are skipped (counted in skipped_nonfinite); does the env report a success "
                    "flag? Use metric='return' or set success_key.",
                    UserWarning,
                    stacklevel=4,
                )

    def _update(self, feedback: TensorDictBase) -> None:
        level, ema, count = self.state["level"], self.state["ema"], self.state["count"]
        # update() dropped non-finite returns and metrics and successes outside [0, 1]; this
        # skips and counts the unknown (NaN) successes.
        values, valid = self._metric_values(feedback, torch.float64)
        row = feedback["env_id"] if self.per_env else torch.zeros_like(feedback["task"])
        use = valid & (feedback["task"] == level[row])
        dump = level.numel()
        row = torch.where(use, row, torch.full_like(row, dump))  # off-level or skipped -> dump row
        values = torch.where(use, values, 0.0)
        n = torch.zeros(dump + 1, dtype=torch.float64, device=self.device).index_add_(0, row, use.to(torch.float64))
        total = torch.zeros(dump + 1, dtype=torch.float64, device=self.device).index_add_(0, row, values)
        n, total = n[:-1], total[:-1]
        seen = n > 0
        big = torch.finfo(ema.dtype).max
        mean = (total / n.clamp_min(1)).clamp(-big, big).to(ema.dtype)
        keep = (1 - self.smoothing) ** n.to(ema.dtype)
        blend = (keep * ema + (1 - keep) * mean).clamp(-big, big)  # two finite terms: never NaN
        new_ema = blend if self.ema_init is not None else torch.where(count > 0, blend, mean)
        ema.copy_(torch.where(seen, new_ema, ema))
        count += n.to(torch.int64)

        ready = count >= self.min_episodes
        up_at, down_at = self._promote_at.index_select(0, level), self._demote_at.index_select(0, level)
        if self.compare == "gt":
            passed, failed = ema > up_at, ema <= down_at
        else:
            passed, failed = ema >= up_at, ema < down_at
        promote = ready & passed & (level < self.num_levels - 1)
        demote = ready & failed & (level > 0) & ~promote
        moved = promote | demote
        level += promote.to(torch.int64) - demote.to(torch.int64)
        ema.masked_fill_(moved, self._ema_start)
        count.masked_fill_(moved, 0)
        self.state["promotions"] += promote.sum()
        self.state["demotions"] += demote.sum()

    def _metrics(self) -> dict[str, Tensor | float]:
        level = self.state["level"].to(torch.get_default_dtype())
        out: dict[str, Tensor | float] = {
            "level_mean": level.mean(),
            "level_max": level.max(),
            "level_min": level.min(),
            "ema_mean": self.state["ema"].double().mean().to(self.state["ema"].dtype),  # no float32 overflow
            "promotions": self.state["promotions"],
            "demotions": self.state["demotions"],
        }
        if not self.per_env:
            params = self.space.params(self.state["level"])
            out.update({f"param/{k}": v[0] for k, v in params.items()})
        return out
