"""Easy-first and competence-based sampling over per-item difficulty.

Each item (a discrete task: a level, a prompt, a puzzle) has a difficulty estimate: an
exponential moving average (EMA) of the reward it gave. Items are grouped into ``num_bins``
difficulty bins by quantile of that estimate (bin 0 = the easiest, highest-reward items;
items with equal estimates share a bin), and a distribution over bins decides what is played:

- :class:`EasyFirstCurriculum`: bin weights ``exp(-s d_b / T)`` with ``d_b = b / (B - 1)`` the
  bin's relative difficulty, ``T`` the temperature and ``s`` an annealing strength that goes
  linearly from 1 to 0 over ``anneal_iterations``: easy-biased first, uniform at the end.
- :class:`CompetenceCurriculum` (Platanios et al. 2019, "Competence-based Curriculum Learning
  for Neural Machine Translation", https://arxiv.org/abs/1903.09848): a competence ``c(t)``
  grows from ``initial_competence`` to 1 over ``anneal_iterations`` (square-root or linear
  schedule, the paper's two) and the items whose difficulty quantile is below ``c(t)`` are
  sampled; the frontier is softened by the temperature: bin weights
  ``sigmoid((c(t) - q_b) / T)`` with ``q_b = b / B`` the bin's lowest quantile.

The probability of an item is proportional to its bin's weight (so with equal bin weights
sampling is uniform over items). The state is the items' EMAs. The curricula keep the items
sorted by it (ties by item id) as one array of distinct int64 keys that encode both
(:func:`~currlearn.functional.rank_codes`): an update of ``k`` items finds their old slots by
binary search and merges them back in, a few sequential passes over the array and no sort of
all items; a draw picks a bin (``num_bins`` values) and a uniform position inside the bin's
slice of the array, and decodes the item from the key there. No per-item dictionary, no Python
loop over items.

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> from currlearn.spaces import DiscreteSpace
    >>> cur = EasyFirstCurriculum(DiscreteSpace(num_tasks=4), num_bins=2, temperature=1.0,
    ...                           anneal_iterations=10, smoothing=1.0, seed=0)
    >>> cur.update(episode_feedback(torch.arange(4), torch.tensor([1.0, 0.0, 0.9, 0.1])))
    >>> cur.bins()  # tasks 0 and 2 gave more reward: the easy bin
    tensor([0, 1, 0, 1])
    >>> cur.weights()  # bin weights 1 and exp(-1)
    tensor([0.3655, 0.1345, 0.3655, 0.1345])
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn import functional as F
from currlearn.base import (
    DiscreteCurriculum,
    check_choice,
    check_finite,
    check_positive_int,
    check_probability,
)
from currlearn.metrics import MetricLike
from currlearn.sorted_keys import SortedKeys
from currlearn.spaces import TaskSpace

__all__ = ["CompetenceCurriculum", "EasyFirstCurriculum"]


class _DifficultyCurriculum(DiscreteCurriculum):
    """Shared state and sampling of the difficulty-binned curricula; subclasses give ``bin_weights``."""

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_bins: int,
        temperature: float,
        anneal_iterations: int,
        metric: str,
        smoothing: float,
        initial_value: float | None,
        num_envs: int | None,
        seed: int | None,
        device: torch.device | str | None,
    ) -> None:
        self.num_bins = check_positive_int("num_bins", num_bins)
        self.temperature = check_finite("temperature", temperature)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.anneal_iterations = check_positive_int("anneal_iterations", anneal_iterations)
        self._set_metric(metric)
        self.smoothing = check_probability("smoothing", smoothing, open_low=True)
        self.initial_value = None if initial_value is None else check_finite("initial_value", initial_value)
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        n = space.num_tasks
        # never played: the largest finite value (the easiest; the state stays finite)
        start = torch.finfo(torch.get_default_dtype()).max if initial_value is None else float(initial_value)
        self.state = TensorDict(
            {"value": torch.full((n,), start), "count": torch.zeros(n, dtype=torch.int64)},
            device=self.device,
        )
        self._on_load()

    # states of earlier versions also hold the sorted order, rebuilt from the values on load
    _old_state_keys = ("order",)

    # ------------------------------------------------------------------ sorted keys
    def _keys_of(self, values: Tensor, ids: Tensor) -> Tensor:
        """Ascending keys: easiest (highest value) first, ties by the lower id; distinct."""
        return -F.rank_codes(values, ids)

    @staticmethod
    def _ids_of(keys: Tensor) -> Tensor:
        """The items that ``keys`` encode."""
        return 0x7FFFFFFF - ((-keys) & 0xFFFFFFFF)

    def _sort_keys(self) -> None:
        """All keys from the values: one sort, ``O(n log n)`` (construction, load)."""
        n = self.space.num_tasks
        keys = torch.sort(self._keys_of(self.state["value"], torch.arange(n, device=self.device))).values
        self._keys = SortedKeys(keys)

    def _merge_keys(self, ids: Tensor, old_values: Tensor, new_values: Tensor) -> None:
        """Move the distinct items ``ids`` from their old keys to their new ones."""
        self._keys.replace(self._keys_of(old_values, ids), self._keys_of(new_values, ids))

    # ------------------------------------------------------------------ bins
    def _progress(self) -> Tensor:
        """Training progress ``t / anneal_iterations`` clamped to [0, 1] (scalar tensor)."""
        t = self.counters["iteration"].to(torch.float64)
        return (t / self.anneal_iterations).clamp(0, 1)

    def bin_weights(self) -> Tensor:
        """Weight of one item of each bin, shape ``[num_bins]`` (bin 0 = easiest)."""
        raise NotImplementedError

    def _bounds(self) -> tuple[Tensor, Tensor]:
        """Start and size of each bin's slice of the sorted items, shapes ``[num_bins]``."""
        n = self.space.num_tasks
        b = self.num_bins
        cut = torch.arange(1, b, device=self.device) * n // b  # positional quantile boundaries
        # Bin j - 1 ends after the last item whose value is >= that of the item just before the
        # boundary: without ties exactly at the boundary; a tie class goes to the easier bin.
        # (A key's high half orders the values; the lowest key of a value has a zero low half.)
        edge = (-self._keys.select((cut - 1).clamp_min(0))) >> 32
        ends = self._keys.rank(-(edge << 32)) * (cut > 0)
        zero = torch.zeros(1, dtype=torch.int64, device=self.device)
        full = torch.full((1,), n, dtype=torch.int64, device=self.device)
        starts = torch.cat([zero, ends])
        return starts, torch.cat([ends, full]) - starts

    def bins(self) -> Tensor:
        """Difficulty bin of every item, shape ``[num_tasks]``, int64 (0 = easiest)."""
        starts, sizes = self._bounds()
        position = F.inverse_permutation(self._ids_of(self._keys.values()))
        return torch.searchsorted(starts + sizes, position, right=True).clamp_max(self.num_bins - 1)

    def _bin_distribution(self) -> Tensor:
        w = self.bin_weights().double() * self._sizes.double()
        total = w.sum()
        fallback = self._sizes.double() / self.space.num_tasks
        return torch.where(total > 0, w / total.clamp_min(1e-300), fallback)

    def _refresh(self) -> None:
        self._starts, self._sizes = self._bounds()
        self._bin_cdf = torch.cumsum(self._bin_distribution(), 0)

    def _on_load(self) -> None:
        self._sort_keys()
        self._refresh()

    def _on_step(self) -> None:
        self._bin_cdf = torch.cumsum(self._bin_distribution(), 0)

    # ------------------------------------------------------------------ distribution
    def _compute_weights(self) -> Tensor:
        p_bin = self._bin_distribution()
        per_item = p_bin / self._sizes.double().clamp_min(1)
        return per_item.index_select(0, self.bins()).to(torch.get_default_dtype())

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        u = torch.rand(2, num, generator=self.generator, device=self.device, dtype=torch.float64)
        b = F.sample_from_cdf(self._bin_cdf, u[0])
        start, size = self._starts.index_select(0, b), self._sizes.index_select(0, b)
        position = (start + (u[1] * size).long()).clamp_max(self.space.num_tasks - 1)
        return self._ids_of(self._keys.select(position))

    # ------------------------------------------------------------------ learning
    def _update(self, feedback: TensorDictBase) -> None:
        values, valid = self._metric_values(feedback, self.state["value"].dtype)
        ids, count, (total,) = self._group(feedback["task"], values, valid=valid)
        if ids.numel() == 0:
            return
        st = self.state
        played = st["count"].index_select(0, ids) > 0
        old = st["value"].index_select(0, ids)
        new = F.batch_ema(old, total / count, count, self.smoothing, played)
        st["value"].index_copy_(0, ids, new)
        st["count"].index_add_(0, ids, count.to(torch.int64))
        self._merge_keys(ids, old, new)
        self._refresh()

    def _metrics(self) -> dict[str, Tensor | float]:
        played = self.state["count"] > 0
        n = played.sum().clamp_min(1)
        out: dict[str, Tensor | float] = {
            "num_played": played.sum(),
            "value_mean": torch.where(played, self.state["value"].double(), 0.0).sum() / n,
            "progress": self._progress(),
        }
        p_bin = self._bin_distribution()
        out.update({f"bin{b}_prob": p_bin[b] for b in range(self.num_bins)})
        return out


class EasyFirstCurriculum(_DifficultyCurriculum):
    """Easy items first, annealed to uniform sampling over ``anneal_iterations`` iterations.

    Bin ``b`` (of ``B = num_bins``, 0 = easiest) has per-item weight
    ``exp(-s(t) * (b / (B - 1)) / temperature)`` with ``s(t) = max(0, 1 - t / anneal_iterations)``
    and ``t`` the number of :meth:`~currlearn.base.Curriculum.step` calls.

    Args:
        space (TaskSpace): a discrete space: the items.
        num_bins (int): difficulty bins (quantiles of the reward EMA), >= 1. Default 10.
        temperature (float): > 0; smaller is more easy-biased at the start. Default 0.1.
        anneal_iterations (int): iterations until sampling is uniform, >= 1. Default 1000.
        metric (str or callable): the per-episode reward: ``"return"`` (default), ``"success"``,
            a name given to :func:`~currlearn.metrics.register_metric`, or a callable ``batch ->
            Tensor [envs, time]`` of per-step values summed over each episode (see
            :mod:`currlearn.metrics`; :meth:`make_tracker` computes it). ``"metric"`` reads the
            entry of a tracker built with ``EpisodeTracker(step_metric=...)``. NaN values are
            counted and skipped.
        smoothing (float): EMA rate in (0, 1]. Default 0.1.
        initial_value (float, optional): the reward assumed for items never played. ``None``
            (default): they count as the easiest (each item is tried early).
        num_envs, seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        ValueError: ``num_bins < 1``, ``temperature <= 0``, ``anneal_iterations < 1``, unknown
            ``metric``, ``smoothing`` outside (0, 1].
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_bins: int = 10,
        temperature: float = 0.1,
        anneal_iterations: int = 1000,
        metric: MetricLike = "return",
        smoothing: float = 0.1,
        initial_value: float | None = None,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            space,
            num_bins=num_bins,
            temperature=temperature,
            anneal_iterations=anneal_iterations,
            metric=metric,
            smoothing=smoothing,
            initial_value=initial_value,
            num_envs=num_envs,
            seed=seed,
            device=device,
        )

    def bin_weights(self) -> Tensor:  # noqa: D102
        b = self.num_bins
        difficulty = torch.arange(b, device=self.device, dtype=torch.float64) / max(b - 1, 1)
        strength = 1 - self._progress()
        return torch.exp(-strength * difficulty / self.temperature)


class CompetenceCurriculum(_DifficultyCurriculum):
    """Competence-based curriculum (Platanios et al. 2019): items below a rising frontier.

    Competence ``c(t)`` (``c0 = initial_competence``, ``T = anneal_iterations``):
    ``"sqrt"``: ``min(1, sqrt(t (1 - c0^2) / T + c0^2))``; ``"linear"``:
    ``min(1, t (1 - c0) / T + c0)``. Bin ``b`` covers the difficulty quantiles
    ``[b / B, (b + 1) / B)``; its per-item weight is ``sigmoid((c(t) - b / B) / temperature)``:
    with a small temperature, the paper's "sample uniformly among the items with difficulty
    CDF <= c(t)"; larger temperatures reach past the frontier.

    Args:
        space (TaskSpace): a discrete space: the items.
        num_bins (int): difficulty bins, >= 1. Default 10.
        temperature (float): > 0, softness of the frontier. Default 0.02.
        anneal_iterations (int): iterations until full competence, >= 1. Default 1000.
        initial_competence (float): ``c0`` in (0, 1]. Default 0.01 (the paper).
        schedule (str): ``"sqrt"`` (default, the paper's best) or ``"linear"``.
        metric, smoothing, initial_value, num_envs, seed, device: as
            :class:`EasyFirstCurriculum`.

    Raises:
        ValueError: as :class:`EasyFirstCurriculum`, an unknown ``schedule``, or
            ``initial_competence`` outside (0, 1].
    """

    SCHEDULES = ("sqrt", "linear")

    def __init__(
        self,
        space: TaskSpace,
        *,
        num_bins: int = 10,
        temperature: float = 0.02,
        anneal_iterations: int = 1000,
        initial_competence: float = 0.01,
        schedule: Literal["sqrt", "linear"] = "sqrt",
        metric: MetricLike = "return",
        smoothing: float = 0.1,
        initial_value: float | None = None,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.schedule = check_choice("schedule", schedule, self.SCHEDULES)
        self.initial_competence = check_probability("initial_competence", initial_competence, open_low=True)
        super().__init__(
            space,
            num_bins=num_bins,
            temperature=temperature,
            anneal_iterations=anneal_iterations,
            metric=metric,
            smoothing=smoothing,
            initial_value=initial_value,
            num_envs=num_envs,
            seed=seed,
            device=device,
        )

    def competence(self) -> Tensor:
        """``c(t)`` in [initial_competence, 1] (scalar tensor, float64)."""
        progress = self._progress()
        c0 = self.initial_competence
        if self.schedule == "sqrt":
            return (progress * (1 - c0**2) + c0**2).sqrt().clamp_max(1)
        return (progress * (1 - c0) + c0).clamp_max(1)

    def bin_weights(self) -> Tensor:  # noqa: D102
        lowest_quantile = torch.arange(self.num_bins, device=self.device, dtype=torch.float64) / self.num_bins
        return torch.sigmoid((self.competence() - lowest_quantile) / self.temperature)

    def _metrics(self) -> dict[str, Tensor | float]:
        out = super()._metrics()
        out["competence"] = self.competence()
        return out
