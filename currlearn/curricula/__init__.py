"""The curricula."""

from __future__ import annotations

from currlearn.curricula.composite import CompositeCurriculum
from currlearn.curricula.domain_randomization import DomainRandomization
from currlearn.curricula.level import LevelCurriculum
from currlearn.curricula.scheduled import ScheduledCurriculum
from currlearn.curricula.sequential import SequentialCurriculum, Stage, register_predicate

__all__ = [
    "CompositeCurriculum",
    "DomainRandomization",
    "LevelCurriculum",
    "ScheduledCurriculum",
    "SequentialCurriculum",
    "Stage",
    "register_predicate",
]
