"""Hydra's basic sweeper, checking every job's config before it launches the first job.

``currlearn-train -m seed=0,1,2 algo.lr=3e-4,inf`` would otherwise train three jobs before
the fourth fails on ``algo.lr=inf``. This sweeper composes each job's config as the launcher
will (:meth:`ConfigLoader.load_sweep_config`) and passes it to the app's ``check`` function
(``currlearn.app.run.check`` for ``currlearn-train``), so a bad value anywhere in the sweep is
one error before anything runs. The error names the job's overrides. Chosen in ``train.yaml``
with ``override hydra/sweeper: currlearn``; a user's app may point ``check`` at its own
function of the composed config.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.utils import get_method
from omegaconf import open_dict

log = logging.getLogger(__name__)


class SweepJobError(CompactHydraException):
    """A job of the sweep refused by the check (Hydra prints its message alone, no traceback)."""


class CurrlearnSweeper(BasicSweeper):
    """The basic sweeper (cartesian product of the comma-separated values), every job checked first.

    Args:
        check (str): the import path of a function of a job's composed config that raises on
            bad input.
        max_batch_size, params: as for Hydra's basic sweeper.
    """

    def __init__(self, check: str, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.check = check

    def jobs(self, arguments: list[str]) -> list[list[str]]:
        """The overrides of every job of the sweep, in launch order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        return [list(job) for batch in self.split_arguments(overrides, None) for job in batch]

    def sweep(self, arguments: list[str]) -> Any:  # noqa: D102
        assert self.hydra_context is not None
        assert self.config is not None
        check = get_method(self.check)
        jobs = self.jobs(arguments)
        tic = time.perf_counter()
        for i, job in enumerate(jobs):
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
            with open_dict(cfg):  # as the launcher sets them (the sweep's subdir reads them)
                cfg.hydra.job.id = f"check_{i}"
                cfg.hydra.job.num = i
            try:
                check(cfg)
            except Exception as e:
                raise SweepJobError(f"job {i} of the sweep ({' '.join(job) or 'no overrides'}): {e}") from e
        log.debug(f"checked the configs of {len(jobs)} jobs in {time.perf_counter() - tic:.2f} s")
        return super().sweep(arguments)
