"""Ordered stages, each with env parameters and stop conditions."""

from __future__ import annotations

import inspect
import math
import numbers
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

Predicate = Callable[[Any, dict[str, float]], bool]
"""A stop predicate: called as ``predicate(curriculum, stats)`` where a stage lists it, as
``predicate(value, stats)`` where a stage maps it to a value (see :class:`Stage`)."""
_PREDICATES: dict[str, Predicate] = {}

_NO_VALUE: Any = object()  # marks a predicate listed without a value: called with the curriculum


def register_predicate(name: str, fn: Predicate) -> Predicate:
    """Register a stop predicate that stages can name in ``Stage.predicates``.

    Args:
        name (str): the name stages use (also from YAML configs).
        fn (callable): two positional arguments and a truth value. A stage that lists the
            name (``predicates: [name]``) calls ``fn(curriculum, stats)``; a stage that maps it
            to a value (``predicates: {name: 4}``) calls ``fn(4, stats)``. ``stats`` has the keys
            of :meth:`SequentialCurriculum.stage_stats`, as floats.

    Returns:
        ``fn``, so it can be used as a decorator factory's result.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"predicate name must be a non-empty string, got {name!r}.")
    if not callable(fn):
        raise TypeError(f"predicate {name!r} must be callable, got {type(fn).__name__}.")
    _PREDICATES[name] = fn
    return fn


def _predicate_entries(predicates: Any, where: str) -> list[tuple[Any, Any]]:
    """``predicates`` as ``(name or callable, value)`` pairs; the value is ``_NO_VALUE`` for
    entries of the list form.

    Raises:
        TypeError: ``predicates`` is neither a list nor a mapping, or a list entry is a mapping
            of other than one entry.
    """
    forms = (
        "a list of predicate names or callables (each called as predicate(curriculum, stats)) or a "
        "mapping of names or callables to values (each called as predicate(value, stats))"
    )
    if isinstance(predicates, Mapping):
        return list(predicates.items())
    if isinstance(predicates, (str, bytes)) or not isinstance(predicates, Sequence):
        raise TypeError(f"{where} must be {forms}; got {predicates!r} ({type(predicates).__name__}).")
    out: list[tuple[Any, Any]] = []
    for j, p in enumerate(predicates):
        if isinstance(p, Mapping):
            if len(p) != 1:
                raise TypeError(
                    f"{where}[{j}] is a mapping of {len(p)} entries, {dict(p)!r}; a list entry that is a "
                    "mapping gives one predicate its value, e.g. {my_predicate: 4}."
                )
            out.append(next(iter(p.items())))
        else:
            out.append((p, _NO_VALUE))
    return out


def _predicate_label(key: Any, value: Any) -> str:
    name = key if isinstance(key, str) else getattr(key, "__name__", repr(key))
    return f"predicate:{name}" if value is _NO_VALUE else f"predicate:{name}={value!r}"


@dataclass
class Stage:
    """One stage of a :class:`SequentialCurriculum`.

    The window statistics only count the stage's finite returns, and are NaN until the stage
    has seen a full window of them.

    Args:
        params: env parameter values during the stage.
        max_episodes: stop after this many finished episodes.
        max_steps: stop after this many env steps (summed lengths of finished episodes).
        min_avg_reward: stop when the mean of the last ``avg_reward_window`` returns is at least
            this.
        max_reward_std: stop when the sample standard deviation (``ddof=1``: the squared
            deviations from the mean are divided by ``n - 1``) of the last
            ``reward_std_window`` returns is at most this. (The population std, ``ddof=0``, of
            ``n`` returns is this std times ``sqrt((n - 1) / n)``.)
        min_evaluation_score: stop when the last score given to
            :meth:`SequentialCurriculum.report_evaluation` is at least this.
        max_wall_time: stop after this many seconds in the stage, read from the curriculum's
            ``clock`` from the moment the stage started.
        reward_window: the window of both ``min_avg_reward`` and ``max_reward_std``, for each of
            them that ``avg_reward_window`` / ``reward_std_window`` leaves unset.
        mode: ``"any"`` stops when one set condition holds, ``"all"`` when all do.
        predicates: further conditions, in one of two forms. A list of names given to
            :func:`register_predicate`, or callables: each is called as
            ``predicate(curriculum, stats)``. A mapping of such names or callables to values:
            each is called as ``predicate(value, stats)`` (``{"my_pred": 4}`` calls
            ``my_pred(4, stats)``). A list may also hold one-entry mappings
            (``["two_episodes", {"my_pred": 4}]``). ``stats`` is
            :meth:`SequentialCurriculum.stage_stats` as floats.
        avg_reward_window: episodes in the window of ``min_avg_reward`` and of the
            ``avg_reward`` statistic; default (None): ``reward_window``.
        reward_std_window: episodes in the window of ``max_reward_std`` and of the
            ``reward_std`` statistic, at least 2 where ``max_reward_std`` is set; default
            (None): ``reward_window``.
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
    predicates: Any = field(default_factory=list)  # a list or a mapping; Any for OmegaConf
    avg_reward_window: int | None = None
    reward_std_window: int | None = None

    @property
    def avg_window(self) -> int:
        """The window of ``min_avg_reward``: ``avg_reward_window``, else ``reward_window``."""
        return self.reward_window if self.avg_reward_window is None else self.avg_reward_window

    @property
    def std_window(self) -> int:
        """The window of ``max_reward_std``: ``reward_std_window``, else ``reward_window``."""
        return self.reward_window if self.reward_std_window is None else self.reward_std_window

    def conditions(self) -> list[str]:
        """Names of the conditions this stage sets (a predicate with a value as ``name=value``)."""
        names = [
            "max_episodes",
            "max_steps",
            "min_avg_reward",
            "max_reward_std",
            "min_evaluation_score",
            "max_wall_time",
        ]
        entries = _predicate_entries(self.predicates, "predicates")
        return [n for n in names if getattr(self, n) is not None] + [_predicate_label(k, v) for k, v in entries]


_NUMERIC = ("max_episodes", "max_steps", "min_avg_reward", "max_reward_std", "min_evaluation_score", "max_wall_time")


def _monotonic() -> float:
    return time.monotonic()


class SequentialCurriculum(Curriculum):
    """Play stages in order; leave a stage when its stop conditions hold.

    Conditions are checked after every :meth:`update` (tensor comparisons, no host sync) and
    at every :meth:`step` (which also evaluates wall time and predicates). The last stage
    never ends. A task is a stage index.

    Returns enter the windows in float64, and only finite ones: non-finite returns are counted
    in the ``skipped_nonfinite`` counter (see :meth:`Curriculum.update`) and change nothing
    else. The window mean and standard deviation are computed on the returns scaled by a power
    of two, so they stay finite for any finite returns whose statistics float64 can hold.

    A stage's wall time runs from the moment the stage starts (the first stage: its first
    :meth:`sample`, or the first check if that comes earlier, not construction; where worker
    replicas do the sampling, the authoritative curriculum's first update or step; a later
    stage: the check that ended the previous one), read from ``clock`` at every check
    (:meth:`update`, :meth:`step`, :meth:`report_evaluation`, :meth:`stage_stats`). The state
    holds the elapsed seconds as of the last check, never a clock reading: a loaded curriculum
    continues from the saved elapsed time, counting from the load.

    Args:
        stages (list of Stage or dict): the stages; dicts are passed to :class:`Stage`. Every
            stage sets the same parameter names. Every stage but the last needs a condition.
        seed (int, optional): generator seed (checkpointed).
        device: device of the state.
        clock (callable, optional): ``() -> seconds`` of a monotonic clock, for
            ``max_wall_time``; default (None): :func:`time.monotonic`. (Tests and replays pass
            clocks of their own.)

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
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(stages, Sequence) or not stages:
            raise ValueError(f"stages must be a non-empty list of Stage or dict, got {stages!r}.")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}.")
        self._clock: Callable[[], float] = _monotonic if clock is None else clock
        parsed = [self._parse(i, s) for i, s in enumerate(stages)]
        names = list(parsed[0].params)
        for i, s in enumerate(parsed):
            if list(s.params) != names:
                raise ValueError(
                    f"stages[{i}].params sets {list(s.params)}, but stages[0] sets {names}; "
                    "every stage must set the same parameters."
                )
            if i < len(parsed) - 1 and not s.conditions():
                raise ValueError(
                    f"stages[{i}] has no stop condition, so the stages after it would never run; set e.g. max_episodes."
                )
        space = DiscreteSpace({k: [float(s.params[k]) for s in parsed] for k in names})
        super().__init__(space, seed=seed, device=device)
        self.stages = parsed
        self._predicates = [_predicate_entries(s.predicates, f"stages[{i}].predicates") for i, s in enumerate(parsed)]
        window = max(max(s.avg_window, s.std_window) for s in parsed)
        nan = float("nan")

        def col(name: str) -> Tensor:
            values = [nan if getattr(s, name) is None else float(getattr(s, name)) for s in parsed]
            return torch.tensor(values, dtype=torch.float64)  # exact counts up to 2**53

        # Per-stage thresholds as tensors; NaN marks an unset condition.
        self._limits = TensorDict({n: col(n) for n in _NUMERIC}, batch_size=[len(parsed)], device=self.device)
        self._avg_window = torch.tensor([s.avg_window for s in parsed], device=self.device)
        self._std_window = torch.tensor([s.std_window for s in parsed], device=self.device)
        self._all = torch.tensor([s.mode == "all" for s in parsed], device=self.device)
        self._has_predicates = torch.tensor([bool(p) for p in self._predicates], device=self.device)
        self.state = TensorDict(
            {
                "stage": torch.zeros((), dtype=torch.int64),
                "episodes": torch.zeros((), dtype=torch.int64),
                "steps": torch.zeros((), dtype=torch.int64),
                "returns": torch.zeros(window, dtype=torch.float64),
                "returns_count": torch.zeros((), dtype=torch.int64),
                "evaluation_score": torch.zeros((), dtype=torch.float64),  # valid where evaluations > 0
                "evaluations": torch.zeros((), dtype=torch.int64),  # finite scores reported in the stage
                "wall_time": torch.zeros((), dtype=torch.float64),  # seconds in the stage
            },
            device=self.device,
        )
        # the first stage's clock starts at the first sample, update or check (not at construction:
        # building the envs and the trainer is no time spent in the stage)
        self._last_read: float | None = None

    @staticmethod
    def _parse(i: int, s: Stage | Mapping[str, Any]) -> Stage:
        if isinstance(s, Mapping):
            unknown = set(s) - set(Stage.__dataclass_fields__)
            if unknown:
                raise ValueError(
                    f"stages[{i}] has unknown key(s) {sorted(unknown)}; allowed: {sorted(Stage.__dataclass_fields__)}."
                )

            def plain(k: str, v: Any) -> Any:
                if k == "params" or (k == "predicates" and isinstance(v, Mapping)):
                    return dict(v)
                if k == "predicates" and isinstance(v, Sequence) and not isinstance(v, (str, bytes)):
                    return list(v)
                return v

            s = Stage(**{k: plain(k, v) for k, v in s.items()})
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
        for k in ("avg_reward_window", "reward_std_window"):
            if getattr(s, k) is not None:
                check_positive_int(f"stages[{i}].{k}", getattr(s, k))
        if s.max_reward_std is not None and s.std_window < 2:
            which = "reward_window" if s.reward_std_window is None else "reward_std_window"
            raise ValueError(
                f"stages[{i}].max_reward_std needs a window of at least 2 returns (the sample std of one "
                f"return is undefined), but its window ({which}) is {s.std_window}."
            )
        check_choice(f"stages[{i}].mode", s.mode, ("any", "all"))
        for key, value in _predicate_entries(s.predicates, f"stages[{i}].predicates"):
            if isinstance(key, str):
                if key not in _PREDICATES:
                    raise ValueError(
                        f"stages[{i}].predicates names {key!r}, which is not registered; "
                        f"registered: {sorted(_PREDICATES)}."
                    )
                fn = _PREDICATES[key]
            elif callable(key):
                fn = key
            else:
                raise TypeError(f"stages[{i}].predicates must hold names or callables, got {key!r}.")
            _check_predicate_signature(f"stages[{i}].predicates", key, fn, valued=value is not _NO_VALUE)
        return s

    @property
    def stage(self) -> Tensor:
        """Index of the current stage (0-d int64 tensor)."""
        return self.state["stage"]

    def report_evaluation(self, score: float | Tensor) -> None:
        """Give the latest evaluation score (for ``min_evaluation_score``) and check the stage.

        A non-finite score (NaN, ±inf) is counted in the ``skipped_nonfinite`` counter and
        leaves the last score in place.
        """
        score = torch.as_tensor(score, dtype=torch.float64, device=self.device).reshape(())
        finite = torch.isfinite(score)
        self.counters["skipped_nonfinite"] += (~finite).to(torch.int64)
        current = self.state["evaluation_score"]
        current.copy_(torch.where(finite, score, current))
        self.state["evaluations"] += finite.to(torch.int64)
        self._check(with_host_conditions=True)

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        if self._last_read is None:  # the first stage starts with its first episodes
            self._last_read = self._read_clock()
        return self.state["stage"].expand(num).clone()

    def _update(self, feedback: TensorDictBase) -> None:
        st = self.state
        returns = feedback["return"].to(torch.float64)
        # Curriculum.update drops non-finite returns already; this keeps the windows finite for
        # any caller, and counts what it drops.
        finite = torch.isfinite(returns)
        self.counters["skipped_nonfinite"] += (~finite).sum()
        on_stage = (feedback["task"] == st["stage"]) & finite
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

    def _read_clock(self) -> float:
        now = self._clock()
        if isinstance(now, bool) or not isinstance(now, numbers.Real) or not math.isfinite(now):
            raise ValueError(f"clock must return finite seconds (a float), got {now!r} from {self._clock!r}.")
        return float(now)

    def _tick(self) -> None:
        """Add the seconds since the last clock reading to the stage's wall time."""
        now = self._read_clock()
        if self._last_read is not None:  # (None: the first stage starts now)
            self.state["wall_time"] += max(now - self._last_read, 0.0)  # a clock going back adds nothing
        self._last_read = now

    def stage_stats(self) -> dict[str, Tensor]:
        """Statistics of the current stage (0-d tensors).

        Keys: ``episodes`` and ``steps`` (finished in the stage, finite returns only),
        ``avg_reward`` (mean of the last ``avg_reward_window`` returns), ``reward_std``
        (sample standard deviation, ``ddof=1``, of the last ``reward_std_window`` returns),
        both NaN until their window is full, ``evaluation_score`` (NaN until reported) and
        ``wall_time`` (seconds since the stage started).
        """
        st = self.state
        self._tick()
        stage = st["stage"]
        cap = st["returns"].numel()
        arange = torch.arange(cap, device=self.device)
        vals = st["returns"][(st["returns_count"] - 1 - arange) % cap]  # newest first
        avg_window, std_window = self._avg_window[stage], self._std_window[stage]
        n_avg = torch.minimum(st["returns_count"], avg_window)
        n_std = torch.minimum(st["returns_count"], std_window)
        in_avg, in_std = arange < n_avg, arange < n_std
        # Divide by a power of two (exact) near the largest magnitude, so the scaled values lie
        # in (-2, 2), and shift them by the newest one: sums and squares stay finite for any
        # finite float64 returns, and equal returns have a std of exactly 0.
        biggest = torch.where(in_avg | in_std, vals.abs(), 0).max()
        exponent = (torch.frexp(biggest).exponent - 1).clamp(-1022, 1023)
        scale = torch.ldexp(torch.ones((), dtype=vals.dtype, device=self.device), exponent)
        x = vals / scale
        d = x - x[0]
        mean_d = torch.where(in_avg, d, 0).sum() / n_avg.clamp_min(1)
        mean_d_std = torch.where(in_std, d, 0).sum() / n_std.clamp_min(1)
        var = torch.where(in_std, (d - mean_d_std) ** 2, 0).sum() / (n_std - 1).clamp_min(1)
        nan = torch.tensor(float("nan"), dtype=vals.dtype, device=self.device)
        return {
            "episodes": st["episodes"],
            "steps": st["steps"],
            "avg_reward": torch.where(n_avg >= avg_window, (x[0] + mean_d) * scale, nan),
            "reward_std": torch.where((n_std >= std_window) & (std_window >= 2), var.sqrt() * scale, nan),
            "evaluation_score": torch.where(st["evaluations"] > 0, st["evaluation_score"], nan),
            "wall_time": st["wall_time"],
        }

    def _check(self, with_host_conditions: bool) -> None:
        st = self.state
        stats = self.stage_stats()  # reads the clock: an advance below starts the next stage now
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
            extra = self._call_predicates(int(st["stage"]), stats)
        extra_t = torch.tensor(extra, dtype=torch.bool, device=self.device)
        any_met = cond.any() | extra_t.any()
        all_met = (cond | ~is_set).all() & extra_t.all() & (is_set.any() | bool(extra))
        if not with_host_conditions:  # predicates and wall time are checked once per iteration
            all_met &= ~self._has_predicates[st["stage"]] & torch.isnan(lim["max_wall_time"])
        advance = torch.where(self._all[st["stage"]], all_met, any_met) & (st["stage"] < len(self.stages) - 1)
        self._advance(advance)

    def _call_predicates(self, stage: int, stats: dict[str, Tensor]) -> list[bool]:
        plain = {k: float(v) for k, v in stats.items()}
        out = []
        for key, value in self._predicates[stage]:
            fn = _PREDICATES[key] if isinstance(key, str) else key
            out.append(bool(fn(self, dict(plain)) if value is _NO_VALUE else fn(value, dict(plain))))
        return out

    def _advance(self, advance: Tensor) -> None:
        # The next stage's clock starts at the reading of the check that decided the advance.
        st = self.state
        st["stage"] += advance.to(torch.int64)
        for k in ("episodes", "steps", "returns_count", "evaluations"):
            st[k].masked_fill_(advance, 0)
        for k in ("evaluation_score", "wall_time"):
            st[k].masked_fill_(advance, 0.0)

    def load_state_dict(self, state_dict: dict[str, Any], *, load_rng: bool = True) -> None:
        """Restore :meth:`state_dict` output (see :meth:`Curriculum.load_state_dict`).

        The stage's wall time continues from the saved elapsed seconds, counted from now.
        States of earlier versions (float32 windows, NaN for "no evaluation score") load too.
        """
        super().load_state_dict(_upgrade_state_dict(state_dict), load_rng=load_rng)
        self._last_read = self._read_clock()

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ``ValueError`` if ``state_dict`` cannot be loaded; change nothing."""
        super().check_state_dict(_upgrade_state_dict(state_dict))

    def _on_load(self) -> None:
        device = self.device
        self._limits = self._limits.to(device)
        self._avg_window, self._std_window = self._avg_window.to(device), self._std_window.to(device)
        self._all, self._has_predicates = self._all.to(device), self._has_predicates.to(device)

    def _metrics(self) -> dict[str, Tensor | float]:
        out: dict[str, Tensor | float] = {"stage": self.state["stage"]}
        out.update({f"stage/{k}": v for k, v in self.stage_stats().items()})
        params = self.space.params(self.state["stage"].reshape(1))
        out.update({f"param/{k}": v[0] for k, v in params.items()})
        return out


def _upgrade_state_dict(state_dict: Any) -> Any:
    """A state of an earlier version in today's form (a new dict; others are returned as they are).

    Earlier versions kept NaN as "no evaluation score" and no ``evaluations`` count, and their
    float32 windows held ±inf for returns beyond float32's range: those saturate to its bounds.
    """
    state = state_dict.get("state") if isinstance(state_dict, dict) else None
    if not isinstance(state, dict) or "evaluations" in state or not torch.is_tensor(state.get("evaluation_score")):
        return state_dict
    score = state["evaluation_score"]
    finite = torch.isfinite(score)
    state = {**state, "evaluation_score": torch.where(finite, score, 0.0), "evaluations": finite.to(torch.int64)}
    returns = state.get("returns")
    if torch.is_tensor(returns) and returns.is_floating_point():
        state["returns"] = torch.nan_to_num(returns, nan=0.0)
    return {**state_dict, "state": state}


def _check_predicate_signature(where: str, key: Any, fn: Callable[..., Any], *, valued: bool) -> None:
    """Raise ``TypeError`` if ``fn`` cannot take the two positional arguments a stage passes."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): trust the caller
        return
    try:
        signature.bind(None, None)
    except TypeError:
        form = "(value, stats)" if valued else "(curriculum, stats)"
        name = key if isinstance(key, str) else getattr(key, "__name__", repr(key))
        raise TypeError(
            f"{where}: predicate {name!r} is called as predicate{form}, but its signature is {signature}."
        ) from None
