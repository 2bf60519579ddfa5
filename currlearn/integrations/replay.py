r"""Replay-side curriculum for TorchRL: a replay ``Sampler`` driven by task weights.

:class:`CurriculumSampler` decides *which stored experience the learner replays*. The sampling
probability of stored item ``i`` with task ``t(i)`` is proportional to

.. math:: w_{t(i)} \cdot d_i \cdot q_i

- ``w_t``: a weight per task: the curriculum's current distribution
  (:meth:`~currlearn.base.DiscreteCurriculum.weights`) or a tensor you set
  (:meth:`CurriculumSampler.set_task_weights`);
- ``d_i``: a per-item difficulty factor, an exponential moving average of the values given to
  :meth:`CurriculumSampler.update_difficulty` (1 for items never rated);
- ``q_i``: a prioritised-replay priority ``(|δ_i| + ε)^α`` (Schaul et al. 2015,
  https://arxiv.org/abs/1511.05952) from :meth:`CurriculumSampler.update_priority`, the method
  TorchRL's buffers call with TD errors; new items get the largest priority seen so far. With
  ``alpha=0`` (default) it is 1: no prioritisation. The product is the combination with
  TD-error prioritised replay.

All per-item state lives in preallocated tensors of size ``capacity`` on the sampler's device
and is updated in batches. The item weights are the leaves of a float64 sum tree: TorchRL's C++
segment tree on CPU (:class:`SegmentSumTree`, the one its ``PrioritizedSampler`` uses), else
:class:`SumTree`, whose draws descend it in ``log2(capacity)`` vectorised steps on the device.
The items whose difficulty, priority or storage slot changed are re-weighted in
``O(k log capacity)`` before the next draw; the whole tree is rebuilt (``O(capacity)``) only
when the task weights change (a new curriculum decision, :meth:`CurriculumSampler.set_task_weights`).
The sampler owns its generator and checkpoints it with the rest (``state_dict``/``dumps``).

:class:`ReplayDecisionTransform` carries the robust-PLR decision "replayed level or not" into
every transition, so that the loss can skip the episodes played on new levels.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import LazyTensorStorage, ReplayBuffer
    >>> sampler = CurriculumSampler(num_tasks=2, capacity=100, seed=0)
    >>> sampler.set_task_weights(torch.tensor([0.0, 1.0]))
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100), sampler=sampler, batch_size=8)
    >>> _ = rb.extend(TensorDict({"task_id": torch.tensor([0, 1, 0, 1])}, [4]))
    >>> rb.sample()["task_id"].unique()  # task 0 has weight 0
    tensor([1])
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import Storage, TensorStorage
from torchrl.envs.transforms import Transform

from currlearn.base import (
    Curriculum,
    DiscreteCurriculum,
    check_finite,
    check_positive_int,
    check_probability,
)
from currlearn.functional import finite
from currlearn.trees import SegmentSumTree, SumTree, make_sum_tree

__all__ = ["CurriculumSampler", "ReplayDecisionTransform", "SegmentSumTree", "SumTree"]

_STATE_VERSION = 1
_FILE = "curriculum_sampler.pt"


class CurriculumSampler(Sampler):
    """A TorchRL replay sampler with probabilities ``task weight x difficulty x priority``.

    Args:
        curriculum (DiscreteCurriculum, optional): its :meth:`weights` give the task weights,
            read again whenever its decision changes (``update``, ``step``, a load: its
            ``decision_version``; not after each of its own ``sample`` calls). Without it, use
            :meth:`set_task_weights` (default: all ones).
        num_tasks (int, optional): number of tasks when no curriculum is given.
        capacity (int): number of items the storage can hold (its ``max_size``). Default 1e6.
        task_key (NestedKey): where stored items keep their task id. Default ``"task_id"``
            (what :class:`~currlearn.integrations.torchrl.CurriculumTransform` writes).
        difficulty_smoothing (float): EMA rate of the difficulty factor in (0, 1]; the first
            rating of an item replaces the initial 1. Default 0.1.
        alpha (float): prioritisation exponent ``α >= 0``; 0 disables priorities. Default 0.
        beta (float): importance-sampling exponent ``β >= 0`` of the weights returned in the
            sample info under ``"_weight"`` (``(n P_i)^-β``, normalised by their max). Default 0.
        eps (float): ``ε > 0`` added to ``|δ|``. Default 1e-6.
        seed (int, optional): seed of the sampler's generator (checkpointed).
        device: device of the per-item tensors (and of the returned indices). Default CPU.

    Change the per-item factors through :meth:`update_priority`, :meth:`update_difficulty` and
    the buffer (``extend``): the sum tree follows those calls, not direct writes into
    :attr:`priority` or :attr:`difficulty`.

    Raises:
        ValueError: neither ``curriculum`` nor ``num_tasks``, a continuous curriculum, bad
            numbers (the message names the argument and the value).
    """

    def __init__(
        self,
        curriculum: Curriculum | None = None,
        *,
        num_tasks: int | None = None,
        capacity: int = 1_000_000,
        task_key: NestedKey = "task_id",
        difficulty_smoothing: float = 0.1,
        alpha: float = 0.0,
        beta: float = 0.0,
        eps: float = 1e-6,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if curriculum is not None:
            if not isinstance(curriculum, DiscreteCurriculum):
                raise ValueError(
                    f"curriculum must be a DiscreteCurriculum (a distribution over task ids), got {type(curriculum).__name__}."
                )
            if num_tasks is not None and num_tasks != curriculum.space.num_tasks:
                raise ValueError(
                    f"num_tasks={num_tasks} differs from the curriculum's {curriculum.space.num_tasks} tasks."
                )
            num_tasks = curriculum.space.num_tasks
        if num_tasks is None:
            raise ValueError("CurriculumSampler needs a curriculum or num_tasks, got neither.")
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.capacity = check_positive_int("capacity", capacity)
        self.curriculum = curriculum
        self.task_key = task_key
        self.difficulty_smoothing = check_probability("difficulty_smoothing", difficulty_smoothing, open_low=True)
        self.alpha = check_finite("alpha", alpha)
        self.beta = check_finite("beta", beta)
        self.eps = check_finite("eps", eps)
        if self.alpha < 0 or self.beta < 0 or self.eps <= 0:
            raise ValueError(
                f"alpha and beta must be >= 0 and eps > 0, got alpha={alpha!r}, beta={beta!r}, eps={eps!r}."
            )
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)
        self._alloc()

    def _alloc(self) -> None:
        cap, dev = self.capacity, self.device
        self.task_weights = torch.ones(self.num_tasks, device=dev)
        self.difficulty = torch.ones(cap, device=dev)
        self.rated = torch.zeros(cap, dtype=torch.bool, device=dev)
        self.priority = torch.ones(cap, device=dev)
        self.max_priority = torch.ones((), device=dev)
        self.skipped_nonfinite = torch.zeros((), dtype=torch.int64, device=dev)
        # The item weights as a sum tree; rebuilt when the task weights or the stored length
        # change, else updated at the items marked dirty since the last draw.
        self._tree = make_sum_tree(cap, device=dev)
        self._tree_key: tuple[int, int] | None = None  # (task-weight version, stored length) it was built for
        self._dirty: list[Tensor] = []
        self._dirty_count = 0
        self._weights_version = 0  # bumped by set_task_weights

    # ------------------------------------------------------------------ weights
    def set_task_weights(self, weights: Tensor) -> None:
        """Use ``weights`` (shape ``[num_tasks]``, non-negative, finite) as the task weights.

        Raises:
            ValueError: another shape, a negative or non-finite weight, or a curriculum given
                at construction (its weights are used instead).
        """
        if self.curriculum is not None:
            raise ValueError(
                "This sampler reads its task weights from its curriculum; set_task_weights is for samplers without one."
            )
        weights = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        if weights.shape != (self.num_tasks,):
            raise ValueError(f"weights must have shape [{self.num_tasks}], got {list(weights.shape)}.")
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights must be finite and >= 0.")
        self.task_weights.copy_(weights)
        self._weights_version += 1

    def _task_weights_version(self) -> int:
        if self.curriculum is not None:
            return self.curriculum.decision_version
        return self._weights_version

    def _mark(self, idx: Tensor) -> None:
        """Items ``idx`` changed weight: re-weight them in the tree before the next draw."""
        self._dirty.append(idx)
        self._dirty_count += idx.numel()
        if self._dirty_count > self.capacity // 4:  # cheaper to rebuild
            self._tree_key = None
            self._dirty, self._dirty_count = [], 0

    def _task_weights(self) -> Tensor:
        if self.curriculum is not None:
            return self.curriculum.weights().to(self.device, torch.float32)
        return self.task_weights

    def _item_index(self, index: int | Tensor) -> Tensor:
        return torch.as_tensor(index, dtype=torch.long, device=self.device).reshape(-1)

    # ------------------------------------------------------------------ Sampler hooks
    def add(self, index: int) -> None:  # noqa: D102
        self.extend(torch.as_tensor([index]))

    def extend(self, index: Tensor) -> None:
        """New items were written at ``index``: they start neutral (difficulty 1, max priority)."""
        idx = self._item_index(index)
        if idx.numel() == 0:
            return
        if int(idx.max()) >= self.capacity:
            raise ValueError(
                f"The storage wrote item {int(idx.max())} but the sampler's capacity is {self.capacity}; "
                "build the CurriculumSampler with capacity >= the storage's max_size."
            )
        self.difficulty.index_fill_(0, idx, 1.0)
        self.rated.index_fill_(0, idx, False)
        self.priority.index_fill_(0, idx, 1.0)
        if self.alpha > 0:
            self.priority.index_copy_(0, idx, self.max_priority.expand(idx.numel()))
        self._mark(idx)

    def update_priority(self, index: int | Tensor, priority: float | Tensor, *, storage: Storage | None = None) -> None:
        """Prioritised replay: ``q_i = (|priority_i| + eps)^alpha`` at ``index`` (shape ``[n]``).

        Non-finite priorities are counted (``skipped_nonfinite``) and ignored.
        """
        idx = self._item_index(index)
        if idx.numel() == 0:
            return
        p = torch.as_tensor(priority, dtype=torch.float32, device=self.device).reshape(-1).expand(idx.numel()).abs()
        ok = finite(p)
        n_bad = ok.numel() - ok.sum()
        self.skipped_nonfinite += n_bad
        q = (p + self.eps).pow_(self.alpha)
        if self.device.type == "cpu" and not bool(n_bad):  # (free to check on CPU)
            torch.maximum(self.max_priority, q.max(), out=self.max_priority)
            self.priority.index_copy_(0, idx, q)
        else:
            self.max_priority.copy_(torch.maximum(self.max_priority, torch.where(ok, q, 0.0).max()))
            self.priority.index_copy_(0, idx, torch.where(ok, q, self.priority.index_select(0, idx)))
        self._mark(idx)

    def update_difficulty(self, index: int | Tensor, value: float | Tensor) -> None:
        """Move the difficulty factor of items ``index`` towards ``value`` (>= 0), by EMA.

        Duplicate indices in one call: the last value wins. Non-finite or negative values are
        counted (``skipped_nonfinite``) and ignored.
        """
        idx = self._item_index(index)
        v = torch.as_tensor(value, dtype=torch.float32, device=self.device).reshape(-1).expand(idx.numel())
        ok = torch.isfinite(v) & (v >= 0)
        self.skipped_nonfinite += (~ok).sum()
        old = self.difficulty.index_select(0, idx)
        rated = self.rated.index_select(0, idx)
        a = self.difficulty_smoothing
        new = torch.where(rated, (1 - a) * old + a * v, v)
        self.difficulty.index_copy_(0, idx, torch.where(ok, new, old))
        self.rated.index_copy_(0, idx, rated | ok)
        self._mark(idx)

    def _stored_tasks(self, storage: Storage, n: int) -> Tensor:
        tasks = None
        if isinstance(storage, TensorStorage) and storage.ndim == 1:
            backing = getattr(storage, "_storage", None)
            if isinstance(backing, TensorDictBase):
                tasks = backing.get(self.task_key, None)
                if tasks is not None:
                    tasks = tasks[:n]
        if tasks is None:
            if getattr(storage, "ndim", 1) != 1:
                raise ValueError(
                    f"CurriculumSampler supports 1-d storages only, got a storage with ndim={storage.ndim}."
                )
            data = storage[:n]
            if isinstance(data, (list, tuple)) and data and isinstance(data[0], TensorDictBase):
                data = torch.stack(list(data))  # ListStorage: per-item Python (slow storage anyway)
            tasks = data.get(self.task_key, None) if isinstance(data, TensorDictBase) else None
        if tasks is None:
            raise KeyError(
                f"The replay buffer's items have no {self.task_key!r} entry: store the task id of every transition "
                "(CurriculumTransform writes it) or pass task_key=..."
            )
        return tasks.reshape(n, -1)[:, 0].to(self.device, torch.long)

    def item_weights(self, storage: Storage) -> Tensor:
        """Unnormalised weight of every stored item, shape ``[len(storage)]``."""
        n = len(storage)
        if n > self.capacity:
            raise ValueError(
                f"The storage holds {n} items but the sampler's capacity is {self.capacity}; build it with capacity >= max_size."
            )
        tasks = self._stored_tasks(storage, n)
        w = self._task_weights().index_select(0, tasks)
        return w * self.difficulty[:n] * self.priority[:n]

    def _sync_tree(self, storage: Storage, n: int) -> SumTree | SegmentSumTree:
        key = (self._task_weights_version(), n)
        if self._tree_key is None or self._tree_key[0] != key[0] or n < self._tree_key[1]:
            self._tree.build(self.item_weights(storage))
        elif self._dirty:
            idx = torch.cat(self._dirty) if len(self._dirty) > 1 else self._dirty[0]
            if n < self.capacity:  # (a full storage holds every index)
                idx = idx[idx < n]
            tasks = self._stored_tasks(storage, n).index_select(0, idx)
            w = self._task_weights().index_select(0, tasks)
            self._tree.update(idx, w * self.difficulty.index_select(0, idx) * self.priority.index_select(0, idx))
        self._tree_key = key
        self._dirty, self._dirty_count = [], 0
        return self._tree

    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[str, Any]]:
        """Draw ``batch_size`` item indices (with replacement) by ``task weight x difficulty x priority``.

        Returns:
            ``(index [batch_size], info)``; ``info["_weight"]`` holds importance weights
            (``(n P_i)^-beta / max``; ones when ``beta == 0``).

        Raises:
            RuntimeError: an empty storage. If all weights are zero, items are drawn uniformly.
        """
        n = len(storage)
        if n == 0:
            raise RuntimeError("Cannot sample from an empty storage.")
        tree = self._sync_tree(storage, n)
        total = tree.total
        u = torch.rand(batch_size, generator=self.generator, device=self.device, dtype=torch.float64)
        if self.device.type == "cpu":  # the total is free to read: one branch only
            if float(total) > 0:
                index = tree.find(u * total).clamp_max_(n - 1)
                prob = tree.leaves(index) / total
            else:
                index = (u * n).long().clamp_max_(n - 1)
                prob = torch.full_like(u, 1.0 / n)
        else:
            by_weight = tree.find(u * total).clamp_max(n - 1)
            uniform = (u * n).long().clamp_max(n - 1)
            index = torch.where(total > 0, by_weight, uniform)
            prob = torch.where(total > 0, tree.leaves(index) / total.clamp_min(1e-300), torch.full_like(u, 1.0 / n))
        if self.beta > 0:
            iw = (n * prob).clamp_min(1e-300).pow(-self.beta)
            iw = iw / iw.max()
        else:
            iw = torch.ones_like(prob)
        return index, {"_weight": iw.float(), "probability": prob.float()}

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers: per-item factors, task weights, generator state."""
        return OrderedDict(
            _version=_STATE_VERSION,
            capacity=self.capacity,
            num_tasks=self.num_tasks,
            task_weights=self.task_weights.clone(),
            difficulty=self.difficulty.clone(),
            rated=self.rated.clone(),
            priority=self.priority.clone(),
            max_priority=self.max_priority.clone(),
            skipped_nonfinite=self.skipped_nonfinite.clone(),
            rng=self.generator.get_state(),
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; checks sizes before changing anything.

        Raises:
            ValueError: another capacity or number of tasks (both values in the message).
        """
        for key, mine in (("capacity", self.capacity), ("num_tasks", self.num_tasks)):
            theirs = int(state_dict.get(key, -1))
            if theirs != mine:
                raise ValueError(f"state_dict has {key}={theirs}, this sampler has {key}={mine}.")
        for key in ("task_weights", "difficulty", "rated", "priority", "max_priority", "skipped_nonfinite"):
            getattr(self, key).copy_(torch.as_tensor(state_dict[key]).to(self.device))
        if "rng" in state_dict:
            self.generator.set_state(torch.as_tensor(state_dict["rng"]).clone())
        self._tree_key = None  # rebuilt from the loaded factors at the next draw

    def _empty(self) -> None:
        self._alloc()

    def dumps(self, path: str | Path) -> None:
        """Write the state to ``path/curriculum_sampler.pt`` (``torch.save`` of plain tensors)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(dict(self.state_dict()), path / _FILE)

    def loads(self, path: str | Path) -> None:
        """Read the state written by :meth:`dumps` (``weights_only`` load: no pickle)."""
        self.load_state_dict(torch.load(Path(path) / _FILE, weights_only=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_tasks={self.num_tasks}, capacity={self.capacity}, alpha={self.alpha}, device={self.device})"


class ReplayDecisionTransform(Transform):
    """Writes a robust-PLR curriculum's per-env replay decision into every transition.

    Place it *after* the :class:`~currlearn.integrations.torchrl.CurriculumTransform` (so that
    it reads the decision of the reset that just happened). Each transition then carries
    ``out_key`` (bool, ``[*batch]``): True when its episode plays a replayed level (train on
    it), False on a new level (score it, but mask it out of the loss, PLR⊥). See
    :class:`~currlearn.curricula.plr.PrioritizedLevelReplay` for the loss side.

    Args:
        curriculum: a :class:`~currlearn.curricula.plr.PrioritizedLevelReplay` built with
            ``num_envs`` equal to the env's number of envs.
        out_key (NestedKey): default ``"level_replay"``.
    """

    def __init__(self, curriculum: Curriculum, out_key: NestedKey = "level_replay") -> None:
        if not hasattr(curriculum, "env_replay") or getattr(curriculum, "num_envs", None) is None:
            raise ValueError(
                "ReplayDecisionTransform needs a PrioritizedLevelReplay built with num_envs=<number of envs> "
                f"(to keep one decision per env), got {type(curriculum).__name__} with num_envs={getattr(curriculum, 'num_envs', None)}."
            )
        super().__init__(in_keys=[], out_keys=[out_key])
        self.curriculum = curriculum
        self.out_key = out_key

    def _flag(self, td: TensorDictBase) -> Tensor:
        flags = self.curriculum.env_replay  # type: ignore[attr-defined]
        if flags.numel() != td.batch_size.numel():
            raise ValueError(
                f"the curriculum keeps {flags.numel()} env decisions but the env batch is {list(td.batch_size)}."
            )
        return flags.reshape(td.batch_size).to(td.device if td.device is not None else flags.device).clone()

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        tensordict_reset.set(self.out_key, self._flag(tensordict_reset))
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        next_tensordict.set(self.out_key, self._flag(next_tensordict))
        return next_tensordict

    def transform_observation_spec(self, observation_spec: Any) -> Any:  # noqa: D102
        from torchrl.data import Unbounded

        observation_spec[self.out_key] = Unbounded(
            shape=observation_spec.shape, dtype=torch.bool, device=observation_spec.device
        )
        return observation_spec
