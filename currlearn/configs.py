"""Hydra structured configs for currlearn's public classes.

Each ``<Class>Conf`` dataclass has a ``_target_`` and exactly the constructor's arguments with
the same defaults (``MISSING`` where the constructor has none), so
``hydra.utils.instantiate(LevelCurriculumConfig(levels={...}, threshold=0.6))`` builds the
object. :func:`register_configs` stores them in Hydra's ConfigStore (explicit call, nothing
happens at import) under the groups ``curriculum``, ``score``, ``stage``, ``schedule``,
``space``, ``algo``, ``metric``, ``driver``, and TorchRL's own ``transform`` and ``hook``, named
after the class (``curriculum=LevelCurriculum``), next to the YAML presets of the app's
``conf/`` tree (``curriculum=level``).

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
    "ADRCurriculumConfig",
    "ALPGMMCurriculumConfig",
    "BoxSpaceConfig",
    "ChainScheduleConfig",
    "CompetenceCurriculumConfig",
    "CompositeCurriculumConfig",
    "ConstantScheduleConfig",
    "CosineScheduleConfig",
    "CurriculumDriverConfig",
    "CurriculumHookConfig",
    "CurriculumTransformConfig",
    "DiscreteSpaceConfig",
    "DomainRandomizationConfig",
    "EasyFirstCurriculumConfig",
    "ExponentialScheduleConfig",
    "LearnabilityCurriculumConfig",
    "LearningProgressCurriculumConfig",
    "LevelCurriculumConfig",
    "LinearScheduleConfig",
    "PPOSettingsConfig",
    "PrioritizedLevelReplayConfig",
    "ScheduledCurriculumConfig",
    "SequentialCurriculumConfig",
    "StageConfig",
    "StepScheduleConfig",
    "StepMetricConfig",
    "StepScoreConfig",
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
    # a number, or a list with one per promotion (OmegaConf's unions cannot hold a list: the
    # curriculum checks the value)
    threshold: Any = MISSING
    metric: Any = "return"
    demote_threshold: Any = None  # None, a number, or a list with one per rung
    min_episodes: int = 10
    smoothing: float = 0.1
    ema_init: float | None = None
    compare: str = "ge"
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
    avg_reward_window: int | None = None
    reward_std_window: int | None = None


@dataclass
class SequentialCurriculumConfig:
    """:class:`currlearn.SequentialCurriculum` (``stages``: dicts or StageConfig)."""

    _target_: str = "currlearn.SequentialCurriculum"
    stages: Any = MISSING
    seed: int | None = None
    device: str | None = None
    clock: Any = None


@dataclass
class CompositeCurriculumConfig:
    """:class:`currlearn.CompositeCurriculum` (``curricula``: curriculum configs)."""

    _target_: str = "currlearn.CompositeCurriculum"
    curricula: Any = MISSING
    seed: int | None = None
    device: str | None = None


@dataclass
class PrioritizedLevelReplayConfig:
    """:class:`currlearn.PrioritizedLevelReplay` (``space``: a discrete task space config;
    ``robust=true`` is PLR⊥).
    """

    _target_: str = "currlearn.PrioritizedLevelReplay"
    space: Any = MISSING
    score_function: str = "l1_value_loss"
    prioritization: str = "rank"
    temperature: float = 0.1
    eps: float = 0.05
    staleness_coef: float = 0.1
    replay_schedule: str = "proportionate"
    replay_prob: float = 0.5
    min_seen_fraction: float = 0.0
    smoothing: float = 1.0
    robust: bool = False
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class LevelReplayConfig:
    """:class:`currlearn.LevelReplay` (``generator``: a level generator node such as
    ``{_target_: currlearn.envs.MazeGenerator}``; ``replay_prob=0`` is domain randomisation over
    it, ``robust=false`` plain PLR).
    """

    _target_: str = "currlearn.LevelReplay"
    generator: Any = MISSING
    editor: Any = None
    capacity: int = 4000
    fresh: int = 1024
    replay_prob: float = 0.8
    min_fill: float = 0.5
    robust: bool = True
    dedup: bool = True
    max_queue: int | None = None
    score_function: str = "positive_value_loss"
    prioritization: str = "rank"
    temperature: float = 0.3
    eps: float = 0.05
    staleness_coef: float = 0.3
    smoothing: float = 1.0
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class ACCELConfig(LevelReplayConfig):
    """:class:`currlearn.ACCEL` (``editor`` required: e.g. ``{_target_: currlearn.envs.MazeEditor}``)."""

    _target_: str = "currlearn.ACCEL"
    editor: Any = MISSING


@dataclass
class SelfPlayConfig:
    """:class:`currlearn.SelfPlay` (``template``: left unset, the pool takes the structure of
    the first snapshot).
    """

    _target_: str = "currlearn.SelfPlay"
    capacity: int = 16
    template: Any = None
    snapshot_every: int = 0
    eviction: str = "oldest"
    metric: Any = "success"
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class FictitiousSelfPlayConfig(SelfPlayConfig):
    """:class:`currlearn.FictitiousSelfPlay`."""

    _target_: str = "currlearn.FictitiousSelfPlay"


@dataclass
class PrioritizedFictitiousSelfPlayConfig:
    """:class:`currlearn.PrioritizedFictitiousSelfPlay` (``weighting``: ``hard`` or ``variance``)."""

    _target_: str = "currlearn.PrioritizedFictitiousSelfPlay"
    capacity: int = 16
    weighting: str = "hard"
    exponent: float = 2.0
    mix_latest: float = 0.0
    template: Any = None
    snapshot_every: int = 0
    eviction: str = "oldest"
    metric: Any = "success"
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class StepScoreConfig:
    """:class:`currlearn.StepScore` (nested keys as lists, e.g. ``[next, state_value]``)."""

    _target_: str = "currlearn.StepScore"
    score_function: str = "l1_value_loss"
    advantage_key: Any = "advantage"
    value_target_key: Any = "value_target"
    value_key: Any = "state_value"
    next_value_key: Any = ("next", "state_value")
    reward_key: Any = ("next", "reward")
    terminated_key: Any = ("next", "terminated")
    logits_key: Any = "logits"
    log_prob_key: Any = "action_log_prob"
    entropy_key: Any = None
    gamma: float = 0.99


@dataclass
class LearningProgressCurriculumConfig:
    """:class:`currlearn.LearningProgressCurriculum`."""

    _target_: str = "currlearn.LearningProgressCurriculum"
    space: Any = MISSING
    metric: Any = "success"
    fast_rate: float = 0.1
    slow_rate: float = 0.1
    reweight_theta: float = 0.1
    uniform_share: float = 0.0
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class LearnabilityCurriculumConfig:
    """:class:`currlearn.LearnabilityCurriculum`."""

    _target_: str = "currlearn.LearnabilityCurriculum"
    space: Any = MISSING
    metric: Any = "success"
    sampling: str = "topk"
    topk: int = 100
    learnable_prob: float = 0.5
    smoothing: float = 0.1
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class EasyFirstCurriculumConfig:
    """:class:`currlearn.EasyFirstCurriculum`."""

    _target_: str = "currlearn.EasyFirstCurriculum"
    space: Any = MISSING
    num_bins: int = 10
    temperature: float = 0.1
    anneal_iterations: int = 1000
    metric: Any = "return"
    smoothing: float = 0.1
    initial_value: float | None = None
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class CompetenceCurriculumConfig:
    """:class:`currlearn.CompetenceCurriculum`."""

    _target_: str = "currlearn.CompetenceCurriculum"
    space: Any = MISSING
    num_bins: int = 10
    temperature: float = 0.02
    anneal_iterations: int = 1000
    initial_competence: float = 0.01
    schedule: str = "sqrt"
    metric: Any = "return"
    smoothing: float = 0.1
    initial_value: float | None = None
    num_envs: int | None = None
    seed: int | None = None
    device: str | None = None


@dataclass
class ALPGMMCurriculumConfig:
    """:class:`currlearn.ALPGMMCurriculum` (``space``: a BoxSpace config)."""

    _target_: str = "currlearn.ALPGMMCurriculum"
    space: Any = MISSING
    random_share: float = 0.2
    fit_interval: int = 250
    fit_window: int | None = None
    max_components: int = 10
    history_capacity: int = 20_000
    em_iterations: int = 50
    em_tol: float | None = 1e-3
    metric: Any = "return"
    seed: int | None = None
    device: str | None = None


@dataclass
class ADRCurriculumConfig:
    """:class:`currlearn.ADRCurriculum` (``space``: a BoxSpace config; ``initial`` /
    ``deltas``: ``{param: value}`` or null).
    """

    _target_: str = "currlearn.ADRCurriculum"
    space: Any = MISSING
    initial: Any = None
    delta: float = 0.05
    deltas: Any = None
    boundary_prob: float = 0.5
    buffer_size: int = 20
    low_threshold: float = 0.2
    high_threshold: float = 0.8
    metric: Any = "success"
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
    """:class:`currlearn.integrations.ppo.PPOSettings`."""

    _target_: str = "currlearn.integrations.ppo.PPOSettings"
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
        PrioritizedLevelReplayConfig,
        LevelReplayConfig,
        ACCELConfig,
        LearningProgressCurriculumConfig,
        LearnabilityCurriculumConfig,
        EasyFirstCurriculumConfig,
        CompetenceCurriculumConfig,
        ALPGMMCurriculumConfig,
        ADRCurriculumConfig,
        SelfPlayConfig,
        FictitiousSelfPlayConfig,
        PrioritizedFictitiousSelfPlayConfig,
    ),
    "score": (StepScoreConfig,),
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
    """Store every structured config in Hydra's ConfigStore, in its group (:func:`config_classes`
    lists them), named after its class (e.g. ``curriculum/LevelCurriculum``,
    ``schedule/LinearSchedule``, ``algo/PPOSettings``, ``hook/CurriculumHook``).
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, classes in _GROUPS.items():
        for cls in classes:
            cs.store(group=group, name=cls._target_.rsplit(".", 1)[-1], node=cls)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- TorchRL parts
# Stored in TorchRL's own ``transform`` and ``hook`` groups (``transform/CurriculumTransform``,
# ``hook/CurriculumHook``), next to TorchRL's snake_case names, so a TorchRL trainer config
# composes them like its own parts.
@dataclass
class CurriculumTransformConfig:
    """:class:`currlearn.integrations.torchrl.CurriculumTransform` (nested keys as lists)."""

    _target_: str = "currlearn.integrations.torchrl.CurriculumTransform"
    curriculum: Any = MISSING
    param_key: Any = "params"
    task_key: Any = "task_id"
    check_params: bool = True
    prefetch: int = 0
    env_offset: int = 0
    env_id_key: Any = None
    version_key: Any = None


@dataclass
class CurriculumHookConfig:
    """:class:`currlearn.integrations.torchrl.CurriculumHook`, for a TorchRL trainer config's
    ``hooks`` list. Leave ``curriculum`` unset: at ``register`` the hook drives the curriculum
    of the CurriculumTransform on the trainer's env (interpolating ``${curriculum}`` here too
    would build a second curriculum object, which ``register`` refuses).
    """

    _target_: str = "currlearn.integrations.torchrl.CurriculumHook"
    curriculum: Any = None
    transform: Any = None
    tracker: Any = None
    collector: Any = None
    worker_path: str | None = None
    refresh_every_iteration: bool | None = None
    feedback_at: str = "batch_process"
    log_interval: int = 0
    env_id_key: Any = None
    version_key: Any = None


_GROUPS["transform"] = (CurriculumTransformConfig,)
_GROUPS["hook"] = (CurriculumHookConfig,)


# --------------------------------------------------------------------------- user metrics
@dataclass
class StepMetricConfig:
    """:class:`currlearn.metrics.StepMetric`: a per-step function reference (``fn: {_target_:
    my.module.fn, _partial_: true}``) and how an episode's steps reduce to one value.
    """

    _target_: str = "currlearn.metrics.StepMetric"
    fn: Any = MISSING
    reduction: str = "sum"
    name: Any = None


@dataclass
class CurriculumDriverConfig:
    """:class:`currlearn.driver.CurriculumDriver`, for a hand-written loop configured by Hydra."""

    _target_: str = "currlearn.driver.CurriculumDriver"
    curriculum: Any = MISSING
    transform: Any = None
    tracker: Any = None
    refresh_every_iteration: bool | None = None
    log_interval: int = 0
    on_decision: Any = None
    env_id_key: Any = None
    version_key: Any = None


_GROUPS["metric"] = (StepMetricConfig,)
_GROUPS["driver"] = (CurriculumDriverConfig,)
