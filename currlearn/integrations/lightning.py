"""Lightning integration: a :class:`CurriculumCallback` for ``lightning.Trainer``.

The callback drives a currlearn curriculum from an RL ``LightningModule`` whose training
batches are TorchRL collector batches (an ``IterableDataset`` over a collector, loaded with
``DataLoader(batch_size=None, collate_fn=...)`` that keeps the TensorDict; see
:mod:`currlearn.integrations.lightning_ppo` for a complete example). It is a thin adapter around
:class:`~currlearn.driver.CurriculumDriver`, which does the work:

- ``on_train_batch_end``: per-episode feedback from the batch -> ``curriculum.update``, then
  ``curriculum.step(frames)`` and, for curricula whose decision changes mid-episode
  (``per_episode=False``), ``transform.refresh()``: the decision reaches the envs before the
  next collection. The curriculum's metrics are logged with ``pl_module.log_dict``.
- checkpoints: the curriculum (state, counters, generator) and the tasks the envs are
  playing are stored under :attr:`CurriculumCallback.state_key`; on ``trainer.fit(...,
  ckpt_path=...)`` they are restored and the tasks re-applied to the envs (without drawing
  new samples), so the run continues as if it had not stopped.

Give the dataset ``__len__``: without it Lightning fetches one batch ahead, so the envs of
that batch are collected before the callback applied the previous decision.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from tensordict import TensorDictBase
from typing_extensions import override

from currlearn.base import Curriculum
from currlearn.driver import CurriculumDriver
from currlearn.feedback import EpisodeTracker
from currlearn.integrations.torchrl import CurriculumTransform, find_transforms

__all__ = ["CurriculumCallback"]


class CurriculumCallback(pl.Callback):
    """Drives a curriculum from a Lightning ``Trainer`` fed by a TorchRL collector.

    Args:
        curriculum (Curriculum): the curriculum; its :class:`CurriculumTransform` must be on
            the env the module collects from.
        transform (CurriculumTransform, optional): the transform to refresh and restore.
            Default: found at the start of training on ``pl_module.env`` or
            ``pl_module.collector.env``, as the CurriculumTransform whose ``curriculum`` is
            ``curriculum``.
        tracker (EpisodeTracker, optional): how per-episode feedback is read from a batch.
            Default ``curriculum.make_tracker(task_key=("next", transform.task_key))`` (it
            computes the curriculum's user metric, if any).
        name (str, optional): tells several curriculum callbacks apart: it is the identity in
            :attr:`state_key` and metrics are logged as ``curriculum/<name>/<metric>``
            (``curriculum/<metric>`` without a name). Two callbacks in one Trainer need
            distinct names.
        refresh_every_iteration (bool, optional): re-sample every env's task after each batch.
            Default: ``not curriculum.per_episode``.
        log_interval (int): frames between two metric reports (0: every batch); the metrics of
            a large task distribution cost ``O(num_tasks)``.

    Raises:
        TypeError: ``curriculum`` is not a Curriculum, or a training batch is not a TensorDict.
        ValueError: no CurriculumTransform for ``curriculum`` can be found (at the start of
            training); a checkpoint from another curriculum (raised by
            ``curriculum.load_state_dict``, nothing changed).

    Examples:
        >>> from currlearn import DiscreteSpace, DomainRandomization
        >>> cur = DomainRandomization(DiscreteSpace({"gate_width": [8.0, 1.0]}), seed=0)
        >>> cb = CurriculumCallback(cur, name="gates")
        >>> cb.state_key
        "CurriculumCallback{'name': 'gates'}"
    """

    def __init__(
        self,
        curriculum: Curriculum,
        *,
        transform: CurriculumTransform | None = None,
        tracker: EpisodeTracker | None = None,
        name: str | None = None,
        refresh_every_iteration: bool | None = None,
        log_interval: int = 0,
    ) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a currlearn Curriculum, got {type(curriculum).__name__}.")
        if transform is not None and not isinstance(transform, CurriculumTransform):
            raise TypeError(f"transform must be a CurriculumTransform or None, got {type(transform).__name__}.")
        if tracker is not None and not isinstance(tracker, EpisodeTracker):
            raise TypeError(f"tracker must be an EpisodeTracker or None, got {type(tracker).__name__}.")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"name must be None or a non-empty string without '/', got {name!r}.")
        self.curriculum = curriculum
        self.name = name
        self.driver = CurriculumDriver(
            curriculum,
            transform,
            tracker=tracker,
            refresh_every_iteration=refresh_every_iteration,
            log_interval=log_interval,
        )

    @property
    def transform(self) -> CurriculumTransform | None:
        """The transform the curriculum drives (found at the start of training when not given)."""
        return self.driver.transform

    @property
    def tracker(self) -> EpisodeTracker:
        """How per-episode feedback is read from a batch."""
        return self.driver.tracker

    # ------------------------------------------------------------------ identity
    @property
    @override
    def state_key(self) -> str:
        """``CurriculumCallback{'name': <name>}``: where the checkpoint holds this callback's state."""
        return self._generate_state_key(name=self.name)

    # ------------------------------------------------------------------ wiring
    def _find_transform(self, pl_module: pl.LightningModule) -> CurriculumTransform:
        module_name = type(pl_module).__name__
        env = getattr(pl_module, "env", None)
        source = "pl_module.env"
        if env is None:
            collector = getattr(pl_module, "collector", None)
            env = getattr(collector, "env", None)
            source = "pl_module.collector.env"
            if env is None:
                raise ValueError(
                    f"CurriculumCallback cannot find the env its curriculum drives: {module_name} has no `env` "
                    "attribute and no `collector` with an in-process `env`. Give the LightningModule an `env` "
                    "(a TransformedEnv with a CurriculumTransform) or a `collector` attribute, or pass "
                    "CurriculumCallback(curriculum, transform=...)."
                )
        found = find_transforms(env, CurriculumTransform)
        mine = [t for t in found if t.curriculum is self.curriculum]
        if not mine:
            what = (
                f"has {len(found)} CurriculumTransform(s), driving other curricula"
                if found
                else "has no CurriculumTransform"
            )
            raise ValueError(
                f"{source} of {module_name} {what}: wrap the env with "
                "TransformedEnv(env, CurriculumTransform(curriculum)) using this callback's curriculum, "
                "or pass transform=."
            )
        if len(mine) > 1:
            raise ValueError(f"{source} of {module_name} has {len(mine)} CurriculumTransforms for this curriculum.")
        return mine[0]

    # ------------------------------------------------------------------ hooks
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Find the transform and, after a restore, re-apply the checkpointed tasks to the envs."""
        if self.driver.transform is None:
            self.driver.attach(self._find_transform(pl_module))
        else:
            self.driver.restore_tasks()

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Update from the batch's finished episodes, step, refresh the envs and log metrics
        (at most every ``log_interval`` frames).
        """
        if not isinstance(batch, TensorDictBase):
            raise TypeError(
                "CurriculumCallback needs TensorDict training batches from a TorchRL collector "
                f"(DataLoader(batch_size=None, collate_fn=identity)), got {type(batch).__name__}."
            )
        if self.driver.transform is None:
            self.driver.attach(self._find_transform(pl_module))
        report = self.driver.process(batch)
        if report is None:  # fewer than log_interval frames since the last report
            return
        prefix = "curriculum/" if self.name is None else f"curriculum/{self.name}/"
        metrics = {prefix + k.removeprefix("curriculum/"): v for k, v in report.items()}
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Refuse a checkpoint that holds other curriculum callbacks' state but not this one's."""
        states = checkpoint.get("callbacks", {})
        if self.state_key in states:
            return
        others = [k for k in states if isinstance(k, str) and k.startswith(type(self).__qualname__)]
        if others:
            raise ValueError(
                f"The checkpoint has no state for {self.state_key} but has {others}: "
                "give this callback the name it had when the checkpoint was saved."
            )

    # ------------------------------------------------------------------ state
    @override
    def state_dict(self) -> dict[str, Any]:
        """The curriculum's state and the current task of every env (None before the first reset)."""
        return self.driver.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the curriculum (with its generator); the tasks are re-applied to the envs now,
        or when training starts if they were not reset yet.

        Raises:
            ValueError: the state is not a CurriculumCallback's, or comes from another
                curriculum or env batch; nothing is changed then.
        """
        try:
            self.driver.load_state_dict(state_dict)
        except ValueError as e:
            raise ValueError(f"{self.state_key}: {e}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(curriculum={self.curriculum!r}, name={self.name!r})"
