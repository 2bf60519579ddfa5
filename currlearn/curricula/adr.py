"""Automatic Domain Randomization (ADR) over a box of parameters.

OpenAI et al. 2019, "Solving Rubik's Cube with a Robot Hand", https://arxiv.org/abs/1910.07113,
Section 5 and Algorithm 1. Each parameter ``i`` is sampled uniformly from a range
``[φ_i^L, φ_i^H]`` that starts as a single point and grows where the agent does well:

- with probability ``boundary_prob`` (the paper's ``p_b``) one dimension and one side are
  chosen uniformly and that parameter is pinned to the boundary value; the other parameters
  stay uniform in their ranges;
- the performance of an episode played at a boundary is appended to that boundary's buffer
  ``D_i^L`` or ``D_i^H``; when a buffer holds ``buffer_size`` (the paper's ``m``) entries, its
  mean ``P̄`` is compared with the thresholds: ``P̄ >= high_threshold`` widens the range by
  ``delta`` on that side, ``P̄ <= low_threshold`` narrows it, and the buffer is cleared.

Ranges stay inside the space's box; a narrowed range never inverts (it collapses to a point).

Which episodes were played at a boundary is read from the tasks themselves: an episode counts
for boundary ``(i, side)`` when its parameter ``i`` equals the boundary's current value exactly
(sampled boundary values are written unchanged into the env's parameters, and a uniform draw
hits a boundary with probability 0). No per-env bookkeeping is needed, so it works with any
collector; an episode whose boundary moved before it finished is not counted. For a dimension
whose range is still a point, every episode is at both of its boundaries, as it should be.

The buffers are per-boundary running sums and counts: a batch adds to them with one
``index_add_``; a buffer that passes ``buffer_size`` within a batch is evaluated on everything
it holds.

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> from currlearn.spaces import BoxSpace
    >>> adr = ADRCurriculum(BoxSpace({"mass": 0.5}, {"mass": 2.0}), initial={"mass": 1.0},
    ...                     delta=0.1, buffer_size=2, seed=0)
    >>> tasks = adr.sample(4)  # the range is the point 1.0
    >>> adr.update(episode_feedback(tasks, torch.ones(4), success=torch.ones(4)))
    >>> adr.low, adr.high  # both boundaries did well: widened by delta
    (tensor([0.9000]), tensor([1.1000]))
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum, check_finite, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import BoxSpace, TaskSpace

__all__ = ["ADRCurriculum"]


class ADRCurriculum(Curriculum):
    """Automatic Domain Randomization (OpenAI 2019) over a :class:`~currlearn.spaces.BoxSpace`.

    Args:
        space (BoxSpace): the outer limits of the parameters.
        initial (mapping, optional): the starting point ``{name: value}`` (inside the box);
            default the centre of the box.
        delta (float): step ``Δ`` by which a boundary moves, in the parameters' units.
            Default 0.05.
        deltas (mapping, optional): per-parameter steps ``{name: Δ}`` overriding ``delta``
            for the parameters it names.
        boundary_prob (float): ``p_b`` in [0, 1], the probability that a draw pins one
            parameter to a boundary. Default 0.5.
        buffer_size (int): ``m``, episodes per boundary before a decision. Default 20.
        low_threshold (float): ``t_L``: narrow when the boundary's mean performance is
            ``<= low_threshold``. Default 0.2.
        high_threshold (float): ``t_H > t_L``: widen when it is ``>= high_threshold``.
            Default 0.8.
        metric (str or callable): performance per episode: ``"success"`` (default),
            ``"return"``, a name given to :func:`~currlearn.metrics.register_metric`, or a
            callable ``batch -> Tensor [envs, time]`` of per-step values summed over each
            episode (see :mod:`currlearn.metrics`; :meth:`make_tracker` computes it).
            ``"metric"`` reads the entry of a tracker built with
            ``EpisodeTracker(step_metric=...)``. NaN values are counted and skipped.
        seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        TypeError: a space that is not a BoxSpace.
        ValueError: ``initial`` outside the box or naming unknown parameters, ``delta <= 0``,
            ``low_threshold >= high_threshold``, a bad probability or size, unknown ``metric``.
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        initial: Mapping[str, float] | None = None,
        delta: float = 0.05,
        deltas: Mapping[str, float] | None = None,
        boundary_prob: float = 0.5,
        buffer_size: int = 20,
        low_threshold: float = 0.2,
        high_threshold: float = 0.8,
        metric: MetricLike = "success",
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(space, BoxSpace):
            raise TypeError(f"ADRCurriculum needs a BoxSpace (continuous parameters), got {space!r}.")
        self.boundary_prob = check_probability("boundary_prob", boundary_prob)
        self.buffer_size = check_positive_int("buffer_size", buffer_size)
        self.low_threshold = check_finite("low_threshold", low_threshold)
        self.high_threshold = check_finite("high_threshold", high_threshold)
        if self.low_threshold >= self.high_threshold:
            raise ValueError(
                f"low_threshold={low_threshold!r} must be < high_threshold={high_threshold!r}, "
                "or a boundary would both widen and narrow."
            )
        self._set_metric(metric)
        names = list(space.names)
        if check_finite("delta", delta) <= 0:
            raise ValueError(f"delta must be > 0, got {delta!r}.")
        steps = [float(delta)] * len(names)
        if deltas is not None:
            space.check_names(list(deltas), "deltas")
            for i, n in enumerate(names):
                if n in deltas:
                    steps[i] = check_finite(f"deltas[{n!r}]", deltas[n])
                    if steps[i] <= 0:
                        raise ValueError(f"deltas[{n!r}] must be > 0, got {deltas[n]!r}.")
        start = [(lo + hi) / 2 for lo, hi in zip(space.low.tolist(), space.high.tolist(), strict=True)]
        if initial is not None:
            space.check_names(list(initial), "initial")
            for i, n in enumerate(names):
                if n in initial:
                    v = check_finite(f"initial[{n!r}]", initial[n])
                    lo, hi = float(space.low[i]), float(space.high[i])
                    if not lo <= v <= hi:
                        raise ValueError(f"initial[{n!r}]={v} is outside the box [{lo}, {hi}].")
                    start[i] = v
        self.initial = None if initial is None else dict(initial)
        self.delta = float(delta)
        self.deltas = None if deltas is None else dict(deltas)
        super().__init__(space, seed=seed, device=device)
        d = space.dim
        point = torch.tensor(start, dtype=space.low.dtype)
        self._delta = torch.tensor(steps, dtype=space.low.dtype, device=self.device)
        self.state = TensorDict(
            {
                "low": point.clone(),
                "high": point.clone(),
                "sums": torch.zeros(2 * d),  # boundary j = 2 i (low side), 2 i + 1 (high side)
                "counts": torch.zeros(2 * d, dtype=torch.int64),
                "widened": torch.zeros((), dtype=torch.int64),
                "narrowed": torch.zeros((), dtype=torch.int64),
            },
            device=self.device,
        )

    def _on_load(self) -> None:
        self._delta = self._delta.to(self.device)

    @property
    def low(self) -> Tensor:
        """Current lower boundaries ``φ^L``, shape ``[dim]``."""
        return self.state["low"]

    @property
    def high(self) -> Tensor:
        """Current upper boundaries ``φ^H``, shape ``[dim]``."""
        return self.state["high"]

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        d = self.space.dim
        g = self.generator
        low, high = self.state["low"], self.state["high"]
        u = torch.rand(num, d, generator=g, device=self.device, dtype=low.dtype)
        tasks = low + u * (high - low)
        pin = torch.rand(num, generator=g, device=self.device) < self.boundary_prob
        boundary = torch.randint(2 * d, (num,), generator=g, device=self.device)  # dim * 2 + side
        dim, side = boundary // 2, boundary % 2
        value = torch.where(side == 1, high.index_select(0, dim), low.index_select(0, dim))
        rows = torch.arange(num, device=self.device)
        current = tasks[rows, dim]
        tasks[rows, dim] = torch.where(pin, value, current)
        return tasks

    def _update(self, feedback: TensorDictBase) -> None:
        st = self.state
        perf, valid = self._metric_values(feedback, st["sums"].dtype)
        tasks = feedback["task"].to(st["low"].dtype)  # [n, d]
        bounds = torch.stack([st["low"], st["high"]], -1).reshape(-1)  # [2d]: low0, high0, low1, ...
        at = (tasks.repeat_interleave(2, dim=1) == bounds) & valid.unsqueeze(-1)  # [n, 2d]
        st["sums"] += (at * torch.where(valid, perf, 0.0).unsqueeze(-1)).sum(0)
        st["counts"] += at.sum(0)
        full = st["counts"] >= self.buffer_size
        mean = st["sums"] / st["counts"].clamp_min(1)
        move = (full & (mean >= self.high_threshold)).to(st["low"].dtype) - (full & (mean <= self.low_threshold)).to(
            st["low"].dtype
        )
        move = move.reshape(-1, 2) * self._delta.unsqueeze(-1)  # [d, (low, high)]: +1 widen, -1 narrow
        box: BoxSpace = self.space  # type: ignore[assignment]
        new_low = torch.maximum(st["low"] - move[:, 0], box.low)
        new_high = torch.minimum(st["high"] + move[:, 1], box.high)
        # A narrowing step never inverts the range: it stops at the other boundary.
        new_low = torch.minimum(new_low, st["high"])
        new_high = torch.maximum(new_high, new_low)
        st["widened"] += (move > 0).sum()
        st["narrowed"] += (move < 0).sum()
        st["low"].copy_(new_low)
        st["high"].copy_(new_high)
        st["sums"].masked_fill_(full, 0.0)
        st["counts"].masked_fill_(full, 0)

    def entropy(self) -> Tensor:
        """ADR entropy: mean over parameters of ``log(φ^H - φ^L)`` (nats; -inf for a point)."""
        return torch.log(self.state["high"] - self.state["low"]).mean()

    def _metrics(self) -> dict[str, Tensor | float]:
        out: dict[str, Tensor | float] = {
            "range_width_mean": (self.state["high"] - self.state["low"]).mean(),
            "widened": self.state["widened"],
            "narrowed": self.state["narrowed"],
        }
        for i, name in enumerate(self.space.names):
            out[f"param/{name}_low"] = self.state["low"][i]
            out[f"param/{name}_high"] = self.state["high"][i]
        return out
