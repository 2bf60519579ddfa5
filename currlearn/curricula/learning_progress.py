"""Learning-progress and learnability curricula over discrete tasks.

- :class:`LearningProgressCurriculum`: fast and slow moving averages of each task's success
  rate; tasks whose success is *changing* (in either direction) are sampled most (Kanitscheider
  et al. 2021, "Multi-task curriculum learning in a complex, visual, hard-exploration domain:
  Minecraft", https://arxiv.org/abs/2106.14876).
- :class:`LearnabilityCurriculum`: tasks with success rate ``p`` near 1/2 are sampled most,
  by learnability ``p (1 - p)`` (Rutherford et al. 2024, "No Regrets: Investigating and
  Improving Regret Approximations for Curriculum Discovery", https://arxiv.org/abs/2408.15099,
  "Sampling For Learnability").

Both keep per-task tensors (``[num_tasks]``) and update them with one scatter per batch. Their
draws cost ``O(draws)``, whatever the number of tasks: learning progress keeps the sums of its
progress values (so the z-score's mean and spread are ``O(1)`` per update) and draws by rejection
(a uniformly proposed task is kept with probability ``sigmoid(z)``); learnability keeps its
top-``k`` set per update (:func:`~currlearn.functional.update_top_candidates`) and draws from it
uniformly. ``sampling="proportional"`` recomputes a cumulative distribution per update.

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> from currlearn.spaces import DiscreteSpace
    >>> cur = LearnabilityCurriculum(DiscreteSpace(num_tasks=3), sampling="proportional",
    ...                              learnable_prob=1.0, smoothing=1.0, seed=0)
    >>> fb = episode_feedback(torch.tensor([0, 1, 1, 2]), torch.zeros(4),
    ...                       success=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    >>> cur.update(fb)
    >>> cur.weights()  # only task 1 (p = 0.5) is learnable
    tensor([0., 1., 0.])
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn import functional as F
from currlearn.base import DiscreteCurriculum, check_choice, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import TaskSpace

__all__ = ["LearnabilityCurriculum", "LearningProgressCurriculum"]


class _CachedCDFCurriculum(DiscreteCurriculum):
    """A distribution whose CDF is recomputed once per update (``_refresh``), not per sample."""

    _cdf: Tensor

    def _refresh(self) -> None:
        self._cdf = torch.cumsum(self._compute_weights().double(), 0)

    def _on_load(self) -> None:
        self._refresh()

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        u = torch.rand(num, generator=self.generator, device=self.device, dtype=torch.float64)
        return F.sample_from_cdf(self._cdf, u)


class LearningProgressCurriculum(_CachedCDFCurriculum):
    """Sample tasks by absolute learning progress ``|f(p_fast) - f(p_slow)|``.

    Per task, the success rate is tracked by a fast EMA ``p_fast`` (rate ``fast_rate``) and a
    slow EMA ``p_slow`` (rate ``slow_rate``) that follows the fast one, as in Syllabus's
    implementation of the paper (``syllabus.curricula.LearningProgress``). Before differencing, both go through the paper's reweighting
    ``f(p) = (1 - θ) p / (p + θ (1 - 2 p))`` (``θ = reweight_theta``; ``θ = 0.5`` is the
    identity), which magnifies progress on tasks with low success. The progress values are
    normalised across tasks: z-score over the tasks played so far, then a sigmoid, then
    divided by their sum; tasks never played get z = 0 (average progress). A share
    ``uniform_share`` of the mass is spread uniformly over all tasks.

    Batched updates: ``k`` episodes of a task in one batch move the EMAs as ``k`` updates with
    their mean (:func:`currlearn.functional.batch_ema`); the slow EMA then follows the new fast
    value. The first batch of a task initialises both EMAs with its mean.

    Args:
        space (TaskSpace): a discrete space.
        metric (str or callable): per-episode value in [0, 1]: ``"success"`` (default),
            ``"return"``, a name given to :func:`~currlearn.metrics.register_metric`, or a
            callable ``batch -> Tensor [envs, time]`` of per-step values summed over each
            episode (see :mod:`currlearn.metrics`; :meth:`make_tracker` computes it).
            ``"metric"`` reads the entry of a tracker built with
            ``EpisodeTracker(step_metric=...)``. You keep a user metric in [0, 1]. NaN values
            are counted and skipped.
        fast_rate (float): rate of the fast EMA in (0, 1]. Default 0.1.
        slow_rate (float): rate of the slow EMA in (0, 1], applied to the fast EMA. Default 0.1.
        reweight_theta (float): θ of the reweighting in (0, 1). Default 0.1 (the paper). The
            reweighting reads the EMAs clamped into [0, 1].
        uniform_share (float): probability mass spread uniformly, in [0, 1]. Default 0.
        num_envs, seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        ValueError: unknown ``metric``; rates outside (0, 1]; ``reweight_theta`` outside (0, 1);
            ``uniform_share`` outside [0, 1].
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        metric: MetricLike = "success",
        fast_rate: float = 0.1,
        slow_rate: float = 0.1,
        reweight_theta: float = 0.1,
        uniform_share: float = 0.0,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self._set_metric(metric)
        self.fast_rate = check_probability("fast_rate", fast_rate, open_low=True)
        self.slow_rate = check_probability("slow_rate", slow_rate, open_low=True)
        self.reweight_theta = check_probability("reweight_theta", reweight_theta, open_low=True)
        if self.reweight_theta >= 1:
            raise ValueError(f"reweight_theta must lie in (0, 1) (0.5 = no reweighting), got {reweight_theta!r}.")
        self.uniform_share = check_probability("uniform_share", uniform_share)
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        n = space.num_tasks
        self.state = TensorDict(
            {
                "p_fast": torch.zeros(n),
                "p_slow": torch.zeros(n),
                "count": torch.zeros(n, dtype=torch.int64),
                # sums of the progress and of its square over the tasks, then their compensations
                # (float64, Kahan-summed per update: no drift over a long run)
                "progress_sums": torch.zeros(4, dtype=torch.float64),
            },
            device=self.device,
        )
        self._refresh()

    _new_state_keys = ("progress_sums",)

    def _fill_new_state(self, keys: set[str]) -> None:
        lp = self._lp.double()
        self.state["progress_sums"].copy_(
            torch.stack([lp.sum(), lp.square().sum(), lp.new_zeros(()), lp.new_zeros(())])
        )
        self._stats = self._z_stats()

    def _reweight(self, p: Tensor) -> Tensor:
        """``f(p)``, with ``p`` clamped into [0, 1]: the denominator is then at least
        ``min(θ, 1 - θ) > 0`` and ``f(p)`` lies in [0, 1], in any floating dtype."""
        theta = self.reweight_theta
        p = p.clamp(0.0, 1.0)
        return (1 - theta) * p / (p + theta * (1 - 2 * p))

    def learning_progress(self) -> Tensor:
        """``|f(p_fast) - f(p_slow)|`` per task, shape ``[num_tasks]`` (0 for tasks never played)."""
        st = self.state
        return self._progress(st["p_fast"], st["p_slow"])

    def _progress(self, fast: Tensor, slow: Tensor) -> Tensor:
        """``|f(fast) - f(slow)|``, elementwise."""
        return (self._reweight(fast) - self._reweight(slow)).abs_()

    @staticmethod
    def _exact_z_stats(lp: Tensor, played: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and spread (population std, 1 where it is 0) of the progress ``lp`` over the
        played tasks, float64 scalars: the z-score's shift and scale (two passes)."""
        num_played = played.sum().clamp_min(1)
        lp = lp.double()
        mean = (lp * played).sum() / num_played
        var = ((lp - mean) * played).square_().sum() / num_played
        std = var.sqrt()
        return mean, torch.where(std > 0, std, torch.ones_like(std))

    def _z_stats(self) -> tuple[Tensor, Tensor]:
        """:meth:`_exact_z_stats` from the kept sums, in ``O(1)``: the progress of tasks never
        played is 0, so the sums over all tasks are those over the played ones. Where the
        variance is not clear of the sums' precision (below ``1e-6`` of the mean square:
        near-equal progress values), it is computed in two passes instead."""
        if self.device.type != "cpu":  # two passes are cheap on a GPU, and need no sync to choose
            return self._exact_z_stats(self._lp, self._played)
        num_played = max(self._num_played, 1)
        s1, s2 = self.state["progress_sums"][:2].unbind()
        mean = s1 / num_played
        square = s2 / num_played
        var = square - mean * mean
        if not bool(var > 1e-6 * square):
            return self._exact_z_stats(self._lp, self._played)
        std = var.clamp_min(0).sqrt()
        return mean, torch.where(std > 0, std, torch.ones_like(std))

    def _task_weights(self, lp: Tensor, played: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """``sigmoid(z)`` of tasks' progress values ``lp`` (z = 0 for tasks never played), in (0, 1)."""
        return torch.sigmoid((lp.double() - mean) / std * played)

    def _compute_weights(self) -> Tensor:
        played = self.state["count"] > 0
        lp = self.learning_progress()  # in [0, 1]: its mean and spread stay in range
        w = self._task_weights(lp, played, *self._exact_z_stats(lp, played))
        p = w / w.sum()
        if self.uniform_share > 0:
            p = (1 - self.uniform_share) * p + self.uniform_share / p.numel()
        return p

    def _refresh(self) -> None:
        st = self.state
        self._lp = self.learning_progress()
        self._played = st["count"] > 0
        self._num_played = int(self._played.sum())
        self._stats = self._z_stats()
        if self.device.type != "cpu":  # a cumulative sum per update: draws without a sync
            self._cdf = torch.cumsum(self._compute_weights().double(), 0)

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        """Rejection sampling: a task proposed uniformly is kept with probability ``sigmoid(z)``
        (at most 1), which draws exactly from the progress distribution at ``O(num)`` cost
        whatever the number of tasks; ``sigmoid(z)`` averages about 1/2 over the tasks (z-scores
        have mean 0), so few rounds are needed. ``uniform_share`` of the draws are uniform. On
        other devices than the CPU (where a round's count would wait for the device), draws are
        inverse-cdf draws from a cumulative sum kept per update.
        """
        if self.device.type != "cpu":
            return super()._sample(num, env_ids)
        n, device, g = self.space.num_tasks, self.device, self.generator
        out: list[Tensor] = [torch.zeros(0, dtype=torch.int64, device=device)]
        need = num
        while need:
            m = 3 * need + 16
            u = torch.rand(2, m, generator=g, device=device, dtype=torch.float64)
            proposal = (u[0] * n).long().clamp_max_(n - 1)
            w = self._task_weights(
                self._lp.index_select(0, proposal), self._played.index_select(0, proposal), *self._stats
            )
            kept = proposal.masked_select(u[1] < w)
            out.append(kept[:need])
            need -= out[-1].numel()
        tasks = torch.cat(out)
        if self.uniform_share > 0:
            u = torch.rand(2, num, generator=g, device=device, dtype=torch.float64)
            tasks = torch.where(u[0] < self.uniform_share, (u[1] * n).long().clamp_max_(n - 1), tasks)
        return tasks

    def _update(self, feedback: TensorDictBase) -> None:
        values, valid = self._metric_values(feedback)
        ids, count, (total,) = self._group(feedback["task"], values, valid=valid)
        if ids.numel() == 0:
            return
        st = self.state
        mean = total / count
        played = st["count"].index_select(0, ids) > 0
        fast = F.batch_ema(st["p_fast"].index_select(0, ids), mean, count, self.fast_rate, played)
        slow = F.batch_ema(st["p_slow"].index_select(0, ids), fast, count, self.slow_rate, played)
        st["p_fast"].index_copy_(0, ids, fast)
        st["p_slow"].index_copy_(0, ids, slow)
        st["count"].index_add_(0, ids, count.to(torch.int64))
        fast, slow = st["p_fast"].index_select(0, ids), st["p_slow"].index_select(0, ids)  # as stored
        new_lp = self._progress(fast, slow)
        old_lp = self._lp.index_select(0, ids).double()
        self._lp.index_copy_(0, ids, new_lp)
        new_lp = new_lp.double()
        delta = torch.stack([(new_lp - old_lp).sum(), (new_lp.square() - old_lp.square()).sum()])
        sums = st["progress_sums"]  # Kahan summation: sums[:2] += delta, the rounding kept in sums[2:]
        y = delta - sums[2:]
        t = sums[:2] + y
        sums[2:].copy_((t - sums[:2]) - y)
        sums[:2].copy_(t)
        self._num_played += int((~played).sum())
        self._played.index_fill_(0, ids, True)
        self._stats = self._z_stats()
        if self.device.type != "cpu":
            self._cdf = torch.cumsum(self._compute_weights().double(), 0)

    def _metrics(self) -> dict[str, Tensor | float]:
        played = self.state["count"] > 0
        n = played.sum().clamp_min(1)
        return {
            "num_played": played.sum(),
            "learning_progress_mean": (self.learning_progress() * played).sum() / n,
            "success_fast_mean": (self.state["p_fast"].double() * played).sum() / n,
        }


class LearnabilityCurriculum(_CachedCDFCurriculum):
    """Sample for learnability ``p (1 - p)`` (Sampling For Learnability, Rutherford et al. 2024).

    ``p`` is each task's success rate (an EMA with rate ``smoothing`` of the per-episode
    metric). With probability ``learnable_prob`` a task is drawn from the learnable set, else
    uniformly from all tasks (SFL's mix of its buffer and fresh levels). The learnable set:

    - ``"topk"`` (SFL): the ``topk`` played tasks with the highest positive learnability,
      drawn uniformly;
    - ``"proportional"``: all played tasks, drawn with probability proportional to
      ``p (1 - p)``.

    When no task is learnable yet (no ``0 < p < 1``), every draw is uniform.

    Args:
        space (TaskSpace): a discrete space.
        metric (str or callable): per-episode value in [0, 1]; default ``"success"``. As
            for :class:`LearningProgressCurriculum`: also ``"return"``, a registered name or a
            callable ``batch -> Tensor [envs, time]`` (summed over each episode). NaN values
            are counted and skipped.
        sampling (str): ``"topk"`` (default) or ``"proportional"``.
        topk (int): size of the learnable set for ``"topk"``. Default 100.
        learnable_prob (float): probability of drawing from the learnable set, in [0, 1].
            Default 0.5.
        smoothing (float): EMA rate of ``p`` in (0, 1]; 1 keeps the latest batch mean.
            Default 0.1.
        num_envs, seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        ValueError: unknown ``metric`` or ``sampling`` (the message lists the valid names),
            ``topk < 1``, probabilities outside their range.
    """

    SAMPLINGS = ("topk", "proportional")

    def __init__(
        self,
        space: TaskSpace,
        *,
        metric: MetricLike = "success",
        sampling: Literal["topk", "proportional"] = "topk",
        topk: int = 100,
        learnable_prob: float = 0.5,
        smoothing: float = 0.1,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self._set_metric(metric)
        self.sampling = check_choice("sampling", sampling, self.SAMPLINGS)
        self.topk = check_positive_int("topk", topk)
        self.learnable_prob = check_probability("learnable_prob", learnable_prob)
        self.smoothing = check_probability("smoothing", smoothing, open_low=True)
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        n = space.num_tasks
        self.state = TensorDict(
            {"success": torch.zeros(n), "count": torch.zeros(n, dtype=torch.int64)},
            device=self.device,
        )
        self._refresh()

    def learnability(self) -> Tensor:
        """``p (1 - p)`` per played task (0 for tasks never played), shape ``[num_tasks]``; a
        ``p`` outside [0, 1] (a metric that is no success rate) counts as 0 or 1: not learnable."""
        return self._learnability_of(self.state["success"]) * (self.state["count"] > 0)

    @staticmethod
    def _learnability_of(p: Tensor) -> Tensor:
        """``q (1 - q)`` with ``q = p`` clamped into [0, 1], elementwise."""
        q = p.clamp(0.0, 1.0)
        return q * (1 - q)

    def _learnable_weights(self) -> Tensor:
        score = self.learnability()
        if self.sampling == "proportional":
            return score
        w = torch.zeros_like(score)
        return w.index_fill_(0, self._learnable_set(), 1.0)

    def _learnable_set(self) -> Tensor:
        """``"topk"``: the ids of the learnable set, the top-``topk`` tasks by learnability
        (ties: the lower id) that have a positive one."""
        top = self._top[: min(self.topk, self.space.num_tasks)]
        return top[: int((self._learn.index_select(0, top) > 0).sum())]

    def _rebuild_top(self) -> None:
        """The candidates for the top-``topk`` from all tasks (``O(num_tasks)``)."""
        self._top, self._top_bound = F.top_candidates(self._codes, self.topk, self._top_member)

    def _refresh(self) -> None:
        n = self.space.num_tasks
        self._learn = self.learnability()
        if self.sampling == "proportional":
            self._cdf = torch.cumsum(self._compute_weights().double(), 0)
            return
        # the top-k by learnability, kept per update (F.update_top_candidates)
        self._codes = F.rank_codes(self._learn, torch.arange(n, device=self.device))
        self._top_member = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._rebuild_top()
        self._set = self._learnable_set()

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        if self.sampling == "proportional":
            return super()._sample(num, env_ids)
        n, size = self.space.num_tasks, self._set.numel()
        u = torch.rand(2, num, generator=self.generator, device=self.device, dtype=torch.float64)
        uniform = (u[1] * n).long().clamp_max_(n - 1)
        if size == 0:  # nothing learnable yet: uniform
            return uniform
        # u[1] serves both branches: given the branch, it is uniform either way
        learnable = self._set.index_select(0, (u[1] * size).long().clamp_max_(size - 1))
        return torch.where(u[0] < self.learnable_prob, learnable, uniform)

    def _compute_weights(self) -> Tensor:
        w = self._learnable_weights().double()
        total = w.sum()
        uniform = torch.full_like(w, 1.0 / w.numel())
        mixed = self.learnable_prob * w / total.clamp_min(1e-300) + (1 - self.learnable_prob) * uniform
        return torch.where(total > 0, mixed, uniform).to(torch.get_default_dtype())

    def _update(self, feedback: TensorDictBase) -> None:
        values, valid = self._metric_values(feedback)
        ids, count, (total,) = self._group(feedback["task"], values, valid=valid)
        if ids.numel() == 0:
            return
        st = self.state
        played = st["count"].index_select(0, ids) > 0
        p = F.batch_ema(st["success"].index_select(0, ids), total / count, count, self.smoothing, played)
        st["success"].index_copy_(0, ids, p)
        st["count"].index_add_(0, ids, count.to(torch.int64))
        learn = self._learnability_of(st["success"].index_select(0, ids))  # as stored (all played)
        self._learn.index_copy_(0, ids, learn)
        if self.sampling == "proportional":
            self._cdf = torch.cumsum(self._compute_weights().double(), 0)
            return
        self._codes.index_copy_(0, ids, F.rank_codes(learn, ids))
        k = min(self.topk, self.space.num_tasks)
        self._top, self._top_bound, exact = F.update_top_candidates(
            self._top, self._top_bound, self._codes, ids, self._top_member, k
        )
        if not bool(exact):  # the spare candidates ran out: one full topk
            self._rebuild_top()
        self._set = self._learnable_set()

    def _metrics(self) -> dict[str, Tensor | float]:
        played = self.state["count"] > 0
        n = played.sum().clamp_min(1)
        learn = self.learnability()
        return {
            "num_played": played.sum(),
            "num_learnable": (learn > 0).sum(),
            "learnability_mean": learn.sum() / n,
            "success_mean": (self.state["success"].double() * played).sum() / n,
        }
