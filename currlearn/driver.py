"""One framework-free loop step: collected batch -> feedback -> update -> step -> envs.

:class:`CurriculumDriver` is what every integration runs: TorchRL's trainer hook
(:class:`~currlearn.integrations.torchrl.CurriculumHook`) and the Lightning callback
(:class:`~currlearn.integrations.lightning.CurriculumCallback`) are thin adapters that call
it at their framework's points; a hand-written loop calls it directly::

    driver = CurriculumDriver(curriculum, env.transform)
    for batch in collector:                # TensorDict [*envs, time]
        ...                                # optimise on the batch
        metrics = driver.process(batch)    # None between two reports

Per batch it turns the finished episodes into feedback (the curriculum's tracker, which
carries unfinished episodes over to the next batch), updates the curriculum, advances its
iteration by the batch's frames, pushes the decision to the env side (a refresh for curricula
whose decision changes mid-episode, and the ``on_decision`` callables, e.g. to sync worker
replicas) and reports the curriculum's metrics at most every ``log_interval`` frames.

The env side is duck-typed: an object with ``tasks`` (the current task of every env, or None
before the first reset), ``refresh()`` and ``set_tasks(tasks)``, such as a
:class:`~currlearn.integrations.torchrl.CurriculumTransform`. :meth:`CurriculumDriver.state_dict`
holds the curriculum and those tasks, so a resumed run re-applies them without drawing.

This module imports torch, tensordict and currlearn's core only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from currlearn.base import Curriculum, check_positive_int
from currlearn.feedback import EpisodeTracker

__all__ = ["CurriculumDriver"]

STATE_VERSION = 1


class CurriculumDriver:
    """Drives a curriculum from collected batches, in any training loop.

    Args:
        curriculum (Curriculum): the authoritative curriculum.
        transform (optional): the env side whose tasks the curriculum chooses (an object with
            ``tasks``, ``refresh()`` and ``set_tasks(tasks)``, e.g. a ``CurriculumTransform``),
            or None (the envs live elsewhere, e.g. in collector workers; see ``on_decision``).
            It can also be given later with :meth:`attach`.
        tracker (EpisodeTracker, optional): how per-episode feedback is read from a batch.
            Default ``curriculum.make_tracker(task_key=("next", transform.task_key))`` (with
            ``"task_id"`` when the env side has no ``task_key``), built at the first batch.
        refresh_every_iteration (bool, optional): re-sample every env's task after each
            :meth:`step`. Default ``not curriculum.per_episode`` (True for schedules).
        log_interval (int): frames between two metric reports: :meth:`report` returns the
            metrics once more than ``log_interval`` frames were collected since the last
            report (TorchRL's ``Trainer`` rule); 0 reports every time.
        on_decision (iterable of callables, optional): called as ``fn(refresh=...)`` after
            each :meth:`step` (``refresh`` as ``refresh_every_iteration``) and after
            :meth:`load_state_dict` (``refresh=True``: the envs elsewhere drew their running
            tasks before the load): e.g. push the state to curriculum replicas in collector
            workers.
        env_id_key, version_key (NestedKey, optional): the env side's per-transition env id
            and decision version keys (see ``CurriculumTransform``), read under ``"next"`` by
            the default tracker. Default: the attached transform's (None without one).

    Raises:
        TypeError: ``curriculum`` is not a Curriculum, ``tracker`` not an EpisodeTracker,
            ``transform`` lacks ``tasks`` / ``refresh`` / ``set_tasks``, or an
            ``on_decision`` entry is not callable.
        ValueError: ``log_interval`` is not an int >= 0.

    Examples:
        >>> from torchrl.envs import TransformedEnv
        >>> from currlearn import LinearSchedule, ScheduledCurriculum
        >>> from currlearn.envs import PointMassGateEnv
        >>> from currlearn.integrations.torchrl import CurriculumTransform
        >>> cur = ScheduledCurriculum({"gate_width": LinearSchedule(8.0, 2.0, total=2)}, seed=0)
        >>> env = TransformedEnv(PointMassGateEnv(2, max_steps=4, seed=0), CurriculumTransform(cur))
        >>> driver = CurriculumDriver(cur, env.transform)
        >>> driver.process(env.rollout(4, break_when_any_done=False))["curriculum/iteration"]
        1.0
        >>> env.rollout(1)["params", "gate_width"].tolist()
        [[5.0], [5.0]]
    """

    def __init__(
        self,
        curriculum: Curriculum,
        transform: Any = None,
        *,
        tracker: EpisodeTracker | None = None,
        refresh_every_iteration: bool | None = None,
        log_interval: int = 0,
        on_decision: Iterable[Callable[..., Any]] | None = None,
        env_id_key: NestedKey | None = None,
        version_key: NestedKey | None = None,
    ) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a currlearn Curriculum, got {type(curriculum).__name__}.")
        if tracker is not None and not isinstance(tracker, EpisodeTracker):
            raise TypeError(f"tracker must be an EpisodeTracker or None, got {type(tracker).__name__}.")
        callbacks = list(on_decision or ())
        for i, fn in enumerate(callbacks):
            if not callable(fn):
                raise TypeError(f"on_decision[{i}] must be callable, got {type(fn).__name__}.")
        self.curriculum = curriculum
        self.refresh_every_iteration = (
            not curriculum.per_episode if refresh_every_iteration is None else bool(refresh_every_iteration)
        )
        self.log_interval = check_positive_int("log_interval", log_interval, minimum=0)
        self.on_decision = callbacks
        self._tag_keys = {"env_id_key": env_id_key, "version_key": version_key}
        self._transform: Any = None
        self._tracker = tracker
        self._tracker_given = tracker is not None
        self.frames = 0  # frames of the current iteration (since the last step)
        self.total_frames = 0
        self._last_report = 0
        self._pending: TensorDictBase | None = None  # batch whose update was deferred
        self._pending_tasks: torch.Tensor | None = None  # checkpointed tasks to re-apply
        if transform is not None:
            self.attach(transform)

    # ------------------------------------------------------------------ env side
    @property
    def transform(self) -> Any:
        """The env side (None when not attached)."""
        return self._transform

    def attach(self, transform: Any) -> None:
        """Attach the env side (see the class doc), and re-apply checkpointed tasks to it if a
        state was loaded before.

        Raises:
            TypeError: ``transform`` lacks ``tasks``, ``refresh`` or ``set_tasks``.
        """
        missing = [n for n in ("tasks", "refresh", "set_tasks") if not hasattr(transform, n)]
        if missing:
            raise TypeError(
                f"transform must have `tasks`, `refresh()` and `set_tasks(tasks)` (a CurriculumTransform), "
                f"got {type(transform).__name__} without {missing}."
            )
        self._transform = transform
        if not self._tracker_given:
            self._tracker = None  # rebuilt for the attached env side's task_key
        self.restore_tasks()

    @property
    def tracker(self) -> EpisodeTracker:
        """The tracker that reads per-episode feedback from batches."""
        if self._tracker is None:
            key = getattr(self._transform, "task_key", "task_id")
            tracker = self.curriculum.make_tracker(task_key=_next_key(key))
            for name, given in self._tag_keys.items():
                tag = given if given is not None else getattr(self._transform, name, None)
                if tag is not None:
                    setattr(tracker, name, _next_key(tag))
            self._tracker = tracker
        return self._tracker

    @property
    def pending(self) -> TensorDictBase | None:
        """The batch observed with ``defer=True`` whose feedback has not been given yet."""
        return self._pending

    # ------------------------------------------------------------------ one iteration
    def observe(self, batch: TensorDictBase, *, defer: bool = False) -> TensorDictBase:
        """Count a collected batch's frames and update the curriculum from its finished episodes.

        Args:
            batch (TensorDictBase): the collected batch, ``[*envs, time]``.
            defer (bool): keep the batch and update at :meth:`feedback` (or at :meth:`step`),
                e.g. once the advantages the curriculum scores episodes with were written.

        Returns:
            ``batch``, unchanged.

        Raises:
            TypeError: ``batch`` is not a TensorDict.
        """
        if not isinstance(batch, TensorDictBase):
            raise TypeError(f"batch must be a TensorDict [*envs, time], got {type(batch).__name__}.")
        self.frames += batch.numel()
        self.total_frames += batch.numel()
        if defer:
            self._pending = batch
        else:
            self.curriculum.update(self.tracker(batch))
        return batch

    def feedback(self, batch: TensorDictBase | None = None) -> None:
        """Give the deferred update (nothing when none is pending).

        Args:
            batch (TensorDictBase, optional): the pending batch as it is now (with the entries
                written since :meth:`observe`); default the pending batch itself.

        Raises:
            ValueError: ``batch`` has another shape than the observed one (it was reshaped or
                flattened in between); nothing is changed then.
        """
        if self._pending is None:
            return
        if batch is None:
            batch = self._pending
        elif batch.batch_size != self._pending.batch_size:
            raise ValueError(
                f"The feedback batch has shape {list(batch.batch_size)}, the observed one "
                f"{list(self._pending.batch_size)}: give the batch before it is flattened."
            )
        self._pending = None
        self.curriculum.update(self.tracker(batch))

    def step(self) -> None:
        """End the iteration: the deferred update if any, ``curriculum.step(frames)``, then
        push the decision to the envs (refresh, ``on_decision``).
        """
        self.feedback()
        self.curriculum.step(self.frames)
        self.frames = 0
        if self._transform is not None and self.refresh_every_iteration:
            self._transform.refresh()
        for fn in self.on_decision:
            fn(refresh=self.refresh_every_iteration)

    def report(self) -> dict[str, float] | None:
        """The curriculum's metrics, or None while no more than ``log_interval`` frames were
        collected since the last report.
        """
        if self.log_interval and self.total_frames - self._last_report <= self.log_interval:
            return None
        self._last_report = self.total_frames
        return self.curriculum.metrics()

    def process(self, batch: TensorDictBase) -> dict[str, float] | None:
        """:meth:`observe`, :meth:`step` and :meth:`report` in one: the whole iteration of a
        hand-written loop. Returns the metrics, or None between two reports.
        """
        self.observe(batch)
        self.step()
        return self.report()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The curriculum's state (generator included) and every env's current task (None
        without an env side or before its first reset).
        """
        tasks = getattr(self._transform, "tasks", None)
        return {
            "_version": STATE_VERSION,
            "curriculum": self.curriculum.state_dict(),
            "tasks": tasks.clone() if tasks is not None else None,
            "tracker": self._tracker.state_dict() if self._tracker is not None else None,
            "frames": [self.frames, self.total_frames, self._last_report],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the curriculum and re-apply the checkpointed tasks to the envs (without
        drawing); before the env side's first reset they are applied at :meth:`restore_tasks`.
        A state holding only ``"curriculum"`` (older checkpoints) is accepted.

        Raises:
            ValueError: not a driver's state, another curriculum (the curriculum's own check),
                or tasks of another shape than the envs'; nothing is changed then.
        """
        if not isinstance(state_dict, dict) or "curriculum" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict is not a curriculum driver's state (no 'curriculum' key); got {got}.")
        self.curriculum.check_state_dict(state_dict["curriculum"])
        tasks = state_dict.get("tasks")
        if tasks is not None:
            self._check_tasks(tasks)
        self.curriculum.load_state_dict(state_dict["curriculum"])
        # Episodes in progress go on where the envs go on with them (an exact resume); a state
        # without them (older checkpoints) starts the count afresh.
        if state_dict.get("tracker") is not None:
            self.tracker.load_state_dict(state_dict["tracker"])
        elif self._tracker is not None:
            self._tracker.reset()
        if state_dict.get("frames") is not None:
            self.frames, self.total_frames, self._last_report = (int(v) for v in state_dict["frames"])
        self._pending = None
        self._pending_tasks = tasks.clone() if tasks is not None else None
        self.restore_tasks()
        for fn in self.on_decision:
            fn(refresh=True)

    def restore_tasks(self) -> bool:
        """Re-apply the tasks of a loaded state to the env side, once it has been reset.

        Returns:
            True if tasks were applied now.
        """
        current = getattr(self._transform, "tasks", None)
        if self._pending_tasks is None or current is None:
            return False
        tasks, self._pending_tasks = self._pending_tasks, None
        self._check_tasks(tasks)
        self._transform.set_tasks(tasks)
        return True

    def _check_tasks(self, tasks: Any) -> None:
        space = self.curriculum.space
        if not isinstance(tasks, torch.Tensor):
            raise ValueError(f"checkpointed tasks must be a tensor, got {type(tasks).__name__}.")
        dims = len(space.task_shape)
        if dims and tuple(tasks.shape[-dims:]) != tuple(space.task_shape):
            raise ValueError(
                f"checkpointed tasks have shape {list(tasks.shape)}, whose task shape does not match the "
                f"curriculum's {list(space.task_shape)}."
            )
        space.check_tasks(tasks.reshape(-1, *space.task_shape).to(space.device), "checkpointed tasks")
        current = getattr(self._transform, "tasks", None)
        if current is not None and current.shape != tasks.shape:
            raise ValueError(
                f"the checkpoint's envs had tasks of shape {list(tasks.shape)}, the envs now have "
                f"{list(current.shape)}; resume with the same number of envs."
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(curriculum={self.curriculum!r}, transform={type(self._transform).__name__})"


def _next_key(key: NestedKey) -> tuple[str, ...]:
    return ("next", key) if isinstance(key, str) else ("next", *key)
