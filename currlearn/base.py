"""The :class:`Curriculum` base class.

A curriculum chooses tasks from a :class:`~currlearn.spaces.TaskSpace` (:meth:`Curriculum.sample`)
and learns from per-episode feedback (:meth:`Curriculum.update`). Its mutable state is one
``TensorDict`` of preallocated tensors (``self.state``) on the curriculum's device, plus a
``torch.Generator`` it owns; both are checkpointed by :meth:`Curriculum.state_dict`.

Two base classes cover the two kinds of decision:

- :class:`Curriculum`: subclasses implement ``_sample(num, env_ids)``, returning tasks directly
  (continuous spaces, schedules, per-env ladders).
- :class:`DiscreteCurriculum`: subclasses implement ``_compute_weights()``, a non-negative tensor
  of shape ``[num_tasks]``; sampling, normalisation and distribution metrics are shared.

Feedback is a ``TensorDict`` with batch size ``[num_episodes]`` (see :mod:`currlearn.feedback`):

========== ==================== ============================================
key        shape / dtype        meaning
========== ==================== ============================================
"task"     [n, *task_shape]     the task the episode played
"return"   [n], float           undiscounted episode return
"length"   [n], int64           episode length in steps
"success"  [n], float           1.0 / 0.0, NaN where the env reports none
"env_id"   [n], int64           index of the env that played it (optional)
"metric"   [n], float           a user metric per episode (optional)
========== ==================== ============================================

A curriculum with a ``metric=`` argument learns from ``"return"``, ``"success"`` or a user
metric: a name given to :func:`~currlearn.metrics.register_metric` or a callable over the
batch (see :mod:`currlearn.metrics`); :meth:`Curriculum.make_tracker` then builds a tracker
that computes it into the ``"metric"`` entry.

Examples:
    >>> import torch
    >>> from currlearn.base import DiscreteCurriculum
    >>> from currlearn.spaces import DiscreteSpace
    >>> class PreferLast(DiscreteCurriculum):
    ...     def _compute_weights(self):
    ...         return torch.arange(1.0, self.space.num_tasks + 1, device=self.device)
    >>> cur = PreferLast(DiscreteSpace(num_tasks=4), seed=0)
    >>> cur.weights()
    tensor([0.1000, 0.2000, 0.3000, 0.4000])
    >>> cur.sample(3).shape
    torch.Size([3])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

from currlearn.feedback import EpisodeTracker
from currlearn.functional import finite, group_by_task, sample_from_cdf
from currlearn.metrics import BUILTIN_METRICS, MetricLike, StepMetric, register_metric, resolve_metric
from currlearn.spaces import TaskSpace
from currlearn.stats import TaskStats

__all__ = [
    "METRICS",
    "Curriculum",
    "DiscreteCurriculum",
    "check_choice",
    "check_metric",
    "check_positive_int",
    "check_probability",
    "register_metric",
]

STATE_VERSION = 1


METRICS = BUILTIN_METRICS
"""Per-episode feedback entries a curriculum can learn from by name (``metric=`` arguments);
:func:`~currlearn.metrics.register_metric` adds further names."""


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name`` and listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}.")
    return value  # type: ignore[return-value]


def check_metric(metric: object) -> Any:
    """Return ``metric`` if a curriculum can learn from it, else raise.

    Accepted: a name of :data:`METRICS`, a name given to
    :func:`~currlearn.metrics.register_metric`, or a callable ``batch -> Tensor [envs, time]``
    (see :func:`~currlearn.metrics.resolve_metric`).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: neither a string nor a callable.
    """
    resolve_metric(metric)
    return metric


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def check_probability(name: str, value: object, *, open_low: bool = False) -> float:
    """Return ``value`` as a float if it lies in [0, 1] (or (0, 1]), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {'(0' if open_low else '[0'}, 1], got {value!r}.")
    v = float(value)
    if v > 1 or v < 0 or (open_low and v == 0):
        raise ValueError(f"{name} must lie in {'(0' if open_low else '[0'}, 1], got {value!r}.")
    return v


def check_finite(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


class Curriculum(ABC):
    """Chooses tasks and learns from episodes.

    Subclasses set ``self.state`` (a ``TensorDict`` of their per-task or per-env tensors) in
    ``__init__`` and implement :meth:`_sample`. They may override :meth:`_update` (learn from
    valid feedback), :meth:`_on_step` (once per training iteration) and :meth:`_metrics`.

    **The numeric contract.** Whatever finite values (±1e30, ±3e38 included), NaNs and
    infinities the feedback holds in its return, success, metric or scores:

    - the state stays finite: episodes with a non-finite return or metric, or a success
      outside [0, 1], are counted in the ``skipped_nonfinite`` metric and skipped by
      :meth:`update`; a curriculum that reads other entries (PLR's scores) skips and counts
      their non-finite values the same way; sums and means are accumulated in float64
      (:func:`~currlearn.functional.group_by_task`) and stored saturated to the state's
      dtype (:func:`~currlearn.functional.saturate`), so a sum of two returns near float32's
      largest value is its largest finite value, not infinity;
    - ``weights()`` (where a curriculum has it) is finite, non-negative and sums to 1;
    - ``sample()`` returns tasks inside the task space;
    - ``metrics()`` holds no infinity (NaN stands for "unknown", such as the success of a
      task never played).

    :func:`currlearn.testing.numeric_contract_test` checks it with hypothesis for any
    curriculum, a user's included; ``tests/test_numeric_contract.py`` runs it over every
    curriculum class of currlearn.

    Args:
        space (TaskSpace): the tasks to choose from. Moved to ``device`` if given.
        num_envs (int, optional): number of envs, for curricula that keep per-env state.
        seed (int, optional): seed of the curriculum's own generator. ``None`` seeds it from
            torch's global generator once, at construction.
        device: device of the state; default: the space's device.
        metric (optional): what a subclass learns from, read by its :meth:`_update` as
            ``feedback[self.metric_key]``: ``"return"``, ``"success"``, a name given to
            :func:`~currlearn.metrics.register_metric` or a callable ``batch -> Tensor [envs,
            time]`` (see :mod:`currlearn.metrics`), which :meth:`make_tracker` computes.
            Default None: no metric.
    """

    needs_value_estimates: bool = False
    """Whether :meth:`update` needs advantages / value estimates in the batch (PLR's scores):
    trainers then compute them before the curriculum reads the batch."""

    samples_in_trainer: str | None = None
    """None, or why a replica of the curriculum cannot sample in a collector worker (a curriculum
    that creates tasks as it samples, such as generated levels, keeps them in the process that
    samples): :class:`~currlearn.integrations.sync.CurriculumDecision` then refuses it."""

    per_episode: bool = True
    """Whether a task holds for a whole episode (False: the decision changes with the
    iteration and envs should be refreshed mid-episode, as for schedules)."""

    metric: Any = None
    """The ``metric=`` argument as given (a name or a callable); None for curricula without one."""

    metric_key: str | None = None
    """The feedback entry :meth:`update` learns from: ``"return"``, ``"success"`` or
    ``"metric"`` (a user metric); None for curricula without a ``metric`` argument."""

    step_metric: StepMetric | None = None
    """The user metric :meth:`make_tracker` computes into the ``"metric"`` entry, if any."""

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        metric: MetricLike | None = None,
    ) -> None:
        if not isinstance(space, TaskSpace):
            raise TypeError(
                f"space must be a TaskSpace (DiscreteSpace, BoxSpace, ProductSpace), got {type(space).__name__}."
            )
        if num_envs is not None:
            check_positive_int("num_envs", num_envs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        if metric is not None:
            self._set_metric(metric)
        if device is not None:
            space.to(device)
        self.space = space
        self.num_envs = num_envs
        self.seed = seed
        self.generator = torch.Generator(device=space.device)
        self.generator.manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)
        self.counters = TensorDict(
            {
                "iteration": torch.zeros((), dtype=torch.int64),
                "frames": torch.zeros((), dtype=torch.int64),
                "episodes": torch.zeros((), dtype=torch.int64),
                "skipped_nonfinite": torch.zeros((), dtype=torch.int64),
                "samples": torch.zeros((), dtype=torch.int64),
            },
            device=space.device,
        )
        self.state: TensorDictBase = TensorDict({}, device=space.device)
        self.decision_version = 0  # bumped whenever the state may change what sample() draws
        self.step_calls = 0  # step() calls in this process (a transform re-samples mid-episode curricula on it)
        # Per-task return / success, reported by metrics() for small discrete spaces. Not
        # checkpointed: a diagnostic that starts afresh in a resumed run.
        self.task_stats: TaskStats | None = (
            TaskStats(space.num_tasks, device=space.device)
            if space.is_discrete and space.num_tasks <= TaskStats.MAX_REPORTED
            else None
        )

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """Device of the state and of sampled tasks."""
        return self.space.device

    @property
    def iteration(self) -> int:
        """Number of completed training iterations (:meth:`step` calls). Syncs with the host."""
        return int(self.counters["iteration"])

    # ------------------------------------------------------------------ hot paths
    def sample(self, num: int | None = None, *, env_ids: Tensor | None = None) -> Tensor:
        """Choose tasks.

        Args:
            num (int, optional): number of tasks to draw.
            env_ids (Tensor, optional): shape ``[n]``, int64: the envs the tasks are for
                (per-env curricula need it). Give ``num`` or ``env_ids``.

        Returns:
            Tasks, shape ``[n, *space.task_shape]``, on :attr:`device`.
        """
        if env_ids is None:
            if num is None:
                raise ValueError("sample needs num or env_ids, got neither.")
            check_positive_int("num", num, minimum=0)
        else:
            env_ids = env_ids.to(self.device).reshape(-1)
            if num is not None and num != env_ids.numel():
                raise ValueError(f"num={num} does not match len(env_ids)={env_ids.numel()}.")
            num = env_ids.numel()
        self.counters["samples"] += num
        return self._sample(num, env_ids)

    @abstractmethod
    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        """Draw ``num`` tasks (for ``env_ids`` when given) with ``self.generator``."""

    def params(self, tasks: Tensor) -> TensorDict:
        """Env parameters of ``tasks`` (see :meth:`TaskSpace.params`)."""
        return self.space.params(tasks)

    def update(self, feedback: TensorDictBase) -> None:
        """Learn from finished episodes.

        Episodes whose return (or metric) is NaN or infinite, or whose success lies outside
        [0, 1] (infinities included; a NaN success is an unknown one), are counted in the
        ``skipped_nonfinite`` metric and dropped before they reach the state: a long run goes
        on past a broken episode, and the counter shows it.

        Args:
            feedback (TensorDict): batch size ``[num_episodes]``, keys as in the module doc.

        Raises:
            ValueError: missing keys, tasks outside the space, env ids out of range. Nothing
                is changed then.
        """
        if not isinstance(feedback, TensorDictBase) or feedback.batch_dims != 1:
            raise TypeError(
                f"feedback must be a TensorDict with batch size [num_episodes], got {type(feedback).__name__} {getattr(feedback, 'batch_size', '')}."
            )
        missing = [k for k in ("task", "return") if k not in feedback.keys()]
        if missing:
            raise ValueError(f"feedback lacks key(s) {missing}; it has {sorted(map(str, feedback.keys()))}.")
        if feedback.device != self.device:  # (TensorDict.to costs tens of microseconds even in place)
            feedback = feedback.to(self.device)
        self.space.check_tasks(feedback["task"], "feedback['task']")
        if "env_id" in feedback.keys() and self.num_envs is not None:
            env = feedback["env_id"]
            bad = (env < 0) | (env >= self.num_envs)
            if bad.any():
                raise ValueError(
                    f"feedback['env_id'] has ids outside [0, {self.num_envs}): {env[bad].unique()[:5].tolist()}."
                )
        if "success" not in feedback.keys():
            feedback = feedback.clone(False)
            feedback["success"] = torch.full_like(feedback["return"], float("nan"))
        self._check_feedback(feedback)
        ret = feedback["return"]
        # a success outside [0, 1] (infinities included) is bad; NaN compares False: unknown, kept
        success = feedback["success"]
        if not success.is_floating_point():
            success = success.to(ret.dtype)
        bad = (success - 0.5).abs_() > 0.5
        bad |= ~finite(ret)
        if "metric" in feedback.keys():
            bad |= ~finite(feedback["metric"])
        n_bad = bad.sum()
        self.counters["skipped_nonfinite"] += n_bad
        self.counters["episodes"] += bad.numel()
        self.counters["episodes"] -= n_bad
        if self.task_stats is not None:
            self.task_stats.update(feedback)  # skips non-finite returns itself, without a sync
        self.decision_version += 1
        if not bool(n_bad):  # one sync (like the task check above) saves a masked copy
            self._update(feedback)
            return
        self._update(feedback[~bad])

    def make_tracker(self, task_key: NestedKey = ("next", "task_id")) -> EpisodeTracker:
        """The :class:`~currlearn.feedback.EpisodeTracker` that reads this curriculum's feedback
        from batches: with a user metric (:attr:`step_metric`), it computes it into the
        ``"metric"`` entry. Curricula that need per-step scores (PLR) override it.
        """
        return EpisodeTracker(task_key=task_key, step_metric=self.step_metric)

    def _set_metric(self, metric: object) -> None:
        """Validate the ``metric=`` argument and set :attr:`metric`, :attr:`metric_key` and
        :attr:`step_metric`. Subclasses call it in ``__init__``, before or after the base's.

        Raises:
            ValueError: an unknown name (the message lists the known ones).
            TypeError: neither a string nor a callable.
        """
        self.metric_key, self.step_metric = resolve_metric(metric)
        self.metric = metric

    @property
    def metric_name(self) -> str | None:
        """The metric's name: the built-in or registered name, else the callable's name."""
        if self.step_metric is not None and not isinstance(self.metric, str):
            return self.step_metric.name
        return self.metric if isinstance(self.metric, str) else None

    def _check_feedback(self, feedback: TensorDictBase) -> None:
        """Raise ``ValueError`` if this curriculum cannot learn from ``feedback``; runs before
        anything changes. Default: a curriculum with a ``metric`` needs its feedback entry.
        """
        key = self.metric_key
        if key is None or key in feedback.keys():
            return
        has = sorted(map(str, feedback.keys()))
        if self.step_metric is not None:
            raise ValueError(
                f"metric={self.metric_name!r} is a user metric but the feedback has no 'metric' entry; it has {has}. "
                "Read batches with curriculum.make_tracker() (or EpisodeTracker(step_metric=curriculum.step_metric))."
            )
        raise ValueError(
            f"metric={key!r} but the feedback has no {key!r} entry; it has "
            f"{has} (a user metric comes from EpisodeTracker(step_metric=...))."
        )

    def _metric_values(self, feedback: TensorDictBase, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """The per-episode values of :attr:`metric_key` (as ``dtype``) and their validity mask;
        NaN values (an unknown success) are counted in ``skipped_nonfinite``.
        """
        values = feedback[self.metric_key].to(torch.get_default_dtype() if dtype is None else dtype)
        valid = finite(values)
        self.counters["skipped_nonfinite"] += valid.numel() - valid.sum()
        return values, valid

    def _update(self, feedback: TensorDictBase) -> None:  # noqa: B027 (optional hook)
        """Learn from valid feedback (finite returns). Default: nothing."""

    def step(self, frames: int | Tensor = 0) -> None:
        """Mark the end of a training iteration that collected ``frames`` env steps."""
        self.counters["iteration"] += 1
        self.decision_version += 1
        self.step_calls += 1
        self.counters["frames"] += frames
        self._on_step()

    def _on_step(self) -> None:  # noqa: B027 (optional hook)
        """Called by :meth:`step` after the counters moved. Default: nothing."""

    # ------------------------------------------------------------------ reporting
    def metrics(self) -> dict[str, float]:
        """Scalar summaries for loggers (host values).

        The counters, the subclass's metrics (levels, stages, ``param/<name>`` values) and, for
        discrete spaces of at most ``TaskStats.MAX_REPORTED`` (32) tasks, ``task/<i>/return``,
        ``task/<i>/success`` (NaN until reported) and ``task/<i>/episodes`` per task id since
        construction (see :class:`~currlearn.stats.TaskStats`), all prefixed ``curriculum/``.
        """
        out = {f"curriculum/{k}": float(v) for k, v in self.counters.items()}
        out.update({f"curriculum/{k}": float(v) for k, v in self._metrics().items()})
        if self.task_stats is not None:
            out.update(self.task_stats.metrics(prefix="curriculum/task/"))
        return out

    def _metrics(self) -> dict[str, Tensor | float]:
        """Subclass metrics, without the ``curriculum/`` prefix. Default: none."""
        return {}

    # ------------------------------------------------------------------ state
    def _space_signature(self) -> dict[str, Any]:
        sig: dict[str, Any] = {"names": list(self.space.names), "discrete": self.space.is_discrete}
        if self.space.is_discrete:
            sig["num_tasks"] = self.space.num_tasks
        else:
            sig["task_shape"] = list(self.space.task_shape)
        return sig

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state: plain tensors, numbers, strings, lists and dicts.

        Keys: ``_version``, ``_type``, ``space``, ``num_envs``, ``counters``, ``state``, ``rng``,
        ``task_stats`` (the per-task figures :meth:`metrics` reports, for spaces small enough to
        have them), and ``metric`` for curricula with a ``metric`` argument: its name when it is one
        (built-in or registered), None for a callable, which is never stored (the constructor
        argument is the source of truth on resume).
        """
        out = {
            "_version": STATE_VERSION,
            "_type": type(self).__name__,
            "space": self._space_signature(),
            "num_envs": self.num_envs,
            "counters": {k: v.clone() for k, v in self.counters.items()},
            "state": {".".join(k) if isinstance(k, tuple) else k: v.clone() for k, v in self.state.items(True, True)},
            "rng": self.generator.get_state(),
        }
        if self.metric_key is not None:
            out["metric"] = self.metric if isinstance(self.metric, str) else None
        if self.task_stats is not None:
            out["task_stats"] = self.task_stats.sums.clone()
        return out

    def load_state_dict(self, state_dict: dict[str, Any], *, load_rng: bool = True) -> None:
        """Restore :meth:`state_dict` output. Checks everything before changing anything.

        Args:
            state_dict (dict): from :meth:`state_dict` of the same curriculum class and space.
            load_rng (bool): also restore the generator. ``False`` syncs a replica (e.g. in a
                worker process) with the decision of the authoritative curriculum while keeping
                its own random stream.

        Raises:
            ValueError: another curriculum class, space, ``num_envs`` or state shapes; the
                message gives both values and the object is left unchanged.
        """
        self.check_state_dict(state_dict)
        current = {".".join(k) if isinstance(k, tuple) else k: v for k, v in self.state.items(True, True)}
        for k, v in state_dict["state"].items():
            if k not in self._old_state_keys:
                current[k].copy_(v.to(current[k].device, current[k].dtype))
        for k, v in state_dict["counters"].items():
            if k in self.counters.keys():
                self.counters[k].copy_(torch.as_tensor(v))
        if load_rng:
            self.generator.set_state(state_dict["rng"].clone())
            stats = state_dict.get("task_stats")  # the reported per-task figures (older states: none)
            if self.task_stats is not None and stats is not None and stats.shape == self.task_stats.sums.shape:
                self.task_stats.sums.copy_(stats)
        self.decision_version += 1
        self._on_load()
        missing = set(current) - set(state_dict["state"])
        if missing:
            self._fill_new_state(missing)

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ``ValueError`` if ``state_dict`` cannot be loaded; change nothing."""
        if not isinstance(state_dict, dict) or "_type" not in state_dict:
            raise ValueError(
                f"state_dict is not a currlearn curriculum state (no '_type' key); got keys {list(state_dict)[:8] if isinstance(state_dict, dict) else type(state_dict).__name__}."
            )
        if state_dict["_type"] != type(self).__name__:
            raise ValueError(
                f"state_dict is from a {state_dict['_type']}, cannot load it into a {type(self).__name__}."
            )
        version = state_dict.get("_version", 0)
        if version > STATE_VERSION:
            raise ValueError(
                f"state_dict has _version={version}, newer than this currlearn's {STATE_VERSION}; upgrade currlearn."
            )
        if state_dict.get("space") != self._space_signature():
            raise ValueError(
                f"state_dict is for the task space {state_dict.get('space')}, this curriculum has {self._space_signature()}."
            )
        if state_dict.get("num_envs") != self.num_envs:
            raise ValueError(
                f"state_dict has num_envs={state_dict.get('num_envs')}, this curriculum has num_envs={self.num_envs}."
            )
        saved_metric = state_dict.get("metric")
        if isinstance(saved_metric, str) and isinstance(self.metric, str) and saved_metric != self.metric:
            raise ValueError(
                f"state_dict was learnt from metric={saved_metric!r}, this curriculum has metric={self.metric!r}; "
                "its values would be read in the wrong units."
            )
        missing = [k for k in ("state", "counters", "rng") if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks key(s) {missing}; a curriculum state has {sorted(self.state_dict())}.")
        for k, v in state_dict["counters"].items():
            if k not in self.counters.keys() or torch.as_tensor(v).shape != self.counters[k].shape:
                raise ValueError(
                    f"state_dict['counters'][{k!r}] is not a known scalar counter; counters are {sorted(self.counters.keys())}."
                )
        if not isinstance(state_dict["rng"], Tensor) or state_dict["rng"].dtype != torch.uint8:
            raise ValueError(
                f"state_dict['rng'] must be a generator state (uint8 tensor), got {type(state_dict['rng']).__name__}."
            )
        incoming = state_dict["state"]
        current = {".".join(k) if isinstance(k, tuple) else k: v for k, v in self.state.items(True, True)}
        incoming = {k: v for k, v in incoming.items() if k not in self._old_state_keys}
        if not set(current) - set(self._new_state_keys) <= set(incoming) <= set(current):
            raise ValueError(
                f"state_dict state keys {sorted(incoming)} differ from this curriculum's {sorted(current)}."
            )
        for k, v in incoming.items():
            if tuple(v.shape) != tuple(current[k].shape):
                raise ValueError(
                    f"state_dict['state'][{k!r}] has shape {list(v.shape)}, expected {list(current[k].shape)}."
                )

    _old_state_keys: tuple[str, ...] = ()
    """State entries that states saved by earlier versions may hold and that are ignored on load
    (derived data the curriculum now rebuilds)."""

    _new_state_keys: tuple[str, ...] = ()
    """State entries that states saved by earlier versions may lack; :meth:`_fill_new_state`
    sets them after such a state is loaded."""

    def _fill_new_state(self, keys: set[str]) -> None:  # noqa: B027 (optional hook)
        """Set the entries ``keys`` (of :attr:`_new_state_keys`) that a loaded state lacked,
        from the rest of the state. Default: nothing (they keep their values)."""

    def _on_load(self) -> None:  # noqa: B027 (optional hook)
        """Called after :meth:`load_state_dict` changed the state, to refresh derived caches."""

    def to(self, device: torch.device | str) -> Curriculum:
        """Move the space, the state and the generator to ``device``. Returns ``self``.

        The new generator is seeded from the old one, so runs stay reproducible per device.
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device == self.device and all(t.device == device for t in self.counters.values()):
            return self
        seed = int(torch.randint(2**62, (), generator=self.generator, device=self.generator.device))
        self.space.to(device)
        self.state = self.state.to(device)
        self.counters = self.counters.to(device)
        if self.task_stats is not None:
            self.task_stats.sums = self.task_stats.sums.to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.decision_version += 1
        self._on_load()
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, device={self.device})"


def sample_from_weights(weights: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """Draw ``num`` indices with probability proportional to ``weights`` (shape ``[k]``).

    Uses ``cumsum`` + ``searchsorted``, which, unlike ``torch.multinomial``, has no limit on the
    number of categories. ``weights`` must be non-negative with a positive sum.
    """
    cdf = torch.cumsum(weights, 0)
    return sample_from_cdf(cdf, torch.rand(num, generator=generator, device=weights.device, dtype=cdf.dtype))


class DiscreteCurriculum(Curriculum):
    """A curriculum that is a probability distribution over the tasks of a discrete space.

    Subclasses implement :meth:`_compute_weights`; :meth:`weights` normalises it and
    :meth:`sample` draws from it with the curriculum's generator.

    Args:
        space, num_envs, seed, device, metric: see :class:`Curriculum`; ``space`` must be
            discrete.
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        metric: MetricLike | None = None,
    ) -> None:
        super().__init__(space, num_envs=num_envs, seed=seed, device=device, metric=metric)
        if not space.is_discrete:
            raise TypeError(f"{type(self).__name__} needs a discrete task space, got {space!r}.")

    @abstractmethod
    def _compute_weights(self) -> Tensor:
        """Unnormalised, non-negative, finite weights of shape ``[num_tasks]`` with a positive sum."""

    def _group(self, task: Tensor, *values: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor, list[Tensor]]:
        """:func:`~currlearn.functional.group_by_task` in ``O(episodes)``, through a scratch
        tensor of one int64 per task kept by the curriculum (not part of its state)."""
        scratch = getattr(self, "_group_scratch", None)
        if scratch is None or scratch.device != task.device:
            scratch = self._group_scratch = torch.empty(self.space.num_tasks, dtype=torch.int64, device=task.device)
        if valid is not None and task.device.type == "cpu" and bool(valid.all()):
            valid = None  # (free to check on CPU; saves the masked copies)
        return group_by_task(task, *values, valid=valid, scratch=scratch)

    def weights(self) -> Tensor:
        """The task distribution: shape ``[num_tasks]``, non-negative, sums to 1."""
        w = self._compute_weights()
        return w / w.sum()

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        return sample_from_weights(self._compute_weights(), num, self.generator)

    def metrics(self) -> dict[str, float]:
        """Counters, subclass metrics and a summary of the task distribution.

        Adds ``entropy`` (nats), ``support`` (tasks with non-zero probability) and
        ``top10_mass`` (probability of the 10 most likely tasks).
        """
        out = super().metrics()
        p = self.weights()
        out["curriculum/entropy"] = float(-(p * torch.log(p.clamp_min(1e-30))).sum())
        out["curriculum/support"] = float(torch.count_nonzero(p))
        out["curriculum/top10_mass"] = float(p.topk(min(10, p.numel())).values.sum())
        return out
