"""TorchRL integration: an env transform, a trainer hook and collector helpers.

- :class:`CurriculumTransform` samples a task for every env being reset, writes the task's
  parameters into the env's TensorDict (under ``param_key``) on the reset input and output, and
  on the input of a step whenever they changed since they were last written (or the input
  lacks them), so they apply from the first step and a pushed change applies at once, and tags
  every transition with its task (``task_key`` at the root and under ``"next"``).
- :class:`CurriculumHook` registers a :class:`~currlearn.driver.CurriculumDriver` on a
  :class:`torchrl.trainers.Trainer`: it turns each collected batch into per-episode feedback
  (``batch_process``), updates the curriculum and refreshes the envs after the optimisation
  steps (``post_steps``), logs the curriculum's metrics, and is registered as a trainer module
  so checkpoints hold the curriculum. Without a curriculum it drives the one of the
  transform on the trainer's env (what TorchRL's ``PPOTrainerConfig(hooks=[...])`` needs).
- :func:`sync_workers` pushes the curriculum's decision to transforms living in collector
  worker processes (``MultiSyncCollector``); :func:`transform_path` finds the transform in an
  env for that purpose.

Where the transform sits:

- one process (a batched env or a ``ParallelEnv`` wrapped from outside: ``TransformedEnv(
  ParallelEnv(...), CurriculumTransform(cur))``): the transform holds the curriculum itself and
  nothing needs pushing; ParallelEnv forwards the parameters to its workers.
- collector workers (``MultiSyncCollector``): each worker builds its env and transform with a
  replica of the curriculum; :class:`CurriculumHook` given ``collector=`` pushes the
  authoritative state (without the generator) to every replica after each update.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor
from torchrl.data import Composite, Unbounded
from torchrl.envs import EnvBase, TransformedEnv
from torchrl.envs.batched_envs import BatchedEnvBase
from torchrl.envs.transforms import Compose, Transform
from torchrl.trainers import ReplayBufferTrainer, TrainerHookBase, ValueEstimatorHook

from currlearn.base import Curriculum, check_choice, check_positive_int
from currlearn.driver import CurriculumDriver
from currlearn.feedback import EpisodeTracker
from currlearn.integrations.sync import (
    CurriculumDecision,
    WorkerLostError,
    _DecisionSender,
    _ray_worker_gone,
    check_workers,
    refuse_in_workers,
)

__all__ = ["CurriculumHook", "CurriculumTransform", "find_transforms", "sync_workers", "transform_path"]


@dataclass(slots=True)
class _Bookkeeping:
    """Plain counters of a :class:`CurriculumTransform` (kept off ``nn.Module.__setattr__``).

    ``version`` moves whenever the envs' parameters change; ``written`` is the version last
    written into a tensordict (a step input that carries the current parameters needs no new
    copy); ``pool`` holds prefetched ``(tasks, parameter leaves)``, ``pool_pos`` the next unused
    row and ``pool_version`` the curriculum's ``decision_version`` it was drawn at; ``covers``
    says whether the curriculum sets all of the env's parameters (None: not known yet).
    """

    version: int = 0
    written: int = -1
    pool: tuple[Tensor, list[Tensor]] | None = None
    pool_pos: int = 0
    pool_version: int = -1
    covers: bool | None = None
    steps_seen: int = -1  # the curriculum's step_calls when every env's task was last set


class CurriculumTransform(Transform):
    """Env transform that plays the tasks a curriculum chooses.

    Args:
        curriculum (Curriculum): the curriculum (or its replica in a worker process).
        param_key (NestedKey): where the env reads its parameters. Default ``"params"`` (as
            TorchRL's ``PendulumEnv`` and currlearn's ``PointMassGateEnv``).
        task_key (NestedKey): where each transition's task is written. Default ``"task_id"``.
        check_params (bool): at the first reset, check that the env's TensorDict has every
            parameter the curriculum sets, and raise listing the env's parameters otherwise.
        prefetch (int): draw the tasks of partial resets in blocks of ``prefetch`` (0: one
            ``curriculum.sample`` per reset). A block is dropped as soon as the curriculum's
            decision changes (an ``update``, a ``step``, a load), so draws always come from the
            current distribution; it saves the fixed cost of many small ``sample`` calls.
            Ignored for curricula with per-env state (``num_envs`` set). Staleness-aware
            curricula (PLR) count a dropped block's draws as sampled.
        env_offset (int): added to the env's flat indices to make the ``env_ids`` passed to
            ``curriculum.sample`` (and written under ``env_id_key``): with collector workers
            of ``n`` envs each, worker ``w`` passes ``w * n`` so that a curriculum with per-env
            state (``num_envs`` = all workers' envs) keeps one ladder per env across workers.
        env_id_key (NestedKey, optional): where each transition's global env id is written
            (at the root and under ``"next"``), for a tracker that reads batches holding
            different envs in turn (``EpisodeTracker(env_id_key=...)``). Default: not written.
        version_key (NestedKey, optional): where each transition's decision version is written:
            the curriculum's ``decision_version`` when the env's task was drawn, which in a
            worker is the pushed decision's (see :attr:`decision`). Default: not written.

    In a collector worker the transform's replica receives the trainer's decision through
    :attr:`decision`, which a TorchRL weight-sync scheme from
    :func:`~currlearn.integrations.sync.decision_schemes` writes; a
    new decision is loaded into the replica at the next reset or step.

    The envs being reset are those in the ``"_reset"`` mask (all envs on a full reset). Their
    flat indices in the env's batch are passed as ``env_ids`` to ``curriculum.sample``.
    """

    def __init__(
        self,
        curriculum: Curriculum,
        *,
        param_key: NestedKey = "params",
        task_key: NestedKey = "task_id",
        check_params: bool = True,
        prefetch: int = 0,
        env_offset: int = 0,
        env_id_key: NestedKey | None = None,
        version_key: NestedKey | None = None,
    ) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a currlearn Curriculum, got {type(curriculum).__name__}.")
        tags = [k for k in (env_id_key, version_key) if k is not None]
        super().__init__(in_keys=[], out_keys=[task_key, *tags])
        self.env_offset = check_positive_int("env_offset", env_offset, minimum=0)
        self.env_id_key = env_id_key
        self.version_key = version_key
        # (global env id, decision version) per env, flat [n] int64, when written
        self._tags: dict[NestedKey, Tensor] = {}
        self.curriculum = curriculum
        self.param_key = param_key
        self.task_key = task_key
        self.check_params = check_params
        self.prefetch = check_positive_int("prefetch", prefetch, minimum=0)
        self._tasks: Tensor | None = None  # [*batch, *task_shape]
        self._params: TensorDictBase | None = None  # [*batch]
        # Flat [n, ...] views of the tasks and of every parameter leaf (in ``_leaf_keys`` order):
        # partial resets write into them with one indexed copy per tensor.
        self._flat_tasks: Tensor | None = None
        self._leaf_keys: list[NestedKey] = []
        self._leaves: list[Tensor] = []
        self._book = _Bookkeeping()
        self._checked = False
        self._param_dtypes: dict[NestedKey, torch.dtype] | None = None  # the env's, read at the first reset
        self._reset_again = False
        self._env_params: TensorDictBase | None = None  # the env's full parameter set

    # ------------------------------------------------------------------ decisions
    @property
    def decision(self) -> CurriculumDecision:
        """The buffers a weight-sync scheme writes the trainer's decision into (created on
        first use, from this transform's curriculum: its names and shapes)."""
        decision = self.__dict__.get("_decision")
        if decision is None:
            # Kept out of the module tree: it stays on CPU when the env moves, and out of the
            # env's state_dict (the curriculum's checkpoint holds the decision).
            decision = self.__dict__["_decision"] = CurriculumDecision(self.curriculum)
        return decision

    def _poll(self) -> None:
        """Load a decision pushed since the last reset or step into the replica."""
        decision = self.__dict__.get("_decision")
        if decision is None:
            return
        refresh = decision.apply_to(self.curriculum)
        if refresh and self._tasks is not None:
            self.refresh()

    @property
    def tasks(self) -> Tensor | None:
        """Current task of every env, shape ``[*env_batch, *task_shape]`` (None before reset)."""
        return self._tasks

    def _assign(self, mask: Tensor | None, batch_shape: torch.Size, device: torch.device | None) -> None:
        self._poll()
        space = self.curriculum.space
        n = batch_shape.numel()
        if self._tasks is None or self._tasks.shape[: len(batch_shape)] != batch_shape:
            self._tasks = torch.zeros((*batch_shape, *space.task_shape), dtype=space.task_dtype, device=device)
            self._flat_tasks = self._tasks.view(n, *space.task_shape)
            self._tags = {}
            if self.env_id_key is not None:
                self._tags[self.env_id_key] = torch.arange(n, device=device) + self.env_offset
            if self.version_key is not None:
                self._tags[self.version_key] = torch.zeros(n, dtype=torch.int64, device=device)
            mask = None
        if mask is None or self._params is None:
            env_ids = torch.arange(n, device=self.curriculum.device) + self.env_offset
            self._flat_tasks.copy_(self.curriculum.sample(env_ids=env_ids))
            if self.version_key is not None:
                self._tags[self.version_key].fill_(self.curriculum.decision_version)
            self._book.steps_seen = self.curriculum.step_calls
            self._refresh_params()
            return
        # Partial reset: new tasks and parameters for the reset envs only.
        ids = mask.reshape(n).nonzero().squeeze(-1)
        if ids.numel():
            tasks, leaves = self._draw(ids)
            ids = ids.to(self._flat_tasks.device)
            # (index_copy_: no Python indexing machinery; it casts nothing, so the values are cast)
            self._flat_tasks.index_copy_(0, ids, tasks.to(self._flat_tasks.dtype))
            for leaf, value in zip(self._leaves, leaves):
                leaf.index_copy_(0, ids, value.to(leaf.dtype))
            if self.version_key is not None:
                self._tags[self.version_key].index_fill_(0, ids, self.curriculum.decision_version)
            self._book.version += 1

    def _lookup(self, tasks: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``tasks`` and their parameter leaves, on the envs' device, in ``_leaf_keys`` order."""
        assert self._flat_tasks is not None
        params = self.curriculum.params(tasks)
        dev = self._flat_tasks.device
        return tasks.to(dev, self._flat_tasks.dtype), [params.get(k).to(dev) for k in self._leaf_keys]

    def _draw(self, env_ids: Tensor) -> tuple[Tensor, list[Tensor]]:
        cur = self.curriculum
        k = env_ids.numel()
        if self.prefetch == 0 or cur.num_envs is not None:
            return self._lookup(cur.sample(env_ids=env_ids.to(cur.device) + self.env_offset))
        book = self._book
        if book.pool is None or book.pool_version != cur.decision_version or book.pool_pos + k > len(book.pool[0]):
            book.pool = self._lookup(cur.sample(max(self.prefetch, k)))
            book.pool_pos, book.pool_version = 0, cur.decision_version
        lo = book.pool_pos
        hi = book.pool_pos = lo + k
        tasks, leaves = book.pool
        return tasks[lo:hi], [leaf[lo:hi] for leaf in leaves]

    def _env_shape(self) -> torch.Size:
        assert self._tasks is not None
        return self._tasks.shape[: self._tasks.dim() - len(self.curriculum.space.task_shape)]

    def _refresh_params(self) -> None:
        assert self._tasks is not None
        assert self._flat_tasks is not None
        shape = self._env_shape()
        # clone: a box space's parameters are views of the tasks, which change in place later
        self._params = self.curriculum.params(self._flat_tasks).reshape(shape).to(self._tasks.device).clone()
        for key, dtype in (self._param_dtypes or {}).items():
            if key in self._params.keys(True, True) and self._params.get(key).dtype != dtype:
                self._params.set(key, self._params.get(key).to(dtype))  # e.g. a grid's float ids for an int
        self._leaf_keys = list(self._params.keys(True, True))
        n = shape.numel()
        self._leaves = [(leaf := self._params.get(k)).view(n, *leaf.shape[len(shape) :]) for k in self._leaf_keys]
        self._book.pool = None  # drawn for the previous leaves
        self._book.version += 1

    def refresh(self) -> None:
        """Re-sample the tasks of all envs now (for curricula whose decision changes mid-episode,
        such as schedules); the new parameters apply from the next step.
        """
        if self._tasks is not None:
            self._assign(None, self._env_shape(), self._tasks.device)

    def set_tasks(self, tasks: Tensor) -> None:
        """Set every env's current task (e.g. restored from a checkpoint); the parameters apply
        from the next step.

        Args:
            tasks (Tensor): shape ``[*env_batch, *task_shape]``, as :attr:`tasks`.

        Raises:
            ValueError: before the first reset, or for another shape.
        """
        if self._tasks is None:
            raise ValueError("set_tasks needs the env to have been reset once (the env batch is unknown before).")
        if tasks.shape != self._tasks.shape:
            raise ValueError(
                f"tasks has shape {list(tasks.shape)}, the envs' tasks have shape {list(self._tasks.shape)}."
            )
        self.curriculum.space.check_tasks(tasks.reshape(-1, *self.curriculum.space.task_shape), "tasks")
        self._tasks.copy_(tasks.to(self._tasks.device, self._tasks.dtype))
        self._book.steps_seen = self.curriculum.step_calls
        self._refresh_params()

    def sync(self, state_dict: dict[str, Any], refresh: bool = False) -> None:
        """Load the authoritative curriculum's state into this transform's replica (keeps the
        replica's own generator); with ``refresh``, re-sample all envs' tasks.
        """
        self.curriculum.load_state_dict(state_dict, load_rng=False)
        if refresh:
            self.refresh()

    def _write(self, td: TensorDictBase, with_task: bool = True) -> TensorDictBase:
        assert self._params is not None
        assert self._tasks is not None
        current = td.get(self.param_key, None)
        book = self._book
        if current is not None and book.covers is None:
            # Does the curriculum set every parameter the env has? (asked once per env)
            book.covers = set(current.keys(True, True)) <= set(self._leaf_keys)
        if current is None or (book.covers and current.device == self._params.device):
            td.set(self.param_key, _clone(self._params))
        else:
            # A shallow copy: the sub-tensordict may be shared with an earlier step's output.
            current = current.clone(False)
            device = current.device
            for key, value in zip(self._leaf_keys, self._params.values(True, True)):
                current.set(key, value.clone() if device is None else value.to(device).clone())
            td.set(self.param_key, current)
        if with_task:
            td.set(self.task_key, self._tasks.clone())
            self._set_tags(td)
            self._book.written = self._book.version
        return td

    # ------------------------------------------------------------------ Transform hooks
    def _reset_env_preprocess(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        # Sample before the base env resets, and hand it the new parameters, so that the
        # reset state and first observation already reflect the new task.
        parent = None if tensordict is not None else self.parent  # (Transform.parent walks the container)
        if tensordict is not None:
            batch_shape, device = tensordict.batch_size, tensordict.device
        elif parent is not None:
            batch_shape, device = parent.batch_size, parent.device
        else:
            raise RuntimeError("CurriculumTransform must be attached to an env (TransformedEnv) to reset.")
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        mask = None if reset is None else reset.reshape(*batch_shape, -1).any(-1)
        self._assign(mask, batch_shape, device)
        if tensordict is None:
            tensordict = TensorDict({}, batch_size=batch_shape, device=device)
        covered = self._book.covers and self._params is not None and self._params.device == device
        if tensordict.get(self.param_key, None) is None and not covered:
            # Envs that read parameters at reset need a full set: the last one seen, or the
            # env's defaults (``gen_params``) before the first reset. Otherwise the env uses
            # its own defaults for the reset state and the parameters apply from step one.
            # (A curriculum that sets every parameter writes the full set itself, below.)
            full = self._env_params if self._env_params is not None else self._default_params(batch_shape)
            if full is None:
                # No full parameter set yet (a batched env's first reset): reset with the env's
                # own parameters, then once more with the sampled ones (see ``_reset``).
                self._reset_again = True
                return tensordict
            tensordict.set(self.param_key, full.clone())
        if self.check_params and not self._checked:
            self._check_env_params(tensordict)
        return self._write(tensordict, with_task=False)

    def _default_params(self, batch_shape: torch.Size) -> TensorDictBase | None:
        base = getattr(self.parent, "base_env", None)
        if base is None or isinstance(base, BatchedEnvBase):  # workers reset with their own defaults
            return None
        gen = getattr(base, "gen_params", None)
        if gen is None:
            return None
        params = gen(batch_size=batch_shape).get(self.param_key, None)
        return params.to(base.device) if params is not None else None

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        if self.check_params and not self._checked:
            self._check_env_params(tensordict_reset)
        if self._param_dtypes is None:
            self._adopt_env_dtypes(tensordict_reset)
        tensordict_reset = self._write(tensordict_reset)
        params = tensordict_reset.get(self.param_key, None)
        self._env_params = params  # cloned where it is used
        if self._reset_again and self._env_params is not None and self.parent is not None:
            # Now the full set is known: reset the envs below this transform again, handing them
            # the sampled parameters, so the first episodes play the tasks they are tagged with.
            self._reset_again = False
            again = TensorDict({self.param_key: self._env_params.clone()}, batch_size=tensordict_reset.batch_size)
            reset = tensordict.get("_reset", None) if tensordict is not None else None
            if reset is not None:
                again.set("_reset", reset)
            with warnings.catch_warnings():
                # torchrl 0.14 honours the parameters passed in a reset tensordict (the point of
                # this reset) and warns that 0.15 will need set_state=True, which TransformedEnv
                # rejects today.
                warnings.filterwarnings("ignore", message="A reset tensordict carrying state", category=FutureWarning)
                tensordict_reset = self._write(self.parent.reset(again.to(tensordict_reset.device)))
        self._reset_again = False
        return tensordict_reset

    def _adopt_env_dtypes(self, td: TensorDictBase) -> None:
        """Write each parameter in the dtype the env gives it (a task space may hold an integer
        parameter as float), so that every step's parameters stack with the reset's."""
        params = td.get(self.param_key, None)
        if params is None or self._params is None:
            return
        env_keys = set(params.keys(True, True))
        self._param_dtypes = {k: params.get(k).dtype for k in self._leaf_keys if k in env_keys}
        if any(self._params.get(k).dtype != dtype for k, dtype in self._param_dtypes.items()):
            self._refresh_params()

    def _check_env_params(self, td: TensorDictBase) -> None:
        params = td.get(self.param_key, None)
        if params is None:
            return  # the env takes its parameters from the input only (written at every step)
        self._checked = True
        env_names = [k if isinstance(k, str) else ".".join(k) for k in params.keys(True, True)]
        unknown = [n for n in self.curriculum.space.names if n not in env_names]
        if unknown:
            raise ValueError(
                f"The curriculum sets parameter(s) {unknown} that the env does not have under {self.param_key!r}; "
                f"the env's parameters are {env_names}."
            )

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._params is None:
            return tensordict
        self._poll()
        cur = self.curriculum
        if not cur.per_episode and cur.step_calls != self._book.steps_seen:
            # A decision that holds mid-episode (a schedule's step) reaches the running envs at
            # this step, whether or not a hook refreshed the transform. Keyed on step() alone: an
            # update, or a load (whose tasks set_tasks restores), re-samples nothing.
            self.refresh()
        if (
            self._book.written == self._book.version
            and self.param_key in tensordict.keys(True)
            and self.task_key in tensordict.keys(True)
        ):
            # Nothing changed since the parameters were last written (a reset's output, or a
            # step input the env echoed into its output): the input carries them already.
            return tensordict
        return self._write(tensordict)

    def _set_tags(self, td: TensorDictBase) -> None:
        shape = self._env_shape()
        for key, value in self._tags.items():
            td.set(key, value.view(shape).clone())

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        if self._tasks is not None:
            next_tensordict.set(self.task_key, self._tasks.clone())
            self._set_tags(next_tensordict)
        return next_tensordict

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:  # noqa: D102
        space = self.curriculum.space
        observation_spec[self.task_key] = Unbounded(
            shape=(*observation_spec.shape, *space.task_shape), dtype=space.task_dtype, device=observation_spec.device
        )
        for key in (self.env_id_key, self.version_key):
            if key is not None:
                observation_spec[key] = Unbounded(
                    shape=observation_spec.shape, dtype=torch.int64, device=observation_spec.device
                )
        return observation_spec


def _clone(params: TensorDictBase) -> TensorDictBase:
    """A copy of a flat TensorDict of parameters: every leaf cloned, built without
    ``TensorDict.clone``'s checks (a quarter of its time; this runs at every reset)."""
    if type(params) is not TensorDict or any(isinstance(v, TensorDictBase) for v in params.values()):
        return params.clone()
    return TensorDict._new_unsafe(
        {k: v.clone() for k, v in params.items()}, batch_size=params.batch_size, device=params.device
    )


def find_transforms(env: EnvBase, cls: type[Transform]) -> list[Transform]:
    """The transforms of type ``cls`` of a TransformedEnv (its transform, or inside its Compose),
    in order; empty for an env without one.
    """
    from torchrl.envs import TransformedEnv

    if not isinstance(env, TransformedEnv):  # a ParallelEnv would forward the lookup to its workers
        return []
    transform = env.transform
    return [t for t in [transform, *getattr(transform, "transforms", [])] if isinstance(t, cls)]


def transform_path(env: EnvBase, prefix: str = "env") -> str:
    """Attribute path of the :class:`CurriculumTransform` inside ``env``, for ``map_fn``.

    Raises:
        ValueError: ``env`` has no CurriculumTransform.
    """
    if isinstance(env, TransformedEnv):
        t = env.transform
        if isinstance(t, CurriculumTransform):
            return f"{prefix}.transform"
        if isinstance(t, Compose):
            for i, sub in enumerate(t.transforms):
                if isinstance(sub, CurriculumTransform):
                    return f"{prefix}.transform[{i}]"
    raise ValueError(f"env has no CurriculumTransform among its transforms: {env!r}")


def sync_workers(collector: Any, curriculum: Curriculum, path: str, refresh: bool = False) -> None:
    """Push ``curriculum``'s state to the transform replica in every worker of ``collector``.

    Args:
        collector: a TorchRL multi-process collector (``MultiSyncCollector``).
        curriculum (Curriculum): the authoritative curriculum (trainer process).
        path (str): attribute path of the transform in a worker collector, e.g. from
            :func:`transform_path` on an env built like the workers' (``"env.transform[1]"``).
        refresh (bool): also re-sample every env's task now.
    """
    state = curriculum.state_dict()
    n = len(collector.pipes)
    collector.map_fn(f"{path}.sync", list_of_args=[(state, refresh)] * n)


class CurriculumHook(TrainerHookBase):
    """Drives a curriculum from a TorchRL :class:`~torchrl.trainers.Trainer` (an adapter on
    :class:`~currlearn.driver.CurriculumDriver`).

    ``batch_process``: per-episode feedback from the fresh batch -> ``curriculum.update``
    (with ``feedback_at="pre_epoch"``: at the first ``pre_epoch`` instead, see below).
    ``post_steps``: ``curriculum.step(frames)``, then push the decision to the envs (refresh
    the transform for curricula that change mid-episode; sync worker replicas).
    ``post_steps_log``: the curriculum's metrics, through the trainer's logger, at most once
    every ``log_interval`` frames. Checkpoints (the trainer module ``"curriculum"``) hold the
    curriculum and the envs' current tasks.

    Args:
        curriculum (Curriculum, optional): the authoritative curriculum. Default: the
            curriculum of the :class:`CurriculumTransform` found on ``trainer.collector.env``
            at :meth:`register`, so a config that builds the env's transform and this hook
            drives one object. Given, and the trainer's env has CurriculumTransforms for other
            curricula only, :meth:`register` raises.
        transform (CurriculumTransform, optional): the in-process transform (to refresh it and
            restore its tasks). Default: the one for ``curriculum`` on ``trainer.collector.env``
            (found at :meth:`register`).
        tracker (EpisodeTracker, optional): how feedback is read from batches; default
            ``curriculum.make_tracker(task_key=("next", transform.task_key))``.
        collector (optional): a multi-process collector whose workers hold replicas. When
            it was built with a :func:`~currlearn.integrations.sync.decision_schemes`
            (``MultiSyncCollector``, ``MultiAsyncCollector``, ``RayCollector``), the decision is
            pushed through it once the hook has its curriculum, after every update and after a
            load; otherwise (``MultiSyncCollector`` only) with :func:`sync_workers`. A push to
            a worker that is gone raises :class:`~currlearn.integrations.sync.WorkerLostError`.
        worker_path (str, optional): path of the transform in a worker (see :func:`transform_path`);
            needed without a decision scheme, or to choose among several.
        env_id_key, version_key (NestedKey, optional): the workers' transforms'
            ``env_id_key`` / ``version_key``, read by the default tracker (``env_id_key`` is
            needed with ``MultiAsyncCollector``: its batches hold one worker's envs in turn).
        refresh_every_iteration (bool, optional): re-sample every env's task after each
            iteration. Default: ``not curriculum.per_episode`` (True for ``ScheduledCurriculum``).
        feedback_at (str): ``"batch_process"`` (default) reads the batch as collected.
            ``"pre_epoch"`` reads it at the first epoch's ``pre_epoch``, placed before the op
            that fills the replay buffer (which flattens the batch), after TorchRL's
            ``ValueEstimatorHook``, whatever the order of registration (placed at ``register``
            and again when training starts): curricula that score episodes from advantages
            (PLR) read the GAE that PPO computes anyway. If no epoch
            runs (``init_random_frames``), the update happens at ``post_steps``.
        log_interval (int): frames between two metric reports, with the ``Trainer``'s rule (a
            report once more than ``log_interval`` frames were collected since the last one);
            0 reports every iteration.
    """

    FEEDBACK_POINTS = ("batch_process", "pre_epoch")

    def __init__(
        self,
        curriculum: Curriculum | None = None,
        *,
        transform: CurriculumTransform | None = None,
        tracker: EpisodeTracker | None = None,
        collector: Any = None,
        worker_path: str | None = None,
        refresh_every_iteration: bool | None = None,
        feedback_at: str = "batch_process",
        log_interval: int = 0,
        env_id_key: NestedKey | None = None,
        version_key: NestedKey | None = None,
    ) -> None:
        if curriculum is not None and not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a currlearn Curriculum or None, got {type(curriculum).__name__}.")
        if transform is not None and not isinstance(transform, CurriculumTransform):
            raise TypeError(f"transform must be a CurriculumTransform or None, got {type(transform).__name__}.")
        if transform is not None and curriculum is not None and transform.curriculum is not curriculum:
            raise ValueError("transform drives another curriculum object than curriculum: give one of the two.")
        if collector is not None and worker_path is None and not _decision_schemes(collector):
            raise ValueError(
                "collector is given without a curriculum decision scheme (currlearn.integrations.sync.decision_schemes) "
                "and worker_path is not: pass worker_path=transform_path(make_env())."
            )
        self.feedback_at = check_choice("feedback_at", feedback_at, self.FEEDBACK_POINTS)
        self.collector = collector
        self.worker_path = worker_path
        sync = [self._sync] if collector is not None else []
        self._args = {"tracker": tracker, "refresh_every_iteration": refresh_every_iteration, "on_decision": sync}
        self._args.update(env_id_key=env_id_key, version_key=version_key)
        self._args["log_interval"] = check_positive_int("log_interval", log_interval, minimum=0)
        self.driver: CurriculumDriver | None = None
        self._collector_of_trainer: Any = None  # the trainer's collector, known at register
        if curriculum is not None or transform is not None:
            self._drive(curriculum if curriculum is not None else transform.curriculum, transform)  # type: ignore[union-attr]

    def _drive(self, curriculum: Curriculum, transform: CurriculumTransform | None) -> CurriculumDriver:
        if self.collector is not None:
            refuse_in_workers(curriculum)
        self.driver = CurriculumDriver(curriculum, transform, **self._args)
        if self.collector is not None and self._find_scheme() is not None:
            # The workers start from the trainer's decision (over Ray, this first push also sets
            # up TorchRL's process group before the collector's first iteration).
            self._sync(refresh=False)
        return self.driver

    @property
    def scheme(self) -> Any:
        """The collector's decision scheme (see :func:`~currlearn.integrations.sync.decision_schemes`)
        for :attr:`worker_path`, or None (pushes then use :func:`sync_workers`)."""
        found = self._find_scheme()
        return found[1] if found else None

    def _find_scheme(self) -> tuple[str, Any] | None:
        mine = _decision_schemes(self.collector)
        if self.worker_path is not None:
            mine = [(k, s) for k, s in mine if s.worker_path == self.worker_path]
        if len(mine) > 1:
            raise ValueError(
                f"the collector has {len(mine)} curriculum decision schemes ({[k for k, _ in mine]}): pass worker_path= "
                "to say which one this hook pushes."
            )
        return mine[0] if mine else None

    def _sync(self, refresh: bool) -> None:
        found = self._find_scheme()
        if found is None:
            sync_workers(self.collector, self.curriculum, self.worker_path, refresh=refresh)  # type: ignore[arg-type]
            return
        model_id, scheme = found
        version = self.curriculum.decision_version  # type: ignore[union-attr]
        procs = getattr(self.collector, "procs", None)
        check_workers(procs, version)
        if hasattr(scheme, "watch"):
            scheme.watch(procs, version)
        scheme.source.capture(self.curriculum, refresh=refresh)
        try:
            self.collector.update_policy_weights_(weights=scheme.source.weights(), model_id=model_id)
        except WorkerLostError:
            raise
        except Exception as e:
            gone = _ray_worker_gone(e)
            if gone is None:
                raise
            raise WorkerLostError(f"{gone}; resume from the trainer's last checkpoint with new workers.") from e

    def _run(self) -> CurriculumDriver:
        if self.driver is None:
            raise RuntimeError("CurriculumHook has no curriculum yet: register it on a trainer or pass curriculum=.")
        return self.driver

    curriculum = property(lambda self: self.driver.curriculum if self.driver else None, doc="The driven curriculum.")
    transform = property(lambda self: self.driver.transform if self.driver else None, doc="The in-process transform.")
    tracker = property(lambda self: self._run().tracker, doc="The feedback tracker.")
    refresh_every_iteration = property(lambda self: self._run().refresh_every_iteration)
    log_interval = property(lambda self: self._args["log_interval"])

    def process_batch(self, batch: TensorDictBase) -> TensorDictBase:
        """``batch_process`` op: update the curriculum from the batch's finished episodes (or,
        with ``feedback_at="pre_epoch"``, keep the batch for the first epoch).
        """
        return self._run().observe(batch, defer=self.feedback_at == "pre_epoch")

    def first_epoch(self, batch: TensorDictBase) -> TensorDictBase:
        """``pre_epoch`` op (``feedback_at="pre_epoch"``): update the curriculum once per
        iteration, from the batch as the ops before this one left it.
        """
        driver = self._run()
        pending = driver.pending
        if pending is not None and batch is not None and batch.batch_size != pending.batch_size:
            raise ValueError(
                f"The pre_epoch batch has shape {list(batch.batch_size)}, the collected one "
                f"{list(pending.batch_size)}: an op registered before the curriculum hook reshaped it "
                "(ReplayBufferTrainer.extend flattens it); register the hook right after the ValueEstimatorHook."
            )
        driver.feedback(batch)
        return batch

    def end_iteration(self) -> None:
        """``post_steps`` op: advance the curriculum's iteration and apply its decision.

        After a refresh (curricula whose decision changes mid-episode), the new parameters
        are also written into the collector's next step input, so that the first transition of
        the next batch records the parameters it is played with.
        """
        driver = self._run()
        driver.step()
        transform = driver.transform
        carrier = getattr(self._collector_of_trainer, "_carrier", None)
        if driver.refresh_every_iteration and transform is not None and transform.tasks is not None:
            if carrier is not None and transform.param_key in carrier.keys(True):
                transform._write(carrier)

    def log(self, batch: TensorDictBase | None = None) -> dict[str, float] | None:
        """``post_steps_log`` op: the curriculum's metrics (logged by the trainer), or None
        while fewer than ``log_interval`` frames passed since the last report.
        """
        return self._run().report()

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return self._run().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        self._run().load_state_dict(state_dict)

    def register(self, trainer: Any, name: str = "curriculum") -> None:
        """Find the curriculum (or its transform) on ``trainer.collector.env``, register the
        ops on ``trainer`` and the hook as the trainer module ``name``.

        Raises:
            ValueError: no curriculum was given and the env has no CurriculumTransform (or
                several), or the curriculum given is not the one the env's transform drives.
        """
        found = find_transforms(getattr(trainer.collector, "env", None), CurriculumTransform)
        if self.driver is None:
            if len(found) != 1:
                raise ValueError(
                    f"CurriculumHook without a curriculum drives the CurriculumTransform of trainer.collector.env, "
                    f"which has {len(found)}: pass curriculum= (and transform=) to the hook."
                )
            self._drive(found[0].curriculum, found[0])
        elif self.transform is None and found:
            mine = [t for t in found if t.curriculum is self.curriculum]
            if not mine:
                raise ValueError(
                    "The trainer's env has a CurriculumTransform driving another curriculum object than the hook's "
                    "(a config that interpolates ${curriculum} in both builds two): drop `curriculum` from the hook "
                    "config: it drives the transform's curriculum."
                )
            self._run().attach(mine[0])
        trainer.register_op("batch_process", self.process_batch)
        if self.feedback_at == "pre_epoch":
            trainer.register_op("pre_epoch", self.first_epoch)
            self._place_first_epoch(trainer)
            trainer.register_op("setup", lambda: self._place_first_epoch(trainer))
        trainer.register_op("post_steps", self.end_iteration)
        trainer.register_op("post_steps_log", self.log)
        trainer.register_module(name, self)
        self._collector_of_trainer = trainer.collector

    def _place_first_epoch(self, trainer: Any) -> None:
        """Move :meth:`first_epoch` among the trainer's ``pre_epoch`` ops: right before the
        first op that fills a replay buffer (it flattens the batch), or else right after the
        last value estimator.
        """
        ops = getattr(trainer, "_pre_epoch_ops", None)
        if not isinstance(ops, list):
            return
        inner = [_unwrap(op) for op, _ in ops]
        mine = [i for i, op in enumerate(inner) if op == self.first_epoch]
        if not mine:
            return
        entry = ops.pop(mine[0])
        del inner[mine[0]]
        estimators = [i for i, op in enumerate(inner) if isinstance(op, ValueEstimatorHook)]
        fillers = [i for i, op in enumerate(inner) if _fills_buffer(op)]
        at = fillers[0] if fillers else estimators[-1] + 1 if estimators else len(ops)
        ops.insert(at, entry)


def _decision_schemes(collector: Any) -> list[tuple[str, Any]]:
    """``(model_id, scheme)`` of the collector's curriculum decision schemes."""
    schemes = getattr(collector, "_weight_sync_schemes", None) or {}
    return [(k, s) for k, s in schemes.items() if isinstance(s, _DecisionSender)]


def _unwrap(op: Any) -> Any:
    while hasattr(op, "__wrapped__"):
        op = op.__wrapped__
    return op


def _fills_buffer(op: Any) -> bool:
    # ReplayBufferTrainer.extend, or an op holding one (make_ppo_trainer's robust-PLR filter)
    return any(isinstance(getattr(op, a, None), ReplayBufferTrainer) for a in ("__self__", "rbt"))
