"""Hydra structured configs for currlearn's public classes.

Each ``<Class>Conf`` dataclass has a ``_target_`` and exactly the constructor's arguments with
the same defaults (``MISSING`` where the constructor has none), so
``hydra.utils.instantiate(LevelCurriculumConfig(levels={...}, threshold=0.6))`` builds the
object. :func:`register_configs` stores them in Hydra's ConfigStore (explicit call, nothing
happens at import) under the groups ``curriculum``, ``schedule``, ``space`` and ``algo``,
named after the class (``curriculum=LevelCurriculum``), next to the YAML presets of
``currlearn/conf`` (``curriculum=level``).

Examples:
    >>> from hydra.utils import instantiate
    >>> from currlearn.configs import LinearScheduleConfig
    >>> instantiate(LinearScheduleConfig(init=0.0, final=1.0, total=10))(5)
    tensor(0.5000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

# omegaconf 2.3 reads the annotations at runtime: keep them to typing forms it accepts
# (Optional[...] rather than ``X | None`` under ``from __future__ import annotations`` works
# on Python >= 3.10 either way; Any for the mapping/sequence arguments).

__all__ = [
    "BoxSpaceConfig",
    "ChainScheduleConfig",
    "CompositeCurriculumConfig",
    "ConstantScheduleConfig",
    "CosineScheduleConfig",
    "DiscreteSpaceConfig",
    "DomainRandomizationConfig",
    "ExponentialScheduleConfig",
    "LevelCurriculumConfig",
    "LinearScheduleConfig",
    "PPOSettingsConfig",
    "ScheduledCurriculumConfig",
    "SequentialCurriculumConfig",
    "StageConfig",
    "StepScheduleConfig",
    "config_classes",
    "register_configs",
]


# --------------------------------------------------------------------------- curricula
@dataclass
class DomainRandomizationConfig:
    """:class:`currlearn.DomainRandomization`."""

    _target_: str = "currlearn.DomainRandomization"
    space: Any = MISSING
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class LevelCurriculumConfig:
    """:class:`currlearn.LevelCurriculum`."""

    _target_: str = "currlearn.LevelCurriculum"
    levels: Any = MISSING
    threshold: float = MISSING
    metric: str = "return"
    demote_threshold: float | None = None
    min_episodes: int = 10
    smoothing: float = 0.1
    per_env: bool = False
    num_envs: int | None = None
    start_level: int = 0
    seed: int | None = None
    device: str | None = None


@dataclass
class ScheduledCurriculumConfig:
    """:class:`currlearn.ScheduledCurriculum` (``schedules``: name -> a schedule config)."""

    _target_: str = "currlearn.ScheduledCurriculum"
    schedules: Any = MISSING
    seed: int | None = None
    device: str | None = None


@dataclass
class StageConfig:
    """:class:`currlearn.Stage`."""

    _target_: str = "currlearn.Stage"
    params: Any = MISSING
    max_episodes: int | None = None
    max_steps: int | None = None
    min_avg_reward: float | None = None
    max_reward_std: float | None = None
    min_evaluation_score: float | None = None
    max_wall_time: float | None = None
    reward_window: int = 100
    mode: str = "any"
    predicates: Any = field(default_factory=list)


@dataclass
class SequentialCurriculumConfig:
    """:class:`currlearn.SequentialCurriculum` (``stages``: dicts or StageConfig)."""

    _target_: str = "currlearn.SequentialCurriculum"
    stages: Any = MISSING
    seed: int | None = None
    device: str | None = None


@dataclass
class CompositeCurriculumConfig:
    """:class:`currlearn.CompositeCurriculum` (``curricula``: curriculum configs)."""

    _target_: str = "currlearn.CompositeCurriculum"
    curricula: Any = MISSING
    seed: int | None = None
    device: str | None = None


# --------------------------------------------------------------------------- schedules
@dataclass
class LinearScheduleConfig:
    """:class:`currlearn.LinearSchedule`."""

    _target_: str = "currlearn.LinearSchedule"
    init: float = MISSING
    final: float = MISSING
    total: int = MISSING
    start: int = 0


@dataclass
class CosineScheduleConfig:
    """:class:`currlearn.CosineSchedule`."""

    _target_: str = "currlearn.CosineSchedule"
    init: float = MISSING
    final: float = MISSING
    total: int = MISSING
    start: int = 0


@dataclass
class ExponentialScheduleConfig:
    """:class:`currlearn.ExponentialSchedule`."""

    _target_: str = "currlearn.ExponentialSchedule"
    init: float = MISSING
    final: float = MISSING
    total: int = MISSING
    start: int = 0


@dataclass
class StepScheduleConfig:
    """:class:`currlearn.StepSchedule`."""

    _target_: str = "currlearn.StepSchedule"
    values: Any = MISSING
    boundaries: Any = MISSING


@dataclass
class ConstantScheduleConfig:
    """:class:`currlearn.ConstantSchedule`."""

    _target_: str = "currlearn.ConstantSchedule"
    value: float = MISSING
    total: int = 1
    start: int = 0


@dataclass
class ChainScheduleConfig:
    """:class:`currlearn.ChainSchedule` (``schedules``: schedule configs)."""

    _target_: str = "currlearn.ChainSchedule"
    schedules: Any = MISSING


# --------------------------------------------------------------------------- spaces, algo
@dataclass
class BoxSpaceConfig:
    """:class:`currlearn.BoxSpace`."""

    _target_: str = "currlearn.BoxSpace"
    low: Any = MISSING
    high: Any = MISSING
    device: str | None = None


@dataclass
class DiscreteSpaceConfig:
    """:class:`currlearn.DiscreteSpace`."""

    _target_: str = "currlearn.DiscreteSpace"
    params: Any = None
    num_tasks: int | None = None
    device: str | None = None


@dataclass
class PPOSettingsConfig:
    """:class:`currlearn.ppo.PPOSettings`."""

    _target_: str = "currlearn.ppo.PPOSettings"
    frames_per_batch: int = 1024
    total_frames: int = 20_480
    num_epochs: int = 4
    minibatch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    lmbda: float = 0.95
    clip_epsilon: float = 0.2
    entropy_coef: float = 1e-3
    hidden: int = 64
    max_grad_norm: float = 1.0


_GROUPS: dict[str, tuple[type, ...]] = {
    "curriculum": (
        DomainRandomizationConfig,
        LevelCurriculumConfig,
        ScheduledCurriculumConfig,
        SequentialCurriculumConfig,
        CompositeCurriculumConfig,
    ),
    "stage": (StageConfig,),
    "schedule": (
        LinearScheduleConfig,
        CosineScheduleConfig,
        ExponentialScheduleConfig,
        StepScheduleConfig,
        ConstantScheduleConfig,
        ChainScheduleConfig,
    ),
    "space": (BoxSpaceConfig, DiscreteSpaceConfig),
    "algo": (PPOSettingsConfig,),
}


def config_classes() -> dict[str, type]:
    """``{target class path: config dataclass}`` for every structured config."""
    return {c._target_: c for group in _GROUPS.values() for c in group}  # type: ignore[attr-defined]


def register_configs() -> None:
    """Store every structured config in Hydra's ConfigStore: group ``curriculum``,
    ``stage``, ``schedule``, ``space`` or ``algo``, named after its class (e.g.
    ``curriculum/LevelCurriculum``, ``schedule/LinearSchedule``, ``algo/PPOSettings``).
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, classes in _GROUPS.items():
        for cls in classes:
            cs.store(group=group, name=cls._target_.rsplit(".", 1)[-1], node=cls)  # type: ignore[attr-defined]
