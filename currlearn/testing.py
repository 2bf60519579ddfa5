"""Helpers for currlearn's tests and for users testing their own curricula.

Examples:
    >>> from currlearn.testing import get_default_devices
    >>> get_default_devices()[0]
    device(type='cpu')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = [
    "HOSTILE_VALUES",
    "assert_state_dicts_equal",
    "check_numeric_contract",
    "get_default_devices",
    "hostile_feedback",
    "make_pendulum_with_step_counter",
    "make_scheduled_pendulum",
    "make_worker_pendulum",
    "numeric_contract_test",
]


def get_default_devices() -> list[torch.device]:
    """Devices to parametrize tests over: CPU, plus the first CUDA device when one is available.

    The CUDA device carries its index (``cuda:0``) so that it compares equal to the ``device``
    attribute of the tensors placed on it.

    Returns:
        A list of :class:`torch.device`, CPU first.
    """
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda:0"))
    return devices


def make_scheduled_pendulum(num_envs: int = 2, total: int = 3) -> object:
    """A batched pendulum whose mass follows ``LinearSchedule(0.5, 2.0, total)``.

    Importable (not a lambda) so that collector worker processes started with ``spawn``
    can build it.
    """
    from torchrl.envs import StepCounter, TransformedEnv

    from currlearn.curricula import ScheduledCurriculum
    from currlearn.envs import make_pendulum
    from currlearn.integrations.torchrl import CurriculumTransform
    from currlearn.schedules import LinearSchedule

    curriculum = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=total)}, seed=0)
    env = TransformedEnv(make_pendulum(num_envs, seed=0), StepCounter(max_steps=4))
    env.append_transform(CurriculumTransform(curriculum))
    return env


def make_worker_pendulum(
    worker: int = 0, num_envs: int = 2, max_steps: int = 4, kind: str = "schedule", workers: int = 2
) -> object:
    """A collector worker's env: a batched pendulum (:func:`~currlearn.envs.pendulum_env`, with a
    vector ``"observation"``) that truncates every ``max_steps`` steps, with a CurriculumTransform whose replica is fed through its ``decision`` (see
    :mod:`currlearn.integrations.sync`), tagging transitions with ``"env_id"`` (global:
    ``worker * num_envs + i``) and ``"decision_version"``.

    ``kind``: ``"schedule"`` (the mass follows ``LinearSchedule(0.5, 2.0, total=3)``) or
    ``"ladder"`` (a per-env ``LevelCurriculum`` over masses ``[0.5, 1.0, 1.5, 2.0]`` for
    ``workers * num_envs`` envs, which never promotes: pendulum returns are below 0) or
    ``"plr"`` (PLR over 1e5 masses in ``[0.5, 2]``).
    Build the trainer's curriculum with :func:`make_worker_curriculum` (same arguments).
    """
    from currlearn.envs import pendulum_env
    from currlearn.integrations.torchrl import CurriculumTransform

    curriculum = make_worker_curriculum(kind, num_envs * workers)
    env = pendulum_env(num_envs, max_steps=max_steps, seed=worker)
    env.append_transform(
        CurriculumTransform(
            curriculum, env_offset=worker * num_envs, env_id_key="env_id", version_key="decision_version"
        )
    )
    return env


def make_worker_curriculum(kind: str = "schedule", total_envs: int = 4) -> object:
    """The curriculum of :func:`make_worker_pendulum` (the trainer's copy)."""
    from currlearn.curricula import LevelCurriculum, ScheduledCurriculum
    from currlearn.schedules import LinearSchedule

    if kind == "schedule":
        return ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=3)}, seed=0)
    if kind == "ladder":
        levels = {"m": [0.5, 1.0, 1.5, 2.0]}
        return LevelCurriculum(levels, threshold=0.0, compare="gt", min_episodes=1, per_env=True, num_envs=total_envs)
    if kind == "plr":
        from currlearn.curricula import PrioritizedLevelReplay
        from currlearn.spaces import DiscreteSpace

        return PrioritizedLevelReplay(DiscreteSpace({"m": torch.linspace(0.5, 2.0, 100_000)}), seed=0)
    raise ValueError(f"kind={kind!r} is not one of ['schedule', 'ladder', 'plr'].")


def make_pendulum_with_step_counter(num_envs: int = 2) -> object:
    """A batched pendulum that truncates every 4 steps (a worker env for ``ParallelEnv``)."""
    from torchrl.envs import StepCounter, TransformedEnv

    from currlearn.envs import make_pendulum

    return TransformedEnv(make_pendulum(num_envs, seed=0), StepCounter(max_steps=4))


# --------------------------------------------------------------------------- Gymnasium envs
# Worker factories for currlearn.integrations.gym (importable, so spawned workers can build them).
CARTPOLE_TASKS = {"length": [0.25, 0.5, 1.0, 2.0], "masscart": [0.5, 1.0, 2.0, 4.0]}
PENDULUM_TASKS = {"g": [2.0, 5.0, 10.0]}
DOORKEY_IDS = ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0"]


def make_gym_cartpole(record_applied: bool = True) -> object:
    """CartPole whose ``length``/``masscart`` are set per task (a ``ParallelEnv`` worker env)."""
    from currlearn.integrations.gym import make_cartpole_params_env

    return make_cartpole_params_env(record_applied=record_applied)


def make_gym_pendulum_rebuild(record_applied: bool = True) -> object:
    """Pendulum rebuilt with constructor argument ``g`` per task (a ``ParallelEnv`` worker env)."""
    from currlearn.integrations.gym import GymTaskEnv, RebuildFromKwargs

    return GymTaskEnv(RebuildFromKwargs("Pendulum-v1", ["g"]), record_applied=record_applied)


def make_gym_doorkey_ladder(record_applied: bool = True, max_steps: int | None = 40) -> object:
    """DoorKey 5x5/6x6/8x8 chosen by ``env_index`` per task, episodes of at most ``max_steps``
    (a ``ParallelEnv`` worker env).
    """
    from currlearn.integrations.gym import make_minigrid_ladder_env

    return make_minigrid_ladder_env(DOORKEY_IDS, max_steps=max_steps, record_applied=record_applied)


def make_gym_doorkey_seeds(record_applied: bool = True, max_steps: int | None = 40) -> object:
    """DoorKey-5x5 with 16 training + 4 test level seeds, episodes of at most ``max_steps``
    (a ``ParallelEnv`` worker env).
    """
    from currlearn.integrations.gym import make_minigrid_seeds_env

    return make_minigrid_seeds_env(
        num_train_seeds=16, num_test_seeds=4, max_steps=max_steps, record_applied=record_applied
    )


_GYM_WORKERS = {
    "cartpole": (make_gym_cartpole, CARTPOLE_TASKS),
    "pendulum": (make_gym_pendulum_rebuild, PENDULUM_TASKS),
    "doorkey_ladder": (make_gym_doorkey_ladder, {"env_index": [0, 1, 2]}),
    "doorkey_seeds": (make_gym_doorkey_seeds, {"seed": list(range(16))}),
}


def make_gym_worker_with_curriculum(kind: str = "cartpole", seed: int = 0) -> object:
    """A ``MultiSyncCollector`` worker env: a Gymnasium task env with a CurriculumTransform over a
    ``DomainRandomization`` replica. ``kind`` is one of cartpole, pendulum, doorkey_ladder,
    doorkey_seeds.
    """
    from currlearn.curricula import DomainRandomization
    from currlearn.integrations.gym import with_curriculum
    from currlearn.spaces import DiscreteSpace

    factory, tasks = _GYM_WORKERS[kind]
    return with_curriculum(factory(), DomainRandomization(DiscreteSpace(tasks), seed=seed))


def assert_state_dicts_equal(a: object, b: object, path: str = "state_dict") -> None:
    """Exact, NaN-aware comparison of two (nested) state dicts: tensors equal element by
    element (NaN equal to NaN), the same keys, lists of the same length, other values ``==``.

    Raises:
        AssertionError: naming the path of the first difference.

    Examples:
        >>> a = {"x": torch.tensor([1.0, float("nan")]), "n": 3}
        >>> assert_state_dicts_equal(a, {"x": torch.tensor([1.0, float("nan")]), "n": 3})
    """
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), f"{path}: tensor vs {type(b).__name__}"
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{path}: {m}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (
            f"{path}: keys {sorted(a)} vs {sorted(b) if isinstance(b, dict) else b}"
        )
        for k in a:
            assert_state_dicts_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_dicts_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# --------------------------------------------------------------------------- the numeric contract
HOSTILE_VALUES = (
    0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, -1e30, 3e38, -3e38, float("nan"), float("inf"), float("-inf"),
)  # fmt: skip
"""Values the numeric contract feeds as returns, successes, metrics and scores, mixed with ordinary ones."""

FEEDBACK_KEYS = ("return", "success", "metric", "score", "value_mean")
"""The per-episode entries :func:`hostile_feedback` fills (PLR reads ``score`` and ``value_mean``)."""


def hostile_feedback(curriculum: Any, values: dict[str, list[float]]) -> Any:
    """A feedback TensorDict for tasks drawn from ``curriculum``, with the given per-episode
    values (each list as long as the batch) under :data:`FEEDBACK_KEYS`.
    """
    from currlearn.feedback import episode_feedback

    n = len(values["return"])
    dev = curriculum.device
    env_ids = torch.arange(n, device=dev) % curriculum.num_envs if curriculum.num_envs else None
    tasks = curriculum.sample(n, env_ids=env_ids)
    as_tensor = {k: torch.tensor(v, dtype=torch.float32, device=dev) for k, v in values.items()}
    return episode_feedback(
        tasks,
        as_tensor.pop("return"),
        success=as_tensor.pop("success"),
        env_id=env_ids,
        **as_tensor,
    )


def _floating_tensors(td: Any, prefix: str = "") -> Iterable[tuple[str, torch.Tensor]]:
    for key, value in td.items(include_nested=True, leaves_only=True):
        if torch.is_tensor(value) and value.is_floating_point():
            yield f"{prefix}{key}", value


def check_numeric_contract(
    curriculum: Any,
    batches: Iterable[dict[str, list[float]]],
    draws: int = 64,
    fresh: Callable[[], Any] | None = None,
) -> None:
    """Feed ``batches`` (see :func:`hostile_feedback`) to ``curriculum`` and check, after each
    update and step, the numeric contract of :class:`~currlearn.base.Curriculum`:

    - every floating tensor of its state is finite;
    - ``weights()`` (where it has one) is finite, non-negative and sums to 1;
    - ``sample()`` returns tasks inside the task space (finite for a box);
    - ``metrics()`` holds no infinity (NaN stands for "unknown" there);
    - the state survives ``state_dict`` / ``load_state_dict`` into a new curriculum (built by
      ``fresh``, e.g. the factory of ``curriculum``; default a deep copy, which cannot catch
      state left out of ``state_dict``) that then samples alike.

    Raises:
        AssertionError: naming the broken rule, the batch and the entry.
    """
    for i, values in enumerate(batches):
        fb = hostile_feedback(curriculum, values)
        curriculum.update(fb)
        curriculum.step(len(values["return"]))
        where = f"after batch {i} {values}"
        for key, tensor in _floating_tensors(curriculum.state):
            assert bool(torch.isfinite(tensor).all()), f"state[{key!r}] is not finite {where}: {tensor}"
        if hasattr(curriculum, "weights"):
            w = curriculum.weights()
            assert bool(torch.isfinite(w).all()) and bool((w >= 0).all()), f"weights() {w} {where}"
            assert abs(float(w.sum()) - 1.0) < 1e-4, f"weights() sum to {float(w.sum())} {where}"
        tasks = _draw(curriculum, draws)
        curriculum.space.check_tasks(tasks, "sample()")
        if tasks.is_floating_point():
            assert bool(torch.isfinite(tasks).all()), f"sample() {tasks} {where}"
        for key, value in curriculum.metrics().items():
            assert not (isinstance(value, float) and math.isinf(value)), f"metrics()[{key!r}] = {value} {where}"
    if fresh is None:
        import copy

        twin = copy.deepcopy(curriculum)
    else:
        twin = fresh()
    twin.load_state_dict(curriculum.state_dict())
    twin.generator.set_state(curriculum.generator.get_state())
    assert torch.equal(_draw(twin, draws), _draw(curriculum, draws)), "a loaded copy samples differently"


def _draw(curriculum: Any, num: int) -> torch.Tensor:
    if curriculum.num_envs:  # per-env curricula say which envs the tasks are for
        return curriculum.sample(env_ids=torch.arange(num, device=curriculum.device) % curriculum.num_envs)
    return curriculum.sample(num)


def numeric_contract_test(
    factory: Callable[[], Any], *, max_examples: int = 40, batch: int = 8, rounds: int = 4
) -> Callable[[], None]:
    """A hypothesis test of :func:`check_numeric_contract` for the curricula ``factory`` builds:
    batches mixing :data:`HOSTILE_VALUES` with ordinary values in every feedback entry.

    Examples:
        In a test module (hypothesis installed)::

            test_my_curriculum_numerics = numeric_contract_test(lambda: MyCurriculum(space, seed=0))
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    value = st.one_of(st.sampled_from(HOSTILE_VALUES), st.floats(-2.0, 2.0), st.floats(width=32))
    episode = st.fixed_dictionaries({k: value for k in FEEDBACK_KEYS})
    batches = st.lists(st.lists(episode, min_size=1, max_size=batch), min_size=1, max_size=rounds)

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches)
    def test(episodes_per_batch: list[list[dict[str, float]]]) -> None:
        columns = [{k: [e[k] for e in episodes] for k in FEEDBACK_KEYS} for episodes in episodes_per_batch]
        check_numeric_contract(factory(), columns, fresh=factory)

    return test
