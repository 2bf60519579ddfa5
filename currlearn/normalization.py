"""Per-task reward normalisation (Syllabus' ``normalize(reward, task)``), batched, on device.

Tasks differ in reward scale (a long CartPole pole, an 8x8 grid); with one shared scale the
easy or dense tasks dominate the advantage. :class:`TaskRewardNormalizer` keeps a running
count, mean and sum of squared deviations per task in preallocated ``[num_tasks]`` tensors and
merges each batch with Chan et al.'s parallel update, all with ``index_add_`` (no loop over
tasks or steps). It then divides each reward by its task's running standard deviation
(and, with ``center=True``, subtracts its mean first).

Applied in the trainer's ``batch_process`` (before GAE, which runs at ``pre_epoch``), after
the curriculum hook, so the curriculum still sees raw returns.

Examples:
    >>> import torch
    >>> norm = TaskRewardNormalizer(num_tasks=2)
    >>> norm.update(torch.tensor([1.0, 3.0, 10.0, 30.0]), torch.tensor([0, 0, 1, 1]))
    >>> norm.mean
    tensor([ 2., 20.], dtype=torch.float64)
    >>> norm.normalize(torch.tensor([2.0, 20.0]), torch.tensor([0, 1]))
    tensor([2., 2.])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

__all__ = ["TaskRewardNormalizer"]

_VERSION = 1


class TaskRewardNormalizer:
    """Running per-task reward mean/std, and the normalised rewards of a batch.

    Args:
        num_tasks (int): number of tasks (ids ``0 .. num_tasks-1``, as a ``DiscreteSpace``).
        center (bool): subtract the task's mean before dividing by its std. Default False
            (scale only, which keeps the sign of rewards and the meaning of termination).
        eps (float): added to the variance before the square root. Default 1e-8.
        min_count (int): a task with fewer rewards seen is left unscaled. Default 2.
        task_key (NestedKey): per-step task id in a batch. Default ``("next", "task_id")``.
        reward_key (NestedKey): the reward to normalise in place. Default ``("next", "reward")``.
        raw_key (NestedKey, optional): where to keep the raw reward. Default None.
        device: device of the state. Default CPU.

    Raises:
        ValueError: ``num_tasks < 1``, ``eps <= 0``, ``min_count < 1``.
    """

    def __init__(
        self,
        num_tasks: int,
        *,
        center: bool = False,
        eps: float = 1e-8,
        min_count: int = 2,
        task_key: NestedKey = ("next", "task_id"),
        reward_key: NestedKey = ("next", "reward"),
        raw_key: NestedKey | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks!r}.")
        if not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a number > 0, got {eps!r}.")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}.")
        self.num_tasks = num_tasks
        self.center = center
        self.eps = float(eps)
        self.min_count = min_count
        self.task_key = task_key
        self.reward_key = reward_key
        self.raw_key = raw_key
        device = torch.device("cpu") if device is None else torch.device(device)
        z = torch.zeros(num_tasks, dtype=torch.float64, device=device)
        self.state = TensorDict({"count": z.clone(), "mean": z.clone(), "m2": z.clone()}, batch_size=[num_tasks])

    # ------------------------------------------------------------------ statistics
    @property
    def device(self) -> torch.device:
        """Device of the state."""
        return self.state["count"].device

    @property
    def count(self) -> Tensor:
        """Rewards seen per task, shape ``[num_tasks]``."""
        return self.state["count"]

    @property
    def mean(self) -> Tensor:
        """Running mean per task, shape ``[num_tasks]``."""
        return self.state["mean"]

    @property
    def var(self) -> Tensor:
        """Running population variance per task, shape ``[num_tasks]`` (0 for unseen tasks)."""
        return self.state["m2"] / self.state["count"].clamp_min(1)

    @property
    def std(self) -> Tensor:
        """Running population standard deviation per task, shape ``[num_tasks]``."""
        return self.var.sqrt()

    def update(self, rewards: Tensor, tasks: Tensor) -> None:
        """Merge a batch of rewards into the per-task statistics.

        Args:
            rewards (Tensor): any shape, float.
            tasks (Tensor): same number of elements, int64 task ids in ``[0, num_tasks)``.

        Raises:
            ValueError: mismatched sizes, or task ids out of range (nothing changes then).
        """
        r = rewards.reshape(-1).to(self.device, torch.float64)
        t = tasks.reshape(-1).to(self.device)
        self._check(r, t)
        k = self.num_tasks
        n_b = torch.zeros(k, dtype=torch.float64, device=self.device).index_add_(0, t, torch.ones_like(r))
        sum_b = torch.zeros_like(n_b).index_add_(0, t, r)
        mean_b = sum_b / n_b.clamp_min(1)
        m2_b = torch.zeros_like(n_b).index_add_(0, t, (r - mean_b[t]).square())
        n_a, mean_a, m2_a = self.state["count"], self.state["mean"], self.state["m2"]
        n = n_a + n_b
        delta = mean_b - mean_a
        frac = n_b / n.clamp_min(1)
        mean_a.add_(delta * frac)
        m2_a.add_(m2_b + delta.square() * n_a * frac)
        n_a.copy_(n)

    def _check(self, r: Tensor, t: Tensor) -> None:
        if r.numel() != t.numel():
            raise ValueError(f"rewards has {r.numel()} elements but tasks has {t.numel()}; give one task per reward.")
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"tasks must hold integer task ids, got dtype {t.dtype}.")
        if t.numel() and (t.min() < 0 or t.max() >= self.num_tasks):
            bad = t[(t < 0) | (t >= self.num_tasks)]
            raise ValueError(f"tasks has ids {bad[:5].tolist()} outside [0, {self.num_tasks}).")

    def normalize(self, rewards: Tensor, tasks: Tensor) -> Tensor:
        """Rewards divided by their task's running std (minus its mean first with ``center``).

        Tasks seen fewer than ``min_count`` times are returned unchanged.

        Args:
            rewards (Tensor): any shape.
            tasks (Tensor): task ids, same number of elements (broadcast to ``rewards``' shape).

        Returns:
            A tensor with the shape and dtype of ``rewards``.
        """
        t = tasks.reshape(-1).to(self.device)
        shape = rewards.shape
        r = rewards.reshape(-1).to(torch.float64)
        ready = self.state["count"][t] >= self.min_count
        mean = self.state["mean"][t].to(r.device) if self.center else torch.zeros_like(r)
        std = (self.var[t] + self.eps).sqrt().to(r.device)
        out = torch.where(ready.to(r.device), (r - mean) / std, r)
        return out.to(rewards.dtype).reshape(shape)

    # ------------------------------------------------------------------ batches / trainer
    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        """Update from ``batch`` and replace its reward with the normalised one (in place).

        Args:
            batch (TensorDict): a collector batch with ``task_key`` and ``reward_key``.

        Returns:
            ``batch``.
        """
        for key, name in ((self.task_key, "task_key"), (self.reward_key, "reward_key")):
            if key not in batch.keys(True):
                raise KeyError(
                    f"{name}: the batch has no key {key!r}; is the CurriculumTransform on the env? "
                    f"Its keys are {sorted(map(str, batch.keys(True, True)))[:20]}."
                )
        reward = batch.get(self.reward_key)
        tasks = batch.get(self.task_key)
        if tasks.shape != reward.shape:
            tasks = tasks.reshape(*tasks.shape, *([1] * (reward.dim() - tasks.dim()))).expand_as(reward)
        self.update(reward, tasks)
        if self.raw_key is not None:
            batch.set(self.raw_key, reward.clone())
        batch.set(self.reward_key, self.normalize(reward, tasks))
        return batch

    def register(self, trainer: Any, name: str = "reward_normalizer") -> None:
        """Register as a ``batch_process`` op and a trainer module (checkpointed)."""
        trainer.register_op("batch_process", self)
        trainer.register_module(name, self)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"_version", "num_tasks", "count", "mean", "m2"}`` (cloned tensors)."""
        return {
            "_version": _VERSION,
            "num_tasks": self.num_tasks,
            **{k: v.clone() for k, v in self.state.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; checks everything before changing anything.

        Raises:
            ValueError: another ``num_tasks``, missing keys or shapes; nothing changes then.
        """
        if state_dict.get("num_tasks") != self.num_tasks:
            raise ValueError(
                f"state_dict has num_tasks={state_dict.get('num_tasks')}, this normalizer has num_tasks={self.num_tasks}."
            )
        if state_dict.get("_version", 0) > _VERSION:
            raise ValueError(f"state_dict has _version={state_dict['_version']}, newer than {_VERSION}.")
        for k in ("count", "mean", "m2"):
            if k not in state_dict or tuple(torch.as_tensor(state_dict[k]).shape) != (self.num_tasks,):
                raise ValueError(f"state_dict[{k!r}] must be a tensor of shape [{self.num_tasks}].")
        for k in ("count", "mean", "m2"):
            self.state[k].copy_(torch.as_tensor(state_dict[k]).to(self.device, torch.float64))

    def to(self, device: torch.device | str) -> TaskRewardNormalizer:
        """Move the state to ``device``. Returns ``self``."""
        self.state = self.state.to(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_tasks={self.num_tasks}, center={self.center}, device={self.device})"
