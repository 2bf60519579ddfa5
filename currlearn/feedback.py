"""Per-episode feedback from batches of transitions, vectorised.

:class:`EpisodeTracker` turns a collector batch of shape ``[*envs, time]`` into one row per
episode that *finished* in the batch: its task, return, length, success and optional
per-episode metrics. Episodes that started in an earlier batch are carried: the tracker keeps
running sums per env between calls. There is no Python loop over envs or steps: steps are
assigned to episode segments with a cumulative sum over done flags, and sums per segment are
one ``index_add_``.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from currlearn.feedback import EpisodeTracker
    >>> done = torch.tensor([[False, True, False], [False, False, False]])
    >>> batch = TensorDict({
    ...     "next": {"task_id": torch.tensor([[3, 3, 1], [0, 0, 0]]),
    ...              "reward": torch.ones(2, 3, 1), "done": done.unsqueeze(-1)},
    ... }, batch_size=[2, 3])
    >>> tracker = EpisodeTracker()
    >>> fb = tracker(batch)
    >>> fb["task"], fb["return"], fb["length"], fb["env_id"]
    (tensor([3]), tensor([2.]), tensor([2]), tensor([0]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

from currlearn.metrics import REDUCTIONS, StepMetric

__all__ = ["EpisodeTracker", "episode_feedback"]


def episode_feedback(
    task: Tensor,
    episode_return: Tensor,
    length: Tensor | None = None,
    success: Tensor | None = None,
    env_id: Tensor | None = None,
    **extra: Tensor,
) -> TensorDict:
    """Build a feedback TensorDict by hand (for custom loops and tests).

    Args:
        task (Tensor): shape ``[n, *task_shape]``.
        episode_return (Tensor): shape ``[n]``.
        length (Tensor, optional): shape ``[n]``; default ones.
        success (Tensor, optional): shape ``[n]``, 0/1 or bool; default NaN (unknown).
        env_id (Tensor, optional): shape ``[n]``.
        **extra: further per-episode tensors of shape ``[n]`` (e.g. ``metric``, PLR scores).

    Examples:
        >>> import torch
        >>> episode_feedback(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))["success"]
        tensor([nan, nan])
    """
    n = episode_return.shape[0]
    ret = episode_return.to(torch.get_default_dtype()) if not episode_return.is_floating_point() else episode_return
    data = {
        "task": task,
        "return": ret,
        "length": torch.ones(n, dtype=torch.int64, device=ret.device) if length is None else length,
        "success": torch.full_like(ret, float("nan")) if success is None else success.to(ret.dtype),
        **extra,
    }
    if env_id is not None:
        data["env_id"] = env_id
    return TensorDict(data, batch_size=[n], device=ret.device)


class EpisodeTracker:
    """Per-episode statistics from ``[*envs, time]`` batches, carrying unfinished episodes.

    Args:
        task_key (NestedKey): task of each transition, read at the done step. Default
            ``("next", "task_id")``, which holds the finished episode's task even when the
            env auto-resets and when a refresh changed the task at the root mid-batch.
        reward_key (NestedKey): default ``("next", "reward")``.
        done_key (NestedKey): default ``("next", "done")`` (terminated or truncated).
        success_key (NestedKey): per-step success flag; an episode succeeded if any of its
            steps did. When the batch has no such key, success is NaN. Default
            ``("next", "success")``.
        step_metric (callable, optional): ``batch -> Tensor [envs, time]``, a per-step value
            reduced over each episode into the ``"metric"`` entry (e.g. a custom success
            measure from ``(done, reward, transition)``); a
            :class:`~currlearn.metrics.StepMetric` brings its own reduction. The callable
            gets the batch as the tracker sees it, with the env dims flattened to one (a
            ``[time]`` batch as ``[1, time]``), and must return that shape (or with a
            trailing singleton dim); bool values count as 0/1.
        metric_reduction (str, optional): how ``step_metric`` reduces over an episode:
            ``"sum"``, ``"mean"``, ``"max"`` or ``"last"`` (the value at the done step).
            Default: the :class:`~currlearn.metrics.StepMetric`'s reduction, else ``"sum"``.
        mean_keys (mapping, optional): output name -> per-step key or callable, averaged over
            each episode (e.g. PLR scores such as ``{"score": "advantage"}`` for mean GAE).
        env_id_key (NestedKey, optional): per-step global env id (written by a
            ``CurriculumTransform`` with ``env_id_key``). Given, ``env_id`` is read from it and
            the episodes still running are carried per id, so batches that hold different envs
            in turn (``MultiAsyncCollector``: one worker's envs per batch) continue the right
            episodes. Default: the batch row is the env.
        version_key (NestedKey, optional): per-step decision version (a ``CurriculumTransform``
            with ``version_key``); given, each episode's ``decision_version`` (at its done step)
            is in the feedback.

    Without ``env_id_key``, the tracker's carry has one row per env and is created on the first
    call; a later batch with another number of envs raises.
    """

    def __init__(
        self,
        task_key: NestedKey = ("next", "task_id"),
        reward_key: NestedKey = ("next", "reward"),
        done_key: NestedKey = ("next", "done"),
        success_key: NestedKey = ("next", "success"),
        step_metric: Callable[[TensorDictBase], Tensor] | None = None,
        mean_keys: Mapping[str, NestedKey | Callable[[TensorDictBase], Tensor]] | None = None,
        metric_reduction: str | None = None,
        env_id_key: NestedKey | None = None,
        version_key: NestedKey | None = None,
    ) -> None:
        if step_metric is not None and not callable(step_metric):
            raise TypeError(
                "step_metric must be None or a callable batch -> Tensor [envs, time], "
                f"got {type(step_metric).__name__}."
            )
        own = getattr(step_metric, "reduction", None) if isinstance(step_metric, StepMetric) else None
        if metric_reduction is None:
            metric_reduction = own or "sum"
        elif metric_reduction not in REDUCTIONS:
            raise ValueError(f"metric_reduction={metric_reduction!r} is not one of {list(REDUCTIONS)}.")
        elif own is not None and own != metric_reduction:
            raise ValueError(
                f"metric_reduction={metric_reduction!r} contradicts step_metric={step_metric!r}; give one of them."
            )
        self.metric_reduction = metric_reduction
        self.task_key = task_key
        self.reward_key = reward_key
        self.done_key = done_key
        self.success_key = success_key
        self.step_metric = step_metric
        self.mean_keys = dict(mean_keys or {})
        self.env_id_key = env_id_key
        self.version_key = version_key
        self._carry: Tensor | None = None  # [num_envs, channels]
        self._carry_max: Tensor | None = None  # [num_envs], for metric_reduction="max"

    def reset(self) -> None:
        """Forget unfinished episodes (e.g. after the envs were reset by hand)."""
        self._carry = None
        self._carry_max = None

    def state_dict(self) -> dict[str, Tensor | None]:
        """The sums of the episodes still running (one row per env), for an exact resume."""
        return {
            "carry": None if self._carry is None else self._carry.clone(),
            "carry_max": None if self._carry_max is None else self._carry_max.clone(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Tensor | None]) -> None:
        """Continue the episodes of :meth:`state_dict` (copied, not aliased).

        Raises:
            ValueError: not a tracker's state.
        """
        if not isinstance(state_dict, Mapping) or "carry" not in state_dict:
            raise ValueError(f"not an EpisodeTracker state (no 'carry' key): {state_dict!r:.80}")
        carry, carry_max = state_dict["carry"], state_dict.get("carry_max")
        self._carry = None if carry is None else carry.clone()
        self._carry_max = None if carry_max is None else carry_max.clone()

    def _carry_rows(self, ids: Tensor, channels: int, dtype: torch.dtype, device: torch.device) -> None:
        """Make the per-id carry hold rows for every id in ``ids`` (grown with zeros)."""
        if ids.numel() and bool((ids < 0).any()):
            raise ValueError(f"env_id_key: env ids must be >= 0, got {ids[ids < 0].unique()[:5].tolist()}.")
        need = int(ids.max()) + 1 if ids.numel() else 0
        have = 0 if self._carry is None else self._carry.shape[0]
        if self._carry is not None and self._carry.shape[1] != channels:
            raise ValueError(
                f"batch has {channels} statistics, but the tracker carries {self._carry.shape[1]}; call reset()."
            )
        if need > have:
            grown = torch.zeros(need, channels, dtype=dtype, device=device)
            grown_max = torch.full((need,), -torch.inf, dtype=dtype, device=device)
            if self._carry is not None:
                grown[:have] = self._carry.to(device)
            if self._carry_max is not None:
                grown_max[:have] = self._carry_max.to(device)
            self._carry, self._carry_max = grown, grown_max
        else:
            self._carry = self._carry.to(device)
            if self._carry_max is None:
                self._carry_max = torch.full((have,), -torch.inf, dtype=dtype, device=device)
            self._carry_max = self._carry_max.to(device)

    def _per_step(
        self, batch: TensorDictBase, key: NestedKey | Callable[[TensorDictBase], Tensor], name: str
    ) -> Tensor:
        if callable(key):
            value = key(batch)
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"{name} must return a Tensor of shape {list(batch.shape)}, got {type(value).__name__}."
                )
            extra = value.shape[batch.batch_dims :]
            if value.shape[: batch.batch_dims] != batch.shape or any(d != 1 for d in extra):
                raise ValueError(
                    f"{name} returned shape {list(value.shape)}; it must return one value per step, "
                    f"shape {list(batch.shape)} (the batch's [envs, time]) or {[*batch.shape, 1]}."
                )
        else:
            if key not in batch.keys(True):
                raise KeyError(
                    f"{name}: the batch has no key {key!r}; its keys are {sorted(map(str, batch.keys(True, True)))}."
                )
            value = batch.get(key)
        if value.shape != batch.shape:
            value = value.reshape(batch.shape)
        return value

    def __call__(self, batch: TensorDictBase) -> TensorDict:
        """Feedback for the episodes that finished in ``batch``.

        Args:
            batch (TensorDict): batch size ``[*envs, time]`` (time last, as TorchRL
                collectors return it); ``[time]`` for a single env.

        Returns:
            TensorDict with batch size ``[num_finished]`` and keys ``task``, ``return``,
            ``length``, ``success``, ``env_id`` (row of the flattened env dims), ``metric``
            when ``step_metric`` is set (reduced by ``metric_reduction``), and one key per
            ``mean_keys`` entry.

        Raises:
            KeyError: a key the batch lacks.
            TypeError, ValueError: a callable (``step_metric``, ``mean_keys``) that returns
                no Tensor, or not one value per step.
        """
        if batch.batch_dims == 1:
            batch = batch.unsqueeze(0)
        if batch.batch_dims > 2:
            batch = batch.reshape(-1, batch.shape[-1])
        num_envs, horizon = batch.shape
        device = batch.device if batch.device is not None else batch.get(self.reward_key).device
        dtype = torch.get_default_dtype()

        if self.task_key not in batch.keys(True):
            raise KeyError(f"task_key: the batch has no key {self.task_key!r}; is the CurriculumTransform on the env?")
        done = self._per_step(batch, self.done_key, "done_key").bool()
        channels = [
            self._per_step(batch, self.reward_key, "reward_key").to(dtype),
            torch.ones(num_envs, horizon, dtype=dtype, device=device),
        ]
        has_success = self.success_key in batch.keys(True)
        if has_success:
            channels.append(self._per_step(batch, self.success_key, "success_key").to(dtype))
        metric_steps = None
        if self.step_metric is not None:
            metric_steps = self._per_step(batch, self.step_metric, "step_metric").to(dtype)
            if self.metric_reduction in ("sum", "mean"):
                channels.append(metric_steps)
        for name, key in self.mean_keys.items():
            channels.append(self._per_step(batch, key, f"mean_keys[{name!r}]").to(dtype))
        values = torch.stack(channels, -1)  # [E, T, C]
        num_channels = values.shape[-1]

        # Episode segment of each step inside its row: number of dones strictly before it.
        done_i = done.to(torch.int64)
        seg_in_row = torch.cumsum(done_i, 1) - done_i
        rows = torch.arange(num_envs, device=device).unsqueeze(1)
        seg = rows * (horizon + 1) + seg_in_row  # [E, T]
        sums = torch.zeros(num_envs * (horizon + 1), num_channels, dtype=dtype, device=device)
        sums.index_add_(0, seg.reshape(-1), values.reshape(-1, num_channels))

        first = torch.arange(num_envs, device=device) * (horizon + 1)
        open_seg = first + done_i.sum(1)  # the segment still running at the end of each row
        ids = None
        if self.env_id_key is not None:
            ids = self._per_step(batch, self.env_id_key, "env_id_key")[:, 0].to(device, torch.int64)
            self._carry_rows(ids, num_channels, dtype, device)
            sums[first] += self._carry[ids]
            self._carry[ids] = sums[open_seg]
        else:
            if self._carry is not None:
                if self._carry.shape != (num_envs, num_channels):
                    raise ValueError(
                        f"batch has {num_envs} envs and {num_channels} statistics, but the tracker carries "
                        f"{tuple(self._carry.shape)} from the previous batch; call reset() when the envs change."
                    )
                sums[first] += self._carry.to(device)
            self._carry = sums[open_seg]

        ends = seg[done]  # segments that finished, in row-major order
        fin = sums[ends]
        if metric_steps is not None and self.metric_reduction == "max":
            maxes = torch.full((num_envs * (horizon + 1),), -torch.inf, dtype=dtype, device=device)
            maxes.scatter_reduce_(0, seg.reshape(-1), metric_steps.reshape(-1), "amax")
            if ids is not None:
                maxes[first] = torch.maximum(maxes[first], self._carry_max[ids])
                self._carry_max[ids] = maxes[open_seg]
            else:
                if self._carry_max is not None:
                    maxes[first] = torch.maximum(maxes[first], self._carry_max.to(device))
                self._carry_max = maxes[open_seg]
        task = batch.get(self.task_key)[done]
        out = {
            "task": task,
            "return": fin[:, 0],
            "length": fin[:, 1].round().to(torch.int64),
            "success": (fin[:, 2] > 0).to(dtype) if has_success else torch.full_like(fin[:, 0], float("nan")),
            "env_id": (rows if ids is None else ids.unsqueeze(1)).expand(num_envs, horizon)[done],
        }
        if self.version_key is not None:
            out["decision_version"] = self._per_step(batch, self.version_key, "version_key")[done].to(torch.int64)
        c = 3 if has_success else 2
        if metric_steps is not None:
            if self.metric_reduction == "last":
                out["metric"] = metric_steps[done]
            elif self.metric_reduction == "max":
                out["metric"] = maxes[ends]
            else:
                out["metric"] = fin[:, c] / (fin[:, 1] if self.metric_reduction == "mean" else 1)
                c += 1
        for name in self.mean_keys:
            out[name] = fin[:, c] / fin[:, 1]
            c += 1
        return TensorDict(out, batch_size=[ends.numel()], device=device)
