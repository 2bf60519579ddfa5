"""Curricula on Gymnasium envs (classic control, Box2D, MiniGrid, your own) through TorchRL.

A :class:`GymTaskEnv` is a TorchRL :class:`~torchrl.envs.GymWrapper` whose reset reads the
task parameters that :class:`~currlearn.integrations.torchrl.CurriculumTransform` writes under
``"params"`` in the reset input, and applies them to the Gymnasium env *before* resetting it,
so the first observation already belongs to the task. How a task reaches the env is a
:class:`TaskApplier`:

==================== ==========================================================================
applier              a task is ...
==================== ==========================================================================
:class:`SetAttributes`     attribute values set on ``env.unwrapped`` (or a setter), per env, at
                           reset: CartPole ``length``/``masscart``, LunarLander ``gravity``.
:class:`RebuildFromKwargs` constructor arguments: ``gym.make(env_id, **kwargs)``, rebuilt only
                           when the task's arguments differ from the current env's.
:class:`ChooseEnvId`       an index into a list of registered env ids (MiniGrid ladders), all
                           with one observation/action spec (checked, or declared).
:class:`LevelSeeds`        a level seed from a declared set, passed to ``reset(seed=...)``.
==================== ==========================================================================

The parameters are part of the env's state spec, so ``ParallelEnv`` forwards them to its
workers; inside ``MultiSyncCollector`` workers the transform (with a curriculum replica) sits
in the worker next to the env. Either way every transition carries its ``task_id`` (written by
the transform). With ``record_applied=True`` the env also reports, under ``"applied"``, the
values read back from the Gymnasium env after applying a task (e.g. ``env.unwrapped.length``),
which is how the tests check that a task took effect in a worker process.

Gymnasium and MiniGrid are imported lazily, when an env is built.

Examples:
    >>> from torchrl.envs import TransformedEnv
    >>> from currlearn import DomainRandomization, DiscreteSpace
    >>> from currlearn.integrations.torchrl import CurriculumTransform
    >>> from currlearn.integrations.gym import GymTaskEnv, SetAttributes
    >>> space = DiscreteSpace({"length": [0.25, 0.5, 1.0]})
    >>> base = GymTaskEnv(SetAttributes("CartPole-v1", ["length"]), record_applied=True)
    >>> env = TransformedEnv(base, CurriculumTransform(DomainRandomization(space, seed=0)))
    >>> td = env.reset()
    >>> bool(td["applied", "length"] == space.params(td["task_id"])["length"])
    True
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, Unbounded
from torchrl.envs import GymWrapper

__all__ = [
    "ChooseEnvId",
    "batched_env",
    "GymTaskEnv",
    "LevelSeeds",
    "RebuildFromKwargs",
    "SetAttributes",
    "TaskApplier",
    "evaluate_seeds",
    "make_cartpole_params_env",
    "make_minigrid_ladder_env",
    "make_minigrid_seeds_env",
    "seed_spaces",
    "set_cartpole_params",
    "with_curriculum",
]

Wrapper = Callable[[Any], Any] | str


# ---------------------------------------------------------------------------------- helpers
def _resolve(obj: Wrapper) -> Callable[[Any], Any]:
    """A wrapper given as a callable or as a dotted path (``"minigrid.wrappers.ImgObsWrapper"``)."""
    if not isinstance(obj, str):
        return obj
    module, _, name = obj.rpartition(".")
    if not module:
        raise ValueError(f"wrapper {obj!r} must be a dotted path such as 'minigrid.wrappers.ImgObsWrapper'.")
    return getattr(importlib.import_module(module), name)


def _make(env_id: str, kwargs: Mapping[str, Any], wrappers: Sequence[Wrapper]) -> Any:
    import gymnasium as gym

    if env_id.startswith("MiniGrid-") or env_id.startswith("BabyAI-"):
        import minigrid  # noqa: F401  (registers the MiniGrid ids)
    if env_id not in gym.registry:
        close = [k for k in gym.registry if env_id.split("-")[0] in k][:10]
        raise ValueError(f"env id {env_id!r} is not registered in gymnasium; similar ids: {close}.")
    env = gym.make(env_id, disable_env_checker=True, **kwargs)
    for w in wrappers:
        env = _resolve(w)(env)
    return env


def _numeric_attributes(obj: Any) -> list[str]:
    import numpy as np

    return sorted(
        k
        for k, v in vars(obj).items()
        if not k.startswith("_") and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    )


def _as_dtypes(params: Sequence[str] | Mapping[str, torch.dtype], argument: str) -> dict[str, torch.dtype]:
    if isinstance(params, str):
        raise TypeError(f"{argument} must be a list of names or a mapping name -> dtype, got the string {params!r}.")
    out = dict(params) if isinstance(params, Mapping) else {p: torch.get_default_dtype() for p in params}
    if not out:
        raise ValueError(f"{argument} must name at least one parameter, got {params!r}.")
    for k, v in out.items():
        if not isinstance(k, str) or not isinstance(v, torch.dtype):
            raise TypeError(f"{argument} must map str -> torch.dtype, got {k!r}: {v!r}.")
    return out


def _py(value: torch.Tensor) -> Any:
    """A scalar tensor as a Python bool, int or float."""
    return value.reshape(()).item()


def _space_summary(space: Any) -> str:
    shape = getattr(space, "shape", None)
    dtype = getattr(space, "dtype", None)
    return f"{type(space).__name__}(shape={shape}, dtype={dtype})" if shape is not None else repr(space)


def _compatible(space: Any, common: Any) -> bool:
    """Whether ``space`` fits the declared ``common`` space.

    Same kind, shape and dtype, and values within the declared bounds (Box) or categories (Discrete).
    """
    import gymnasium as gym
    import numpy as np

    if type(space) is not type(common):
        return False
    if isinstance(space, gym.spaces.Dict):
        return space.keys() == common.keys() and all(_compatible(space[k], common[k]) for k in space.keys())
    if isinstance(space, gym.spaces.Tuple):
        return len(space) == len(common) and all(_compatible(a, b) for a, b in zip(space, common, strict=True))
    if isinstance(space, gym.spaces.Discrete):
        return space.start >= common.start and space.start + space.n <= common.start + common.n
    if isinstance(space, gym.spaces.Box):
        return (
            space.shape == common.shape
            and space.dtype == common.dtype
            and bool(np.all(space.low >= common.low))
            and bool(np.all(space.high <= common.high))
        )
    return space == common


# ---------------------------------------------------------------------------------- appliers
class TaskApplier(ABC):
    """How a task's parameters reach a Gymnasium env. One instance per env (per process).

    Subclasses set ``self.dtypes`` (parameter name -> dtype, the order of the env's
    ``"params"`` entries) and implement :meth:`make`, :meth:`apply` and :meth:`applied`.
    Appliers must be picklable (plain data), since worker processes build their envs from them.
    """

    dtypes: dict[str, torch.dtype]

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters a task sets."""
        return tuple(self.dtypes)

    @abstractmethod
    def make(self) -> Any:
        """Build the initial Gymnasium env (validating the applier against it)."""

    @abstractmethod
    def apply(self, env: Any, task: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Apply ``task`` (name -> Python value, a subset of :attr:`names`) before a reset.

        Returns:
            ``(env, reset_kwargs)``: the env to reset (``env`` itself or a new one) and extra
            keyword arguments for ``env.reset`` (e.g. ``seed``).
        """

    @abstractmethod
    def applied(self, env: Any) -> dict[str, Any]:
        """Current parameter values, read back from ``env``."""

    def spaces(self, env: Any) -> tuple[Any, Any]:
        """``(observation_space, action_space)`` the TorchRL specs are built from."""
        return env.observation_space, env.action_space


def set_cartpole_params(env: Any, values: Mapping[str, Any]) -> None:
    """Setter for CartPole: set attributes, then recompute the derived masses.

    ``CartPoleEnv.__init__`` derives ``total_mass`` and ``polemass_length`` from ``masscart``,
    ``masspole`` and ``length``; setting ``length`` alone would leave the dynamics half-changed.
    """
    for name, value in values.items():
        setattr(env, name, value)
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


_DEFAULT_SETTERS: dict[str, Callable[[Any, Mapping[str, Any]], None]] = {"CartPoleEnv": set_cartpole_params}


class SetAttributes(TaskApplier):
    """Way 1: set attributes of the unwrapped env at every reset that brings a task.

    Sets ``env.unwrapped.<name> = value`` (or calls ``setter(env.unwrapped, values)``).

    Args:
        env_id (str): registered Gymnasium id, e.g. ``"CartPole-v1"``.
        params (list of str or mapping str -> dtype): attribute names (float by default).
        env_kwargs (mapping, optional): constructor arguments for ``gym.make``.
        setter (callable, optional): ``setter(unwrapped_env, {name: value})``; importable, so
            workers can unpickle it. Default: :func:`set_cartpole_params` for CartPole, else
            ``setattr`` of each value.
        wrappers (list, optional): Gymnasium wrappers (classes or dotted paths) applied in order.

    Raises:
        ValueError: (at :meth:`make`) an attribute the env does not have; the message lists the
            numeric attributes it has.
    """

    def __init__(
        self,
        env_id: str,
        params: Sequence[str] | Mapping[str, torch.dtype],
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        setter: Callable[[Any, Mapping[str, Any]], None] | None = None,
        wrappers: Sequence[Wrapper] = (),
    ) -> None:
        self.env_id = env_id
        self.dtypes = _as_dtypes(params, "params")
        self.env_kwargs = dict(env_kwargs or {})
        self.setter = setter
        self.wrappers = list(wrappers)

    def make(self) -> Any:  # noqa: D102
        env = _make(self.env_id, self.env_kwargs, self.wrappers)
        missing = [n for n in self.names if not hasattr(env.unwrapped, n)]
        if missing:
            raise ValueError(
                f"{self.env_id} ({type(env.unwrapped).__name__}) has no attribute(s) {missing}; "
                f"its numeric attributes are {_numeric_attributes(env.unwrapped)}."
            )
        return env

    def apply(self, env: Any, task: dict[str, Any]) -> tuple[Any, dict[str, Any]]:  # noqa: D102
        unwrapped = env.unwrapped
        setter = self.setter if self.setter is not None else _DEFAULT_SETTERS.get(type(unwrapped).__name__)
        if setter is not None:
            setter(unwrapped, task)
        else:
            for name, value in task.items():
                setattr(unwrapped, name, value)
        return env, {}

    def applied(self, env: Any) -> dict[str, Any]:  # noqa: D102
        return {n: getattr(env.unwrapped, n) for n in self.names}


class _SpecCheck:
    """Shared check that every env an applier builds has the first env's (or the declared) spaces."""

    observation_space: Any
    action_space: Any
    _label: str

    def _check_spaces(self, env: Any, what: str) -> None:
        obs, act = self.observation_space, self.action_space
        ok_obs = _compatible(env.observation_space, obs)
        ok_act = _compatible(env.action_space, act)
        if not (ok_obs and ok_act):
            raise ValueError(
                f"{what} has observation space {_space_summary(env.observation_space)} and action space "
                f"{_space_summary(env.action_space)}, which do not fit the common spec ({self._label}): "
                f"observation {_space_summary(obs)}, action {_space_summary(act)}. Declare a common "
                "observation_space/action_space that contains both, or add wrappers that map the envs to one spec."
            )


class RebuildFromKwargs(TaskApplier, _SpecCheck):
    """Way 2: a task is a set of constructor arguments.

    The env is rebuilt with ``gym.make(env_id, **env_kwargs, **task)`` when they differ from the current env's, and
    reused otherwise (:attr:`num_builds` counts builds).

    Args:
        env_id (str): registered Gymnasium id, e.g. ``"Pendulum-v1"`` (``g``) or
            ``"MiniGrid-DoorKey-5x5-v0"`` (``size``, an int: pass ``{"size": torch.int64}``).
        params (list of str or mapping str -> dtype): the constructor arguments a task sets.
        env_kwargs (mapping, optional): the other constructor arguments, and the initial values.
        wrappers (list, optional): Gymnasium wrappers applied to every build.
        observation_space, action_space (gymnasium spaces, optional): the declared common spec;
            default: the first build's.

    Raises:
        ValueError: the env rejects a task's arguments (the message shows the env's error and
            the task), or a rebuilt env does not fit the common spec.
    """

    def __init__(
        self,
        env_id: str,
        params: Sequence[str] | Mapping[str, torch.dtype],
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
        observation_space: Any = None,
        action_space: Any = None,
    ) -> None:
        self.env_id = env_id
        self.dtypes = _as_dtypes(params, "params")
        self.env_kwargs = dict(env_kwargs or {})
        self.wrappers = list(wrappers)
        self.observation_space = observation_space
        self.action_space = action_space
        self._label = "declared" if observation_space is not None or action_space is not None else "first build's"
        self.num_builds = 0
        self._current: dict[str, Any] = {}

    def _build(self, task: Mapping[str, Any]) -> Any:
        kwargs = {**self.env_kwargs, **task}
        try:
            env = _make(self.env_id, kwargs, self.wrappers)
        except Exception as e:
            raise ValueError(
                f"{self.env_id} rejected the constructor arguments of task {dict(task)} "
                f"(gym.make({self.env_id!r}, **{kwargs})): {type(e).__name__}: {e}"
            ) from e
        self.num_builds += 1
        return env

    def make(self) -> Any:  # noqa: D102
        env = self._build({})
        self._current = {n: self.env_kwargs.get(n, getattr(env.unwrapped, n, math.nan)) for n in self.names}
        if self.observation_space is None:
            self.observation_space = env.observation_space
        if self.action_space is None:
            self.action_space = env.action_space
        self._check_spaces(env, f"{self.env_id} built with {self.env_kwargs}")
        return env

    def apply(self, env: Any, task: dict[str, Any]) -> tuple[Any, dict[str, Any]]:  # noqa: D102
        new = {**self._current, **task}
        if new == self._current:
            return env, {}
        built = self._build(new)
        self._check_spaces(built, f"{self.env_id} built for task {task}")
        env.close()
        self._current = new
        return built, {}

    def applied(self, env: Any) -> dict[str, Any]:  # noqa: D102
        return dict(self._current)

    def spaces(self, env: Any) -> tuple[Any, Any]:  # noqa: D102
        return self.observation_space, self.action_space


class ChooseEnvId(TaskApplier, _SpecCheck):
    """Way 3: a task chooses one of several registered env ids (parameter ``env_index``).

    All envs are built once (on :meth:`make`) and kept; a reset switches to the chosen one. A
    float index (from a continuous curriculum) is rounded to the nearest id.

    Args:
        env_ids (list of str): e.g. ``["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0",
            "MiniGrid-DoorKey-8x8-v0"]``.
        env_kwargs (mapping, optional): constructor arguments for every id.
        wrappers (list, optional): Gymnasium wrappers applied to every env (MiniGrid:
            ``"minigrid.wrappers.ImgObsWrapper"`` keeps the 7x7x3 egocentric image, the same for
            every grid size).
        observation_space, action_space (gymnasium spaces, optional): the declared common spec
            every env must fit (same kind, shape and dtype; bounds inside). Default: the first
            env's spaces, which all others must equal.
        param (str): parameter name. Default ``"env_index"``.

    Raises:
        ValueError: an env whose spaces do not fit the common spec (names the id and both
            specs); an index outside ``[0, len(env_ids))``.
    """

    def __init__(
        self,
        env_ids: Sequence[str],
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
        observation_space: Any = None,
        action_space: Any = None,
        param: str = "env_index",
    ) -> None:
        if isinstance(env_ids, str) or len(env_ids) == 0:
            raise ValueError(f"env_ids must be a non-empty list of registered env ids, got {env_ids!r}.")
        self.env_ids = list(env_ids)
        self.env_kwargs = dict(env_kwargs or {})
        self.wrappers = list(wrappers)
        self.observation_space = observation_space
        self.action_space = action_space
        self._label = (
            "declared" if observation_space is not None or action_space is not None else f"that of {env_ids[0]}"
        )
        self.param = param
        self.dtypes = {param: torch.float64}  # exact for ints < 2**53; rounded at reset
        self._envs: list[Any] = []
        self._index = 0

    def make(self) -> Any:  # noqa: D102
        envs = [_make(i, self.env_kwargs, self.wrappers) for i in self.env_ids]
        if self.observation_space is None:
            self.observation_space = envs[0].observation_space
        if self.action_space is None:
            self.action_space = envs[0].action_space
        for env_id, env in zip(self.env_ids, envs, strict=True):
            self._check_spaces(env, env_id)
        self._envs = envs
        return envs[0]

    def index(self, value: Any) -> int:
        """The env index of a parameter value; raises ``ValueError`` outside the list."""
        i = round(value)
        if not 0 <= i < len(self.env_ids):
            raise ValueError(
                f"{self.param}={value!r} is outside [0, {len(self.env_ids)}): the env ids are {self.env_ids}."
            )
        return i

    def apply(self, env: Any, task: dict[str, Any]) -> tuple[Any, dict[str, Any]]:  # noqa: D102
        if self.param not in task:
            return env, {}
        self._index = self.index(task[self.param])
        return self._envs[self._index], {}

    def applied(self, env: Any) -> dict[str, Any]:  # noqa: D102
        return {self.param: self._index}

    def spaces(self, env: Any) -> tuple[Any, Any]:  # noqa: D102
        return self.observation_space, self.action_space

    @property
    def current_env_id(self) -> str:
        """The env id played now."""
        return self.env_ids[self._index]


class LevelSeeds(TaskApplier):
    """Way 2b: a task is a level seed, passed to ``env.reset(seed=...)``.

    For procedurally generated levels: MiniGrid layouts, or any env whose reset takes a seed). Parameter ``seed``.

    Args:
        env_id (str): registered id, e.g. ``"MiniGrid-DoorKey-5x5-v0"``.
        seeds (list of int): the declared seeds (training and test sets together); a seed
            outside them raises. See :func:`seed_spaces`.
        env_kwargs (mapping, optional), wrappers (list, optional): as for :class:`SetAttributes`.
        param (str): parameter name. Default ``"seed"``.

    Raises:
        ValueError: a seed outside the declared set.
    """

    def __init__(
        self,
        env_id: str,
        seeds: Sequence[int],
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
        param: str = "seed",
    ) -> None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must declare at least one level seed, got an empty list.")
        self.env_id = env_id
        self.seeds = seeds
        self._allowed = frozenset(seeds)
        self.env_kwargs = dict(env_kwargs or {})
        self.wrappers = list(wrappers)
        self.param = param
        self.dtypes = {param: torch.float64}  # exact for ints < 2**53; rounded at reset
        self._seed = -1

    def make(self) -> Any:  # noqa: D102
        return _make(self.env_id, self.env_kwargs, self.wrappers)

    def apply(self, env: Any, task: dict[str, Any]) -> tuple[Any, dict[str, Any]]:  # noqa: D102
        if self.param not in task:
            return env, {}
        seed = round(task[self.param])
        if seed not in self._allowed:
            lo, hi = min(self.seeds), max(self.seeds)
            raise ValueError(
                f"seed {seed} is outside the {len(self.seeds)} declared level seeds "
                f"(from {lo} to {hi}, first ones {self.seeds[:5]}); declare it in LevelSeeds(seeds=...)."
            )
        self._seed = seed
        return env, {"seed": seed}

    def applied(self, env: Any) -> dict[str, Any]:  # noqa: D102
        return {self.param: self._seed}


# ---------------------------------------------------------------------------------- the env
_GIVEN = "_given"


class GymTaskEnv(GymWrapper):
    """A TorchRL ``GymWrapper`` whose tasks are applied at reset by a :class:`TaskApplier`.

    The reset input's ``param_key`` entries (written by ``CurriculumTransform``) are applied
    before the Gymnasium env resets; entries that are absent leave the env as it is. The
    parameters are in the state spec (ParallelEnv forwards them to workers) and in the reset
    output (the values in force).

    Args:
        applier (TaskApplier): one of :class:`SetAttributes`, :class:`RebuildFromKwargs`,
            :class:`ChooseEnvId`, :class:`LevelSeeds`, or your own.
        param_key (NestedKey): where the parameters are read. Default ``"params"``.
        record_applied (bool): also output, at reset and every step, the values read back from
            the Gymnasium env under ``"applied"`` (float32 scalars).
        success_from_reward (bool): output ``"success"`` = terminated with a positive reward at
            that step (MiniGrid's goal convention), for ``LevelCurriculum(metric="success")``.
        categorical_action_encoding (bool): discrete actions as integers rather than one-hot.
        device: the TorchRL device.
    """

    def __init__(
        self,
        applier: TaskApplier,
        *,
        param_key: NestedKey = "params",
        record_applied: bool = False,
        success_from_reward: bool = False,
        categorical_action_encoding: bool = False,
        device: torch.device | str | None = None,
        _torchrl_native_autoreset_requested: bool = False,  # injected by GymWrapper's metaclass
    ) -> None:
        if not isinstance(applier, TaskApplier):
            raise TypeError(
                f"applier must be a TaskApplier (SetAttributes, RebuildFromKwargs, ChooseEnvId, LevelSeeds), got {type(applier).__name__}."
            )
        self._applier = applier
        self._param_key = param_key
        self._record_applied = record_applied
        self._success_from_reward = success_from_reward
        self._current_params: TensorDictBase | None = None
        self._current_applied: TensorDictBase | None = None
        env = applier.make()
        kwargs: dict[str, Any] = {
            "categorical_action_encoding": categorical_action_encoding,
            "_torchrl_native_autoreset_requested": _torchrl_native_autoreset_requested,
        }
        if device is not None:
            kwargs["device"] = device
        super().__init__(env=env, **kwargs)

    @property
    def applier(self) -> TaskApplier:
        """The applier (holds the current task's state in this process)."""
        return self._applier

    def _make_specs(self, env: Any, batch_size: Any = None) -> None:
        import types

        obs_space, act_space = self._applier.spaces(env)
        view = types.SimpleNamespace(observation_space=obs_space, action_space=act_space, reward_space=None)
        # a single array observation is "observation" even when it is an image (GymWrapper
        # would call it "pixels"), so that policies read one key for every env of a ladder
        self.from_pixels = False
        super()._make_specs(view, batch_size)
        shape = self.batch_size
        params = Composite(
            {n: Unbounded(shape=shape, dtype=d, device=self.device) for n, d in self._applier.dtypes.items()},
            **{_GIVEN: Unbounded(shape=shape, dtype=torch.int64, device=self.device)},
            shape=shape,
            device=self.device,
        )
        state = self.full_state_spec.clone() if self.full_state_spec is not None else Composite(shape=shape)
        state[self._param_key] = params
        self.full_state_spec = state
        if self._record_applied:
            self.observation_spec["applied"] = Composite(
                {n: Unbounded(shape=shape, dtype=torch.float32, device=self.device) for n in self._applier.names},
                shape=shape,
                device=self.device,
            )
        if self._success_from_reward:
            self.observation_spec["success"] = Unbounded(shape=(*shape, 1), dtype=torch.bool, device=self.device)

    def gen_params(self, batch_size: Any = None) -> TensorDict:
        """The parameters in force, as ``{param_key: {...}}``.

        Read by ``CurriculumTransform`` on its first reset, as for TorchRL's ``PendulumEnv.gen_params``).
        """
        td = TensorDict({}, batch_size=self.batch_size, device=self.device)
        td.set(self._param_key, self._params_td())
        if batch_size is not None and tuple(batch_size) != tuple(self.batch_size):
            td = td.expand(*batch_size).clone()
        return td

    def _params_td(self) -> TensorDict:
        values = self._applier.applied(self._env)
        out = {n: torch.tensor(values[n], dtype=d, device=self.device) for n, d in self._applier.dtypes.items()}
        out[_GIVEN] = torch.ones((), dtype=torch.int64, device=self.device)
        return TensorDict(
            out,
            batch_size=self.batch_size,
            device=self.device,
        )

    def _applied_td(self) -> TensorDict:
        values = self._applier.applied(self._env)
        return TensorDict(
            {n: torch.tensor(float(values[n]), dtype=torch.float32, device=self.device) for n in self._applier.names},
            batch_size=self.batch_size,
            device=self.device,
        )

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        params = tensordict.get(self._param_key, None) if tensordict is not None else None
        # A ParallelEnv worker receives zeros (its shared buffer's initial value) when the reset
        # input carried no parameters: the _given flag (1 in every parameter set this env
        # outputs) tells them apart from a real task.
        if params is not None and _GIVEN in params.keys() and not bool(params.get(_GIVEN).reshape(-1)[0]):
            params = None
        if params is not None:
            task = {n: _py(params.get(n)) for n in self._applier.names if n in params.keys()}
            if task:
                env, reset_kwargs = self._applier.apply(self._env, task)
                if env is not self._env:
                    self._env = env
                kwargs = {**reset_kwargs, **kwargs}
        out = super()._reset(tensordict, **kwargs)
        self._current_params = self._params_td()
        self._current_applied = self._applied_td() if self._record_applied else None
        out.set(self._param_key, self._current_params.clone())
        if self._current_applied is not None:
            out.set("applied", self._current_applied.clone())
        if self._success_from_reward:
            out.set("success", torch.zeros((*self.batch_size, 1), dtype=torch.bool, device=self.device))
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = super()._step(tensordict)
        # the parameters hold for the whole episode: carry them, so that step_mdp keeps them at
        # the root and batches stack (also without a CurriculumTransform)
        out.set(self._param_key, self._current_params.clone())
        if self._current_applied is not None:
            out.set("applied", self._current_applied.clone())
        if self._success_from_reward:
            out.set("success", out.get("terminated") & (out.get("reward") > 0))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(applier={type(self._applier).__name__}, env={self._env}, batch_size={self.batch_size})"


def with_curriculum(
    env: Any, curriculum: Any, *, param_key: NestedKey = "params", task_key: NestedKey = "task_id"
) -> Any:
    """``TransformedEnv(env, CurriculumTransform(curriculum))``, ready for a collector.

    On a batched env (``ParallelEnv``/``SerialEnv`` of :class:`GymTaskEnv`) the transform's first
    reset lets the workers reset with their own parameters, then resets them again with the
    sampled tasks' parameters, so every episode plays the task it is tagged with.

    Returns:
        The ``TransformedEnv``.
    """
    from torchrl.envs import TransformedEnv

    from currlearn.integrations.torchrl import CurriculumTransform

    return TransformedEnv(env, CurriculumTransform(curriculum, param_key=param_key, task_key=task_key))


# ---------------------------------------------------------------------------------- seeds
def seed_spaces(num_train: int, num_test: int, *, start: int = 0) -> tuple[Any, Any, list[int]]:
    """Training and held-out test level seeds, as discrete task spaces over ``seed``.

    Training seeds are ``start .. start+num_train-1``; test seeds the next ``num_test``.

    Returns:
        ``(train_space, test_space, all_seeds)``; pass ``all_seeds`` to :class:`LevelSeeds`.

    Examples:
        >>> train, test, seeds = seed_spaces(4, 2)
        >>> train.num_tasks, test.params(torch.tensor([0, 1]))["seed"].tolist(), seeds[-1]
        (4, [4, 5], 5)
    """
    from currlearn.spaces import DiscreteSpace

    for name, v in (("num_train", num_train), ("num_test", num_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
    train = list(range(start, start + num_train))
    test = list(range(start + num_train, start + num_train + num_test))
    return DiscreteSpace({"seed": train}), DiscreteSpace({"seed": test}), train + test


def evaluate_seeds(
    env: GymTaskEnv, policy: Callable[[TensorDictBase], TensorDictBase] | None, seeds: Sequence[int], max_steps: int
) -> TensorDict:
    """Play one episode per seed (a Python loop over seeds: evaluation, not a hot path).

    Args:
        env (GymTaskEnv): a single env with a :class:`LevelSeeds` applier (no transform needed).
        policy: a TorchRL policy module, or None for random actions.
        seeds (list of int): the seeds to evaluate, e.g. the test set.
        max_steps (int): step limit per episode.

    Returns:
        TensorDict with batch size ``[len(seeds)]``: ``seed``, ``return``, ``length``,
        ``success`` (``terminated`` with a positive last reward).
    """
    applier = env.applier
    if not isinstance(applier, LevelSeeds):
        raise TypeError(f"evaluate_seeds needs an env with a LevelSeeds applier, got {type(applier).__name__}.")
    rets, lens, succ = [], [], []
    for s in seeds:
        td = env.reset(TensorDict({env._param_key: {applier.param: torch.tensor(int(s))}}))
        roll = env.rollout(max_steps, policy, auto_reset=False, tensordict=td, break_when_any_done=True)
        reward = roll["next", "reward"].reshape(-1)
        rets.append(reward.sum())
        lens.append(torch.tensor(reward.numel()))
        succ.append(roll["next", "terminated"].reshape(-1)[-1] & (reward[-1] > 0))
    return TensorDict(
        {
            "seed": torch.tensor([int(s) for s in seeds]),
            "return": torch.stack(rets),
            "length": torch.stack(lens),
            "success": torch.stack(succ).float(),
        },
        batch_size=[len(seeds)],
    )


# ---------------------------------------------------------------------------------- factories
def make_cartpole_params_env(
    env_id: str = "CartPole-v1",
    params: Sequence[str] = ("length", "masscart"),
    record_applied: bool = False,
) -> GymTaskEnv:
    """The ``env=cartpole_params`` env: CartPole whose ``length``/``masscart`` are set per task.

    One env (of a ``SerialEnv`` / ``ParallelEnv``); the app's ``env.make_env`` node builds it
    with Hydra (``_partial_: true``) for :func:`batched_env`, see ``conf/env/cartpole_params.yaml``.
    """
    return GymTaskEnv(SetAttributes(env_id, list(params)), record_applied=record_applied)


def make_minigrid_ladder_env(
    env_ids: Sequence[str] = ("MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0"),
    wrappers: Sequence[str] = ("minigrid.wrappers.ImgObsWrapper",),
    max_steps: int | None = None,
    record_applied: bool = False,
) -> GymTaskEnv:
    """The ``env=minigrid_doorkey_ladder`` env: a task picks one of ``env_ids`` (``env_index``).

    ``max_steps`` (optional) overrides MiniGrid's episode limit (``10 * size**2`` for DoorKey).
    """
    kwargs = {} if max_steps is None else {"max_steps": max_steps}
    return GymTaskEnv(
        ChooseEnvId(list(env_ids), env_kwargs=kwargs, wrappers=list(wrappers)),
        record_applied=record_applied,
        success_from_reward=True,
    )


def make_minigrid_seeds_env(
    env_id: str = "MiniGrid-DoorKey-5x5-v0",
    num_train_seeds: int = 200,
    num_test_seeds: int = 50,
    wrappers: Sequence[str] = ("minigrid.wrappers.ImgObsWrapper",),
    max_steps: int | None = None,
    record_applied: bool = False,
) -> GymTaskEnv:
    """The ``env=minigrid_seeds`` env: a task is a level seed.

    Seeds ``0..num_train_seeds-1`` train, the next ``num_test_seeds`` are held out (declared, so evaluation may use them).
    """
    _, _, seeds = seed_spaces(num_train_seeds, num_test_seeds)
    kwargs = {} if max_steps is None else {"max_steps": max_steps}
    return GymTaskEnv(
        LevelSeeds(env_id, seeds, env_kwargs=kwargs, wrappers=list(wrappers)),
        record_applied=record_applied,
        success_from_reward=True,
    )


BATCHED = ("serial", "parallel")


def batched_env(
    make_env: Callable[[], Any],
    num_envs: int = 1,
    batched: str = "serial",
    seed: int | None = None,
) -> Any:
    """``num_envs`` copies of the env ``make_env()`` builds, as one batched TorchRL env.

    Args:
        make_env (callable): builds one env (e.g. ``functools.partial(make_cartpole_params_env,
            ...)``; in a Hydra config, a node with ``_partial_: true``).
        num_envs (int): envs in the batch.
        batched (str): ``"serial"`` steps them one by one in this process (``SerialEnv``),
            ``"parallel"`` in worker processes (``ParallelEnv``).
        seed (int, optional): seeds the batch (``env.set_seed``).

    Raises:
        ValueError: ``num_envs`` < 1 or an unknown ``batched``.
    """
    from torchrl.envs import ParallelEnv, SerialEnv

    from currlearn.base import check_choice, check_positive_int

    check_positive_int("num_envs", num_envs)
    check_choice("batched", batched, BATCHED)
    if not callable(make_env):
        raise TypeError(f"make_env must be callable (a factory of one env), got {type(make_env).__name__}.")
    env = (ParallelEnv if batched == "parallel" else SerialEnv)(num_envs, make_env)
    if seed is not None:
        env.set_seed(seed)
    return env
