"""Ordered stages, each with env parameters and stop conditions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum, check_choice, check_positive_int
from currlearn.spaces import DiscreteSpace

__all__ = ["SequentialCurriculum", "Stage", "register_predicate"]

Predicate = Callable[["SequentialCurriculum", dict[str, float]], bool]
_PREDICATES: dict[str, Predicate] = {}


def register_predicate(name: str, fn: Predicate) -> Predicate:
    """Register a stop predicate that stages can name in ``Stage.predicates``.

    Args:
        name (str): the name stages use (also from YAML configs).
        fn (callable): ``(curriculum, stats) -> bool``; ``stats`` has the keys of
            :meth:`SequentialCurriculum.stage_stats`.

    Returns:
        ``fn``, so it can be used as a decorator factory's result.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"predicate name must be a non-empty string, got {name!r}.")
    if not callable(fn):
        raise TypeError(f"predicate {name!r} must be callable, got {type(fn).__name__}.")
    _PREDICATES[name] = fn
    return fn


@dataclass
class Stage:
    """One stage of a :class:`SequentialCurriculum`.

    Args:
        params: env parameter values during the stage.
        max_episodes: stop after this many finished episodes.
        max_steps: stop after this many env steps (summed lengths of finished episodes).
        min_avg_reward: stop when the mean return of the last ``reward_window`` episodes is
            at least this.
        max_reward_std: stop when the std of the last ``reward_window`` returns is at most this.
        min_evaluation_score: stop when the last score given to
            :meth:`SequentialCurriculum.report_evaluation` is at least this.
        max_wall_time: stop after this many seconds in the stage.
        reward_window: episodes in the moving window of ``min_avg_reward``/``max_reward_std``.
        mode: ``"any"`` stops when one set condition holds, ``"all"`` when all do.
        predicates: names given to :func:`register_predicate`, or callables, treated as
            further conditions.
    """

    params: dict[str, float]
    max_episodes: int | None = None
    max_steps: int | None = None
    min_avg_reward: float | None = None
    max_reward_std: float | None = None
    min_evaluation_score: float | None = None
    max_wall_time: float | None = None
    reward_window: int = 100
    mode: str = "any"
    predicates: list[Any] = field(default_factory=list)

    def conditions(self) -> list[str]:
        """Names of the conditions this stage sets."""
        names = [
            "max_episodes",
            "max_steps",
            "min_avg_reward",
            "max_reward_std",
            "min_evaluation_score",
            "max_wall_time",
        ]
        return [n for n in names if getattr(self, n) is not None] + [f"predicate:{p}" for p in self.predicates]


_NUMERIC = ("max_episodes", "max_steps", "min_avg_reward", "max_reward_std", "min_evaluation_score", "max_wall_time")


class SequentialCurriculum(Curriculum):
    """Play stages in order; leave a stage when its stop conditions hold.

    Conditions are checked after every :meth:`update` (tensor comparisons, no host sync) and
    at every :meth:`step` (which also evaluates wall time and predicates). The last stage
    never ends. A task is a stage index.

    Args:
        stages (list of Stage or dict): the stages; dicts are passed to :class:`Stage`. Every
            stage sets the same parameter names. Every stage but the last needs a condition.
        seed (int, optional): generator seed (checkpointed).
        device: device of the state.

    Examples:
        >>> import torch
        >>> from currlearn.feedback import episode_feedback
        >>> cur = SequentialCurriculum([
        ...     {"params": {"m": 0.5}, "max_episodes": 3},
        ...     {"params": {"m": 1.0}, "min_avg_reward": -1.0, "reward_window": 2},
        ...     {"params": {"m": 2.0}},
        ... ])
        >>> cur.update(episode_feedback(torch.tensor([0, 0, 0]), torch.zeros(3)))
        >>> cur.stage
        tensor(1)
    """

    def __init__(
        self,
        stages: Sequence[Stage | Mapping[str, Any]],
        *,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(stages, Sequence) or not stages:
            raise ValueError(f"stages must be a non-empty list of Stage or dict, got {stages!r}.")
        parsed = [self._parse(i, s) for i, s in enumerate(stages)]
        names = list(parsed[0].params)
        for i, s in enumerate(parsed):
            if list(s.params) != names:
                raise ValueError(
                    f"stages[{i}].params sets {list(s.params)}, but stages[0] sets {names}; every stage must set the same parameters."
                )
            if i < len(parsed) - 1 and not s.conditions():
                raise ValueError(
                    f"stages[{i}] has no stop condition, so the stages after it would never run; set e.g. max_episodes."
                )
        space = DiscreteSpace({k: [float(s.params[k]) for s in parsed] for k in names})
        super().__init__(space, seed=seed, device=device)
        self.stages = parsed
        window = max(s.reward_window for s in parsed)
        nan = float("nan")

        def col(name: str, default: float) -> Tensor:
            return torch.tensor([default if getattr(s, name) is None else float(getattr(s, name)) for s in parsed])

        # Per-stage thresholds as tensors; NaN marks an unset condition.
        self._limits = TensorDict({n: col(n, nan) for n in _NUMERIC}, batch_size=[len(parsed)], device=self.device)
        self._window = torch.tensor([s.reward_window for s in parsed], device=self.device)
        self._all = torch.tensor([s.mode == "all" for s in parsed], device=self.device)
        self._has_predicates = torch.tensor([bool(s.predicates) for s in parsed], device=self.device)
        self.state = TensorDict(
            {
                "stage": torch.zeros((), dtype=torch.int64),
                "episodes": torch.zeros((), dtype=torch.int64),
                "steps": torch.zeros((), dtype=torch.int64),
                "returns": torch.zeros(window),
                "returns_count": torch.zeros((), dtype=torch.int64),
                "evaluation_score": torch.full((), nan),
                "wall_time": torch.zeros((), dtype=torch.float64),
            },
            device=self.device,
        )
        self._clock = time.monotonic()

    @staticmethod
    def _parse(i: int, s: Stage | Mapping[str, Any]) -> Stage:
        if isinstance(s, Mapping):
            unknown = set(s) - set(Stage.__dataclass_fields__)
            if unknown:
                raise ValueError(
                    f"stages[{i}] has unknown key(s) {sorted(unknown)}; allowed: {sorted(Stage.__dataclass_fields__)}."
                )
            s = Stage(**{k: (dict(v) if k == "params" else list(v) if k == "predicates" else v) for k, v in s.items()})
        if not isinstance(s, Stage):
            raise TypeError(f"stages[{i}] must be a Stage or a dict, got {type(s).__name__}.")
        if not isinstance(s.params, Mapping) or not s.params:
            raise ValueError(f"stages[{i}].params must be a non-empty mapping of name -> value, got {s.params!r}.")
        for k in ("max_episodes", "max_steps"):
            if getattr(s, k) is not None:
                check_positive_int(f"stages[{i}].{k}", getattr(s, k))
        for k in ("min_avg_reward", "max_reward_std", "min_evaluation_score", "max_wall_time"):
            v = getattr(s, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"stages[{i}].{k} must be a finite number, got {v!r}.")
        if s.max_reward_std is not None and s.max_reward_std < 0:
            raise ValueError(f"stages[{i}].max_reward_std must be >= 0, got {s.max_reward_std}.")
        if s.max_wall_time is not None and s.max_wall_time <= 0:
            raise ValueError(f"stages[{i}].max_wall_time must be > 0 seconds, got {s.max_wall_time}.")
        check_positive_int(f"stages[{i}].reward_window", s.reward_window)
        check_choice(f"stages[{i}].mode", s.mode, ("any", "all"))
        for p in s.predicates:
            if isinstance(p, str) and p not in _PREDICATES:
                raise ValueError(
                    f"stages[{i}].predicates names {p!r}, which is not registered; registered: {sorted(_PREDICATES)}."
                )
            if not isinstance(p, str) and not callable(p):
                raise TypeError(f"stages[{i}].predicates must hold names or callables, got {p!r}.")
        return s

    @property
    def stage(self) -> Tensor:
        """Index of the current stage (0-d int64 tensor)."""
        return self.state["stage"]

    def report_evaluation(self, score: float | Tensor) -> None:
        """Give the latest evaluation score (for ``min_evaluation_score``) and check the stage."""
        self.state["evaluation_score"].copy_(torch.as_tensor(score, dtype=self.state["evaluation_score"].dtype))
        self._check(with_host_conditions=True)

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        return self.state["stage"].expand(num).clone()

    def _update(self, feedback: TensorDictBase) -> None:
        st = self.state
        on_stage = feedback["task"] == st["stage"]
        returns = feedback["return"].to(st["returns"].dtype)
        n = on_stage.sum()
        st["episodes"] += n
        st["steps"] += torch.where(on_stage, feedback["length"], 0).sum()
        # Append the on-stage returns to the ring buffer, in order.
        cap = st["returns"].numel()
        rank = torch.cumsum(on_stage.to(torch.int64), 0) - 1
        pos = (st["returns_count"] + rank) % cap
        keep = on_stage & (rank >= n - cap)  # only the last `cap` of this batch
        st["returns"].index_put_((pos[keep],), returns[keep])
        st["returns_count"] += n
        self._check(with_host_conditions=False)

    def _on_step(self) -> None:
        self._check(with_host_conditions=True)

    def stage_stats(self) -> dict[str, Tensor]:
        """Statistics of the current stage: episodes, steps, window mean/std, eval score, wall time."""
        st = self.state
        now = time.monotonic()
        st["wall_time"] += now - self._clock
        self._clock = now
        window = self._window[st["stage"]]
        cap = st["returns"].numel()
        count = torch.minimum(st["returns_count"], window)
        # Last `window` returns of the ring buffer.
        idx = (st["returns_count"] - 1 - torch.arange(cap, device=self.device)) % cap
        mask = torch.arange(cap, device=self.device) < count
        vals = st["returns"][idx]
        mean = torch.where(mask, vals, 0).sum() / count.clamp_min(1)
        var = torch.where(mask, (vals - mean) ** 2, 0).sum() / (count - 1).clamp_min(1)
        full = count >= window
        nan = torch.tensor(float("nan"), device=self.device)
        return {
            "episodes": st["episodes"],
            "steps": st["steps"],
            "avg_reward": torch.where(full, mean, nan),
            "reward_std": torch.where(full, var.sqrt(), nan),
            "evaluation_score": st["evaluation_score"],
            "wall_time": st["wall_time"],
        }

    def _check(self, with_host_conditions: bool) -> None:
        st = self.state
        stats = self.stage_stats()
        lim = self._limits[st["stage"]]
        met = [
            stats["episodes"] >= lim["max_episodes"],
            stats["steps"] >= lim["max_steps"],
            stats["avg_reward"] >= lim["min_avg_reward"],
            stats["reward_std"] <= lim["max_reward_std"],
            stats["evaluation_score"] >= lim["min_evaluation_score"],
            stats["wall_time"] >= lim["max_wall_time"],
        ]
        is_set = torch.stack([~torch.isnan(lim[n]) for n in _NUMERIC])
        cond = torch.stack(met) & is_set  # NaN comparisons are False already
        if not with_host_conditions:
            cond[-1] = False  # wall time is checked once per iteration
        extra: list[bool] = []
        if with_host_conditions:
            stage = self.stages[int(st["stage"])]
            plain = {k: float(v) for k, v in stats.items()}
            extra = [bool((_PREDICATES[p] if isinstance(p, str) else p)(self, plain)) for p in stage.predicates]
        extra_t = torch.tensor(extra, dtype=torch.bool, device=self.device)
        any_met = cond.any() | extra_t.any()
        all_met = (cond | ~is_set).all() & extra_t.all() & (is_set.any() | bool(extra))
        if not with_host_conditions:  # predicates and wall time are checked once per iteration
            all_met &= ~self._has_predicates[st["stage"]] & torch.isnan(lim["max_wall_time"])
        advance = torch.where(self._all[st["stage"]], all_met, any_met) & (st["stage"] < len(self.stages) - 1)
        self._advance(advance)

    def _advance(self, advance: Tensor) -> None:
        st = self.state
        st["stage"] += advance.to(torch.int64)
        for k in ("episodes", "steps", "returns_count"):
            st[k].masked_fill_(advance, 0)
        st["evaluation_score"].masked_fill_(advance, float("nan"))
        st["wall_time"].masked_fill_(advance, 0.0)

    def _on_load(self) -> None:
        self._clock = time.monotonic()
        device = self.device
        self._limits = self._limits.to(device)
        self._window, self._all = self._window.to(device), self._all.to(device)
        self._has_predicates = self._has_predicates.to(device)

    def _metrics(self) -> dict[str, Tensor | float]:
        out: dict[str, Tensor | float] = {"stage": self.state["stage"]}
        out.update({f"stage/{k}": v for k, v in self.stage_stats().items()})
        params = self.space.params(self.state["stage"].reshape(1))
        out.update({f"param/{k}": v[0] for k, v in params.items()})
        return out
