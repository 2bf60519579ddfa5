"""currlearn: curriculum learning for PyTorch reinforcement learning.

``import currlearn`` loads torch and tensordict only; the TorchRL, Lightning and Hydra
integrations live in :mod:`currlearn.integrations` and :mod:`currlearn.configs` and are
imported on demand.
"""

from __future__ import annotations

from currlearn import functional
from currlearn.base import Curriculum, DiscreteCurriculum
from currlearn.curricula import (
    ADRCurriculum,
    ALPGMMCurriculum,
    CompetenceCurriculum,
    CompositeCurriculum,
    DomainRandomization,
    EasyFirstCurriculum,
    LearnabilityCurriculum,
    LearningProgressCurriculum,
    LevelCurriculum,
    PrioritizedLevelReplay,
    ScheduledCurriculum,
    SequentialCurriculum,
    Stage,
    StepScore,
    register_predicate,
)
from currlearn.feedback import EpisodeTracker, episode_feedback
from currlearn.schedules import (
    ChainSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    Schedule,
    StepSchedule,
    make_schedule,
)
from currlearn.spaces import BoxSpace, DiscreteSpace, ProductSpace, TaskSpace

__version__ = "0.1.0"

__all__ = [
    "ADRCurriculum",
    "ALPGMMCurriculum",
    "BoxSpace",
    "ChainSchedule",
    "CompetenceCurriculum",
    "CompositeCurriculum",
    "ConstantSchedule",
    "CosineSchedule",
    "Curriculum",
    "DiscreteCurriculum",
    "DiscreteSpace",
    "DomainRandomization",
    "EasyFirstCurriculum",
    "EpisodeTracker",
    "ExponentialSchedule",
    "LearnabilityCurriculum",
    "LearningProgressCurriculum",
    "LevelCurriculum",
    "LinearSchedule",
    "PrioritizedLevelReplay",
    "ProductSpace",
    "Schedule",
    "ScheduledCurriculum",
    "SequentialCurriculum",
    "Stage",
    "StepSchedule",
    "StepScore",
    "TaskSpace",
    "__version__",
    "episode_feedback",
    "functional",
    "make_schedule",
    "register_predicate",
]
