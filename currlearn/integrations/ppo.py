"""A small PPO agent on TorchRL's own parts, with a curriculum hooked into its trainer.

This is the training loop the app and the tests use; it is also the shortest honest
example of a curriculum in a TorchRL loop: :func:`make_ppo_trainer` builds TorchRL's
``Collector``, ``ClipPPOLoss``, ``GAE`` and ``Trainer`` and registers a
:class:`~currlearn.integrations.torchrl.CurriculumHook` on it.

The env must be a TorchRL env with an ``"observation"`` (a vector, or an image that is
flattened) and a bounded continuous or a discrete (one-hot / categorical) action, and a
:class:`~currlearn.integrations.torchrl.CurriculumTransform` among its transforms when a
curriculum is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import EnvBase
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE
from torchrl.trainers import ReplayBufferTrainer, Trainer, UpdateWeights, ValueEstimatorHook

from currlearn.base import Curriculum
from currlearn.feedback import EpisodeTracker
from currlearn.integrations.replay import ReplayDecisionTransform
from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform, find_transforms

__all__ = ["FlattenObservation", "PPOSettings", "find_curriculum_transform", "make_actor_critic", "make_ppo_trainer"]


@dataclass
class PPOSettings:
    """PPO hyper-parameters.

    Attributes:
        frames_per_batch: env steps collected per iteration.
        total_frames: env steps of the whole run.
        num_epochs: passes over each batch.
        minibatch_size: transitions per gradient step.
        lr: Adam learning rate.
        gamma: discount.
        lmbda: GAE lambda.
        clip_epsilon: PPO ratio clip.
        entropy_coef: entropy bonus.
        hidden: width of the two hidden layers of actor and critic.
        max_grad_norm: gradient clipping.
    """

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

    def __post_init__(self) -> None:
        for name in ("frames_per_batch", "total_frames", "num_epochs", "minibatch_size", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ppo.{name}={v!r} is invalid: expected an integer >= 1.")
        for name, low, open_low in (
            ("lr", 0, True),
            ("clip_epsilon", 0, True),
            ("max_grad_norm", 0, True),
            ("entropy_coef", 0, False),
        ):
            v = getattr(self, name)
            finite = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not finite or v < low or (open_low and v == low):
                raise ValueError(
                    f"ppo.{name}={v!r} is invalid: expected a finite number {'>' if open_low else '>='} {low}."
                )
        for name in ("gamma", "lmbda"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"ppo.{name}={v!r} is invalid: expected a number in [0, 1].")
        if self.minibatch_size > self.frames_per_batch:
            raise ValueError(
                f"ppo.minibatch_size={self.minibatch_size} must be <= ppo.frames_per_batch={self.frames_per_batch}."
            )


class FlattenObservation(nn.Module):
    """Flattens the last ``ndim`` dims of an observation and casts it to float (image obs)."""

    def __init__(self, ndim: int) -> None:
        super().__init__()
        self.ndim = ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.flatten(-self.ndim).to(torch.get_default_dtype())


def make_actor_critic(
    env: EnvBase, hidden: int = 64, device: torch.device | str | None = None
) -> tuple[ProbabilisticActor, ValueOperator]:
    """An actor and a value network reading ``"observation"``.

    Both are built on ``device`` (default: the env's device, else CPU), the action bounds included.

    A bounded continuous action gets a tanh-Gaussian actor; a discrete action (``OneHot`` or
    ``Categorical`` spec, e.g. MiniGrid's) a categorical actor over logits, masked by the
    observation's ``"action_mask"`` where the env has one (a ``Categorical`` action). An observation with
    more than one dim (an image, e.g. MiniGrid's 7x7x3) is flattened and cast to float first.
    """
    from torchrl.data import Categorical as CategoricalSpec
    from torchrl.data import OneHot as OneHotSpec
    from torchrl.modules import MaskedCategorical, OneHotCategorical

    obs_shape = tuple(env.observation_spec_unbatched["observation"].shape)
    obs_dim = 1
    for d in obs_shape:
        obs_dim *= d

    def body(out_features: int) -> nn.Module:
        mlp = MLP(in_features=obs_dim, out_features=out_features, num_cells=[hidden, hidden], activation_class=nn.Tanh)
        return mlp if len(obs_shape) == 1 else nn.Sequential(FlattenObservation(len(obs_shape)), mlp)

    if device is None:
        device = env.device if env.device is not None else torch.device("cpu")
    device = torch.device(device)
    action_spec = env.action_spec_unbatched.to(device)
    batched_spec = env.action_spec.to(device)
    if isinstance(action_spec, (OneHotSpec, CategoricalSpec)):
        n = action_spec.space.n
        if "action_mask" in env.observation_spec.keys() and isinstance(action_spec, CategoricalSpec):
            # legal actions only (a board game's free cells): TorchRL's masked categorical
            dist_keys: Any = {"logits": "logits", "mask": "action_mask"}
            dist: Any = MaskedCategorical
        else:
            dist_keys = ["logits"]
            dist = OneHotCategorical if isinstance(action_spec, OneHotSpec) else torch.distributions.Categorical
        actor = ProbabilisticActor(
            TensorDictModule(body(n), in_keys=["observation"], out_keys=["logits"]),
            spec=batched_spec,
            in_keys=dist_keys,
            distribution_class=dist,
            return_log_prob=True,
        )
    else:
        act_dim = batched_spec.shape[-1]
        actor_net = nn.Sequential(body(2 * act_dim), NormalParamExtractor())
        space = action_spec.space
        actor = ProbabilisticActor(
            TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
            spec=batched_spec,
            in_keys=["loc", "scale"],
            distribution_class=TanhNormal,
            distribution_kwargs={"low": space.low, "high": space.high},
            return_log_prob=True,
        )
    critic = ValueOperator(body(1), in_keys=["observation"])
    return actor.to(device), critic.to(device)


class ReplayedOnly:
    """``pre_epoch`` op for robust PLR (PLR⊥): fills the PPO replay buffer with the transitions
    of replayed levels only (``batch[replay_key]`` True), so the epoch's gradient steps skip the
    episodes of new levels; they were collected to score those levels.

    The advantages are computed before, on the whole batch (GAE needs whole trajectories).
    With no replayed transition in the batch, the epoch makes no gradient step.

    Args:
        rbt (ReplayBufferTrainer): the trainer's replay-buffer hook (``iterate=True``).
        replay_key (NestedKey): the per-transition decision written by
            :class:`~currlearn.integrations.replay.ReplayDecisionTransform`.
    """

    def __init__(self, rbt: ReplayBufferTrainer, replay_key: Any = "level_replay") -> None:
        self.rbt = rbt
        self.replay_key = replay_key

    def __call__(self, batch: Any) -> Any:
        flat = batch.reshape(-1)
        kept = flat[flat.get(self.replay_key).reshape(-1)]
        rb = self.rbt.replay_buffer
        rb.empty()
        if kept.shape[0]:  # (TensorDict.numel() is 1 for an empty batch)
            rb.extend(kept)
            self.rbt.replay_buffer_iter = iter(rb)
        else:
            self.rbt.replay_buffer_iter = iter(())  # the epoch ends at once
        return kept


def find_curriculum_transform(env: EnvBase) -> CurriculumTransform | None:
    """The :class:`CurriculumTransform` of a TransformedEnv, or None."""
    found = find_transforms(env, CurriculumTransform)
    return found[0] if found else None


def make_ppo_trainer(
    env: EnvBase,
    curriculum: Curriculum | None = None,
    settings: PPOSettings | None = None,
    *,
    logger: Any = None,
    log_interval: int = 0,
    save_path: str | None = None,
    progress_bar: bool = False,
    tracker: EpisodeTracker | None = None,
    device: torch.device | str | None = None,
) -> tuple[Trainer, CurriculumHook | None]:
    """Build a TorchRL PPO ``Trainer`` on ``env`` with ``curriculum`` hooked in.

    Args:
        env (EnvBase): the (batched) env, with a CurriculumTransform when ``curriculum`` is set.
        curriculum (Curriculum, optional): the curriculum driving the transform.
        settings (PPOSettings, optional): hyper-parameters; defaults if None.
        logger: a TorchRL logger (``CSVLogger``, ...), or None.
        log_interval (int): frames between log writes (0: every iteration).
        save_path (str, optional): the trainer's checkpoint file.
        progress_bar (bool): TorchRL's progress bar.
        tracker (EpisodeTracker, optional): how the hook reads per-episode feedback from a
            batch; default ``curriculum.make_tracker(...)`` (see :class:`CurriculumHook`).
        device (torch.device, optional): where the networks, the loss, GAE and the minibatch
            buffer live and where the collector stores its batches; default the env's device
            (CPU for an env without one). An env on another device (a CPU-only Gymnasium env
            with ``device="cuda"``) is stepped on its own device by the collector.

    Returns:
        ``(trainer, hook)``; ``hook`` is None without a curriculum. Call ``trainer.train()``.

    Raises:
        TypeError: ``tracker`` is not an EpisodeTracker.
        ValueError: ``tracker`` is given without a curriculum; no CurriculumTransform on
            ``env`` for ``curriculum``; robust PLR without a ReplayDecisionTransform.
    """
    s = settings if settings is not None else PPOSettings()
    if tracker is not None and not isinstance(tracker, EpisodeTracker):
        raise TypeError(f"tracker must be an EpisodeTracker or None, got {type(tracker).__name__}.")
    if tracker is not None and curriculum is None:
        raise ValueError("tracker is given but curriculum is not: the tracker feeds the curriculum's hook.")
    replay_key = None
    if curriculum is not None and getattr(curriculum, "robust", False):
        # PLR⊥ trains on replayed levels only: the batch must say which transitions those are.
        deciders = find_transforms(env, ReplayDecisionTransform)
        if not deciders:
            raise ValueError(
                "robust PLR trains on replayed levels only: add a ReplayDecisionTransform after the "
                "CurriculumTransform (TransformedEnv(env, Compose(CurriculumTransform(cur), "
                "ReplayDecisionTransform(cur))))."
            )
        replay_key = deciders[0].out_key
    env_device = env.device if env.device is not None else torch.device("cpu")
    device = env_device if device is None else torch.device(device)
    actor, critic = make_actor_critic(env, s.hidden, device)
    collector = Collector(
        env,
        actor,
        frames_per_batch=s.frames_per_batch,
        total_frames=s.total_frames,
        env_device=env_device,
        policy_device=device,
        storing_device=device,
        auto_register_policy_transforms=False,
    )
    loss = ClipPPOLoss(
        actor, critic, clip_epsilon=s.clip_epsilon, entropy_coeff=s.entropy_coef, normalize_advantage=True
    )
    optim = torch.optim.Adam(loss.parameters(), lr=s.lr)
    trainer = Trainer(
        collector=collector,
        total_frames=s.total_frames,
        frame_skip=1,
        optim_steps_per_batch=None,
        num_epochs=s.num_epochs,
        loss_module=loss,
        optimizer=optim,
        logger=logger,
        log_interval=log_interval,
        progress_bar=progress_bar,
        clip_norm=s.max_grad_norm,
        save_trainer_file=save_path,
    )
    ValueEstimatorHook(GAE(gamma=s.gamma, lmbda=s.lmbda, value_network=critic, average_gae=True)).register(trainer)
    hook = None
    if curriculum is not None:
        transform = find_curriculum_transform(env)
        if transform is None:
            raise ValueError(
                "curriculum is given but env has no CurriculumTransform: wrap it with "
                "TransformedEnv(env, CurriculumTransform(curriculum))."
            )
        # Curricula that score episodes from advantages (PLR) read the batch at the first
        # epoch, after the ValueEstimatorHook above wrote PPO's GAE into it and before the
        # replay buffer flattens it.
        hook = CurriculumHook(
            curriculum,
            transform=transform,
            tracker=tracker,
            feedback_at="pre_epoch" if curriculum.needs_value_estimates else "batch_process",
            log_interval=log_interval,
        )
        hook.register(trainer)
    rb = ReplayBuffer(
        storage=LazyTensorStorage(s.frames_per_batch, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=s.minibatch_size,
    )
    rbt = ReplayBufferTrainer(rb, flatten_tensordicts=True, iterate=True)
    # In the checkpoint: its sampler draws the next epoch's permutation ahead, so a resumed run
    # replays the minibatches an uninterrupted one would.
    trainer.register_module("minibatch_buffer", rbt)
    if replay_key is not None:
        # PLR⊥: no gradient on the episodes of new levels (they are played for their scores).
        trainer.register_op("pre_epoch", ReplayedOnly(rbt, replay_key))
    else:
        trainer.register_op("pre_epoch", rbt.extend)
    trainer.register_op("process_optim_batch", rbt.sample)
    trainer.register_op("post_steps", UpdateWeights(collector, 1))
    return trainer, hook
