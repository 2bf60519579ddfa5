"""currlearn: curriculum learning for PyTorch reinforcement learning.

``import currlearn`` imports nothing heavy: the public names below are loaded on first use
(PEP 562), so the command line and Hydra's config discovery stay fast. The core (curricula,
schedules, task spaces, feedback) needs torch and tensordict only; the TorchRL, Lightning and
Hydra integrations live in :mod:`currlearn.integrations` and :mod:`currlearn.configs`, and the
application in :mod:`currlearn.app`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Curriculum": "currlearn.base",
    "DiscreteCurriculum": "currlearn.base",
    "ACCEL": "currlearn.curricula",
    "ADRCurriculum": "currlearn.curricula",
    "ALPGMMCurriculum": "currlearn.curricula",
    "CompetenceCurriculum": "currlearn.curricula",
    "CompositeCurriculum": "currlearn.curricula",
    "DomainRandomization": "currlearn.curricula",
    "EasyFirstCurriculum": "currlearn.curricula",
    "FictitiousSelfPlay": "currlearn.curricula",
    "LearnabilityCurriculum": "currlearn.curricula",
    "LearningProgressCurriculum": "currlearn.curricula",
    "LevelCurriculum": "currlearn.curricula",
    "LevelReplay": "currlearn.curricula",
    "PrioritizedFictitiousSelfPlay": "currlearn.curricula",
    "PrioritizedLevelReplay": "currlearn.curricula",
    "ScheduledCurriculum": "currlearn.curricula",
    "SelfPlay": "currlearn.curricula",
    "SequentialCurriculum": "currlearn.curricula",
    "Stage": "currlearn.curricula",
    "StepScore": "currlearn.curricula",
    "register_predicate": "currlearn.curricula",
    "CurriculumDriver": "currlearn.driver",
    "StepMetric": "currlearn.metrics",
    "metric_names": "currlearn.metrics",
    "register_metric": "currlearn.metrics",
    "unregister_metric": "currlearn.metrics",
    "EpisodeTracker": "currlearn.feedback",
    "episode_feedback": "currlearn.feedback",
    "ChainSchedule": "currlearn.schedules",
    "ConstantSchedule": "currlearn.schedules",
    "CosineSchedule": "currlearn.schedules",
    "ExponentialSchedule": "currlearn.schedules",
    "LinearSchedule": "currlearn.schedules",
    "Schedule": "currlearn.schedules",
    "StepSchedule": "currlearn.schedules",
    "make_schedule": "currlearn.schedules",
    "BoxSpace": "currlearn.spaces",
    "DiscreteSpace": "currlearn.spaces",
    "ProductSpace": "currlearn.spaces",
    "TaskSpace": "currlearn.spaces",
    "grid_space": "currlearn.spaces",
}
_SUBMODULES = ("functional",)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"currlearn.{name}")
    else:
        raise AttributeError(f"module 'currlearn' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # for type checkers and IDEs: the names as plain imports
    from currlearn import functional
    from currlearn.base import Curriculum, DiscreteCurriculum
    from currlearn.curricula import (
        ACCEL,
        ADRCurriculum,
        ALPGMMCurriculum,
        CompetenceCurriculum,
        CompositeCurriculum,
        DomainRandomization,
        EasyFirstCurriculum,
        FictitiousSelfPlay,
        LearnabilityCurriculum,
        LearningProgressCurriculum,
        LevelCurriculum,
        LevelReplay,
        PrioritizedFictitiousSelfPlay,
        PrioritizedLevelReplay,
        ScheduledCurriculum,
        SelfPlay,
        SequentialCurriculum,
        Stage,
        StepScore,
        register_predicate,
    )
    from currlearn.driver import CurriculumDriver
    from currlearn.feedback import EpisodeTracker, episode_feedback
    from currlearn.metrics import StepMetric, metric_names, register_metric, unregister_metric
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
    from currlearn.spaces import BoxSpace, DiscreteSpace, ProductSpace, TaskSpace, grid_space
