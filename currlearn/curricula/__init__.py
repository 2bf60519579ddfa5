"""The curricula."""

from __future__ import annotations

from currlearn.curricula.adr import ADRCurriculum
from currlearn.curricula.alp_gmm import ALPGMMCurriculum
from currlearn.curricula.composite import CompositeCurriculum
from currlearn.curricula.difficulty import CompetenceCurriculum, EasyFirstCurriculum
from currlearn.curricula.domain_randomization import DomainRandomization
from currlearn.curricula.learning_progress import LearnabilityCurriculum, LearningProgressCurriculum
from currlearn.curricula.level import LevelCurriculum
from currlearn.curricula.level_replay import ACCEL, LevelReplay
from currlearn.curricula.opponents import FictitiousSelfPlay, PrioritizedFictitiousSelfPlay, SelfPlay
from currlearn.curricula.plr import PrioritizedLevelReplay, StepScore
from currlearn.curricula.scheduled import ScheduledCurriculum
from currlearn.curricula.sequential import SequentialCurriculum, Stage, register_predicate

__all__ = [
    "ACCEL",
    "ADRCurriculum",
    "ALPGMMCurriculum",
    "CompetenceCurriculum",
    "CompositeCurriculum",
    "DomainRandomization",
    "EasyFirstCurriculum",
    "FictitiousSelfPlay",
    "LearnabilityCurriculum",
    "LearningProgressCurriculum",
    "LevelCurriculum",
    "LevelReplay",
    "PrioritizedFictitiousSelfPlay",
    "PrioritizedLevelReplay",
    "ScheduledCurriculum",
    "SelfPlay",
    "SequentialCurriculum",
    "Stage",
    "StepScore",
    "register_predicate",
]
