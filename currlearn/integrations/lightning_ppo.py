"""An example PPO ``LightningModule`` on TorchRL's parts, for the :class:`CurriculumCallback`.

RL in Lightning: the training data is a TorchRL :class:`~torchrl.collectors.Collector` wrapped in
an ``IterableDataset`` (:class:`CollectorDataset`) with ``__len__`` (so Lightning does not fetch
a batch ahead of the curriculum), loaded by ``DataLoader(batch_size=None,
collate_fn=identity)`` (the default collate would take the TensorDicts apart). Every training
batch is one collection of ``frames_per_batch`` env steps with shape ``[num_envs, time]``; the
module computes GAE on it and runs ``num_epochs`` passes of minibatch ``ClipPPOLoss`` updates
(manual optimisation).

Because the module makes several optimiser steps per batch, Lightning's ``global_step`` (and
``max_steps``) counts optimiser steps: ``num_epochs * (frames_per_batch // minibatch_size)``
per batch. One Lightning epoch is ``total_frames // frames_per_batch`` batches, so
``Trainer(max_epochs=1)`` trains ``settings.total_frames`` env steps.

The env and the collector are not submodules: Lightning neither moves nor checkpoints them.
The networks are built on the env's device; the Trainer must use that device too
(``accelerator="cpu"`` for a CPU env, ``"gpu"`` for an env on ``cuda:0``), which
``on_fit_start`` checks.

Examples:
    >>> import lightning.pytorch as pl
    >>> from torchrl.envs import TransformedEnv
    >>> from currlearn import DiscreteSpace, DomainRandomization
    >>> from currlearn.envs import PointMassGateEnv
    >>> from currlearn.integrations.lightning import CurriculumCallback
    >>> from currlearn.integrations.torchrl import CurriculumTransform
    >>> from currlearn.integrations.ppo import PPOSettings
    >>> cur = DomainRandomization(DiscreteSpace({"gate_width": [8.0, 4.0, 1.0]}), seed=0)
    >>> env = TransformedEnv(PointMassGateEnv(4, max_steps=5, seed=0), CurriculumTransform(cur))
    >>> module = PPOLightningModule(env, PPOSettings(frames_per_batch=40, total_frames=80, num_epochs=1,
    ...                                             minibatch_size=40, hidden=8))
    >>> trainer = pl.Trainer(max_epochs=1, callbacks=[CurriculumCallback(cur)], logger=False,
    ...                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    >>> trainer.fit(module)
    >>> cur.iteration, int(cur.counters["episodes"])
    (2, 16)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from tensordict import TensorDictBase
from torch.utils.data import DataLoader, IterableDataset
from torchrl.collectors import Collector
from torchrl.envs import EnvBase
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE
from typing_extensions import override

from currlearn.base import check_positive_int
from currlearn.integrations.ppo import PPOSettings, make_actor_critic
from currlearn.integrations.replay import ReplayDecisionTransform
from currlearn.integrations.torchrl import find_transforms

__all__ = ["CollectorDataset", "PPOLightningModule", "identity"]


def identity(batch: Any) -> Any:
    """Collate function that returns the batch unchanged (keeps TensorDicts whole)."""
    return batch


class CollectorDataset(IterableDataset):
    """``num_batches`` collector batches per epoch; epochs continue the same collection.

    Args:
        collector: a TorchRL collector (an iterable of TensorDict batches). Use it from the
            main process only (``DataLoader(num_workers=0)``).
        num_batches (int): batches per epoch, also ``len(dataset)``.
    """

    def __init__(self, collector: Any, num_batches: int) -> None:
        super().__init__()
        self.collector = collector
        self.num_batches = check_positive_int("num_batches", num_batches)
        self._iterator: Iterator[TensorDictBase] | None = None

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[TensorDictBase]:
        if self._iterator is None:
            self._iterator = iter(self.collector)
        for _ in range(self.num_batches):
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                return
            yield batch


class PPOLightningModule(pl.LightningModule):
    """PPO with a tanh-Gaussian actor, TorchRL's ``ClipPPOLoss`` and ``GAE``.

    Args:
        env (EnvBase): the (batched) env, one that :func:`currlearn.integrations.ppo.make_actor_critic`
            accepts, with a CurriculumTransform among its transforms for a curriculum.
        settings (PPOSettings, optional): hyper-parameters; defaults if None.

    Attributes:
        env: the env (found there by :class:`~currlearn.integrations.lightning.CurriculumCallback`).
        collector: the in-process ``Collector`` over ``env`` with the actor as policy; built here,
            so the env is reset once at construction.
    """

    def __init__(self, env: EnvBase, settings: PPOSettings | None = None) -> None:
        super().__init__()
        if not isinstance(env, EnvBase):
            raise TypeError(f"env must be a TorchRL EnvBase, got {type(env).__name__}.")
        s = settings if settings is not None else PPOSettings()
        self.settings = s
        self.automatic_optimization = False
        actor, critic = make_actor_critic(env, s.hidden)
        self.actor = actor
        self.critic = critic
        self.loss_module = ClipPPOLoss(
            actor, critic, clip_epsilon=s.clip_epsilon, entropy_coeff=s.entropy_coef, normalize_advantage=True
        )
        self.advantage = GAE(gamma=s.gamma, lmbda=s.lmbda, value_network=critic, average_gae=True)
        if env.device is not None:
            self.to(env.device)  # the collector's policy runs where the env is
        # Transitions of robust PLR's new levels (flagged by a ReplayDecisionTransform) get no gradient.
        deciders = find_transforms(env, ReplayDecisionTransform)
        self.replay_key = deciders[0].out_key if deciders else None
        # Plain attributes, not submodules: Lightning must not move or checkpoint them.
        object.__setattr__(self, "env", env)
        object.__setattr__(
            self,
            "collector",
            Collector(
                env, actor, frames_per_batch=s.frames_per_batch, total_frames=-1, auto_register_policy_transforms=False
            ),
        )

    @override
    def on_fit_start(self) -> None:
        """Check that Lightning put the module where the env and the collector's policy are."""
        env = getattr(self, "env", None)
        if env is None or env.device is None:
            return
        env_device = torch.device(env.device)
        if env_device.type == "cuda" and env_device.index is None:
            env_device = torch.device("cuda", torch.cuda.current_device())
        if self.device != env_device:
            raise ValueError(
                f"PPOLightningModule is on {self.device} but its env (and the collector's policy) is on {env_device}: "
                "build the env on the Trainer's device, or choose the Trainer's accelerator to match the env."
            )

    @override
    def train_dataloader(self) -> DataLoader:
        """One epoch = ``total_frames // frames_per_batch`` collections."""
        num_batches = max(1, self.settings.total_frames // self.settings.frames_per_batch)
        return DataLoader(CollectorDataset(self.collector, num_batches), batch_size=None, collate_fn=identity)

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.loss_module.parameters(), lr=self.settings.lr)

    @override
    def training_step(self, batch: TensorDictBase, batch_idx: int) -> None:
        """GAE on the collected batch, then ``num_epochs`` passes of minibatch PPO updates.

        Transitions flagged False by the env's
        :class:`~currlearn.integrations.replay.ReplayDecisionTransform` (robust PLR's new levels)
        get no gradient.
        """
        s = self.settings
        optimizer = self.optimizers()
        with torch.no_grad():
            batch = self.advantage(batch)
        flat = batch.reshape(-1)
        if self.replay_key is not None:
            flat = flat[flat.get(self.replay_key).reshape(-1)]
        num = flat.shape[0]
        if num == 0:  # no replayed level in this batch: nothing to train on
            self.log("train/reward", batch["next", "reward"].mean(), on_step=True, on_epoch=False, batch_size=1)
            return
        size = min(s.minibatch_size, num)
        totals: dict[str, torch.Tensor] = {}
        for _ in range(s.num_epochs):
            order = torch.randperm(num, device=flat.device)
            for start in range(0, num - size + 1, size):
                losses = self.loss_module(flat[order[start : start + size]])
                loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
                optimizer.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(optimizer, gradient_clip_val=s.max_grad_norm, gradient_clip_algorithm="norm")
                optimizer.step()
                for k, v in losses.items():
                    if k.startswith("loss_"):
                        totals[k] = totals.get(k, 0) + v.detach()
        updates = s.num_epochs * (num // size)
        metrics = {f"train/{k}": v / updates for k, v in totals.items()}
        metrics["train/reward"] = batch["next", "reward"].mean()
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=num)
