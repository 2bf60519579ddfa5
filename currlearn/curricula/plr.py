"""Prioritized Level Replay (PLR) and its robust variant (PLR⊥), on device tensors.

Prioritized Level Replay (Jiang, Grefenstette, Rocktäschel 2021,
https://arxiv.org/abs/2010.03934) replays the levels with the highest *learning potential*,
estimated from the agent's own rollouts (a score per level, e.g. the mean absolute GAE), mixed
with a staleness term so that scores do not go stale. Robust PLR (PLR⊥, Jiang et al. 2021,
"Replay-Guided Adversarial Environment Design", https://arxiv.org/abs/2110.02439) takes gradient
steps *only* on replayed levels: episodes on new levels are played to score them, and their
transitions are masked out of the loss.

Algorithm 1 of the PLR paper, as implemented here for a batch of ``k`` resets at once:

1. Replay decision ``d ~ P_D``: replay a seen level with probability ``p`` (see
   ``replay_schedule``), else draw a new level uniformly from the unseen ones.
2. Replay level ``l_i ~ P_replay = (1 - ρ) P_S + ρ P_C`` over the seen levels, with
   ``P_S(l_i) ∝ h(S_i)^(1/β)`` (``h = 1/rank`` or ``h = S``; Syllabus's further transforms:
   ``prioritization``) and the staleness distribution
   ``P_C(l_i) ∝ c - C_i`` (``c``: episodes sampled so far, ``C_i``: when ``l_i`` was last
   sampled). ``ρ`` is the paper's staleness coefficient, called ``staleness_coef`` here as in
   the reference code (facebookresearch/level-replay).
3. After the episode: ``S_i <- score(τ)`` (``smoothing=1``, the paper) or an EMA of scores
   (``smoothing < 1``, the reference code's ``alpha``), ``C_i <- c``; the level is now seen.

Scores are computed per step from a TorchRL PPO batch by :class:`StepScore` and averaged over
each episode by :class:`~currlearn.feedback.EpisodeTracker` (``mean_keys``); use
:meth:`PrioritizedLevelReplay.make_tracker`.

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> from currlearn.spaces import DiscreteSpace
    >>> plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=4), temperature=1.0,
    ...                              staleness_coef=0.0, seed=0)
    >>> plr.update(episode_feedback(torch.tensor([0, 1, 2, 3]), torch.zeros(4),
    ...                             score=torch.tensor([0.1, 0.4, 0.3, 0.2])))
    >>> plr.weights()  # ranks 4, 1, 2, 3 -> 1/rank, normalised
    tensor([0.1200, 0.4800, 0.2400, 0.1600])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

from currlearn import functional as F
from currlearn.base import DiscreteCurriculum, check_choice, check_finite, check_probability
from currlearn.feedback import EpisodeTracker
from currlearn.spaces import TaskSpace
from currlearn.trees import SegmentSumTree

__all__ = [
    "PRIORITIZATIONS",
    "REPLAY_SCHEDULES",
    "SCORE_FUNCTIONS",
    "PrioritizedLevelReplay",
    "StepScore",
]

SCORE_FUNCTIONS = (
    "l1_value_loss",
    "positive_value_loss",
    "max_mc",
    "policy_entropy",
    "least_confidence",
    "min_margin",
    "one_step_td_error",
)
"""Scoring functions: mean |GAE| (the PLR paper's best, "L1 value loss"), mean positive GAE
(PLR⊥'s "positive value loss"), MaxMC (PLR⊥: max return on the level minus the value
predictions), policy entropy, least confidence, min-margin (PLR paper, discrete actions), and
the one-step TD error."""

PRIORITIZATIONS = ("rank", "power", "softmax", "eps_greedy", "constant", "max", "match", "match_rank")
"""Score transforms of ``P_S``: the PLR paper's ``rank`` and ``power``, and the others of
Syllabus's ``TaskSampler`` (formulas in :class:`PrioritizedLevelReplay`)."""

REPLAY_SCHEDULES = ("proportionate", "fixed")
_RANKED = ("rank", "match_rank")  # P_S from ranks: by score, or by S (1 - S)
_POWERED = ("power", "match", "softmax")  # P_S from a per-level weight, updated per level
_UNSEEN = 2**62  # timestamp of levels never scored: in the future, so their staleness is 0
_TOPK_MAX = 1024  # rank prioritisation draws among the top-k levels when k (see below) <= this
_TOP_SPARE = 1024  # candidates kept for the top-k (F.update_top_candidates): a full topk is rare
_TINY64 = torch.finfo(torch.float64).tiny


def _match_key(score: Tensor) -> Tensor:
    """``S (1 - S)`` in float64: 1/4 at ``S = 1/2``, 0 at 0 and 1, negative outside [0, 1]."""
    s = score.double()
    return s * (1 - s)


def _nested_key(key: Any) -> Any:
    """A nested key given as a list (YAML, Hydra) as the tuple tensordict expects."""
    return tuple(key) if isinstance(key, list) else key


def _check_temperature(name: str, value: object) -> float:
    v = check_finite(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0 (a temperature), got {value!r}.")
    return v


class StepScore:
    """Per-step PLR scores from a TorchRL PPO batch, for ``EpisodeTracker(mean_keys=...)``.

    Called on a batch of shape ``[*envs, time]`` (after the advantage module ran), it returns a
    tensor of the batch's shape whose per-episode mean is the PLR score:

    =================== =================================================== ==================
    score_function      per step                                            needs
    =================== =================================================== ==================
    l1_value_loss       ``|A_t|`` (GAE)                                     see below
    positive_value_loss ``max(A_t, 0)``                                     see below
    max_mc              ``V(s_t)`` (the curriculum subtracts the episode    ``value_key``
                        mean from the level's max return)
    policy_entropy      ``entropy_key`` if given, else the entropy of       ``logits_key`` or
                        ``softmax(logits)`` / log(num_actions), else         ``log_prob_key``
                        ``-log π(a_t|s_t)`` (one-sample estimate,
                        continuous actions)
    least_confidence    ``1 - max_a π(a|s_t)``                              ``logits_key``
    min_margin          ``1 - (π(a1|s_t) - π(a2|s_t))``, top two actions     ``logits_key``
    one_step_td_error   ``|r_t + γ (1 - term_t) V(s_{t+1}) - V(s_t)|``      reward, values
    =================== =================================================== ==================

    The GAE ``A_t`` is ``value_target - state_value`` when the batch holds both: TorchRL's
    ``GAE(average_gae=True)`` standardises ``"advantage"`` per batch, which would make scores of
    different batches incomparable, but leaves ``"value_target"`` un-normalised. Otherwise
    ``advantage_key`` is read.

    Args:
        score_function (str): one of :data:`SCORE_FUNCTIONS`.
        advantage_key (NestedKey): default ``"advantage"`` (TorchRL's GAE output).
        value_target_key (NestedKey, optional): default ``"value_target"``; ``None`` always
            reads ``advantage_key``.
        value_key (NestedKey): default ``"state_value"``.
        next_value_key (NestedKey): default ``("next", "state_value")``.
        reward_key (NestedKey): default ``("next", "reward")``.
        terminated_key (NestedKey): default ``("next", "terminated")``.
        logits_key (NestedKey): default ``"logits"`` (a ``OneHotCategorical``/``Categorical``
            actor's logits).
        log_prob_key (NestedKey): default ``"action_log_prob"``.
        entropy_key (NestedKey, optional): a per-step policy entropy, if the actor writes one.
        gamma (float): discount of the one-step TD error. Default 0.99.

    Raises:
        ValueError: unknown ``score_function``; at call time, a missing key, or a
            discrete-only score (``min_margin``, ``least_confidence``) without logits.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> batch = TensorDict({"advantage": torch.tensor([[[-1.0], [2.0]]])}, [1, 2])
        >>> StepScore("l1_value_loss")(batch)
        tensor([[1., 2.]])
        >>> StepScore("positive_value_loss")(batch)
        tensor([[0., 2.]])
    """

    def __init__(
        self,
        score_function: str = "l1_value_loss",
        *,
        advantage_key: NestedKey = "advantage",
        value_target_key: NestedKey | None = "value_target",
        value_key: NestedKey = "state_value",
        next_value_key: NestedKey = ("next", "state_value"),
        reward_key: NestedKey = ("next", "reward"),
        terminated_key: NestedKey = ("next", "terminated"),
        logits_key: NestedKey = "logits",
        log_prob_key: NestedKey = "action_log_prob",
        entropy_key: NestedKey | None = None,
        gamma: float = 0.99,
    ) -> None:
        self.score_function = check_choice("score_function", score_function, SCORE_FUNCTIONS)
        # nested keys given as lists (Hydra / YAML) are tuples for tensordict
        self.advantage_key = _nested_key(advantage_key)
        self.value_target_key = _nested_key(value_target_key)
        self.entropy_key = _nested_key(entropy_key)
        self.value_key = _nested_key(value_key)
        self.next_value_key = _nested_key(next_value_key)
        self.reward_key = _nested_key(reward_key)
        self.terminated_key = _nested_key(terminated_key)
        self.logits_key = _nested_key(logits_key)
        self.log_prob_key = _nested_key(log_prob_key)
        self.gamma = check_probability("gamma", gamma)

    def _get(self, batch: TensorDictBase, key: NestedKey, what: str) -> Tensor:
        if key not in batch.keys(True):
            raise ValueError(
                f"score_function={self.score_function!r} needs {what} under {key!r}, but the batch has no such key; "
                f"its keys are {sorted(map(str, batch.keys(True, True)))}."
            )
        value = batch.get(key)
        if value.shape != batch.shape and value.numel() == batch.numel():
            value = value.reshape(batch.shape)
        return value.to(torch.get_default_dtype()) if not value.is_floating_point() else value

    def _advantage(self, batch: TensorDictBase) -> Tensor:
        keys = batch.keys(True)
        if self.value_target_key is not None and self.value_target_key in keys and self.value_key in keys:
            return self._get(batch, self.value_target_key, "value targets") - self._get(
                batch, self.value_key, "value predictions"
            )
        return self._get(batch, self.advantage_key, "advantages (GAE)")

    def _probs(self, batch: TensorDictBase) -> Tensor:
        if self.logits_key not in batch.keys(True):
            raise ValueError(
                f"score_function={self.score_function!r} needs the policy's logits under {self.logits_key!r} (discrete "
                "actions only: continuous actions have no top-two margin); the batch has no such key. Use "
                "'l1_value_loss', 'positive_value_loss', 'max_mc', 'policy_entropy' or 'one_step_td_error' instead."
            )
        logits = batch.get(self.logits_key)
        if (
            logits.shape[: batch.batch_dims] != batch.shape
            or logits.dim() != batch.batch_dims + 1
            or logits.shape[-1] < 2
        ):
            raise ValueError(
                f"score_function={self.score_function!r} needs logits of shape [*batch, num_actions >= 2], got "
                f"{list(logits.shape)} for a batch of shape {list(batch.shape)}."
            )
        return torch.softmax(logits.float(), -1)

    def __call__(self, batch: TensorDictBase) -> Tensor:
        """Per-step scores, shape ``batch.shape``."""
        name = self.score_function
        if name == "l1_value_loss":
            return self._advantage(batch).abs()
        if name == "positive_value_loss":
            return self._advantage(batch).clamp_min(0)
        if name == "max_mc":
            return self._get(batch, self.value_key, "value predictions")
        if name == "one_step_td_error":
            r = self._get(batch, self.reward_key, "rewards")
            v = self._get(batch, self.value_key, "value predictions")
            v_next = self._get(batch, self.next_value_key, "next-state value predictions")
            term = self._get(batch, self.terminated_key, "terminated flags")
            return (r + self.gamma * (1 - term) * v_next - v).abs()
        if name == "policy_entropy" and self.entropy_key is not None:
            return self._get(batch, self.entropy_key, "policy entropies")
        if name == "policy_entropy" and self.logits_key not in batch.keys(True):
            return -self._get(batch, self.log_prob_key, "the actions' log-probabilities (or logits)")
        probs = self._probs(batch)
        if name == "policy_entropy":
            ent = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
            return ent / math.log(probs.shape[-1])
        if name == "least_confidence":
            return 1 - probs.max(-1).values
        top2 = probs.topk(2, -1).values
        return 1 - (top2[..., 0] - top2[..., 1])

    def __repr__(self) -> str:
        return f"StepScore({self.score_function!r})"


class _Mixture:
    """The distribution of the next draw, ``p ((1 - ρ) Q + ρ C) + (1 - p) N``.

    ``p``: the replay probability; ``Q``: ``P_S``, or uniform over the seen levels while all
    ``P_S`` weights are 0; ``C``: the staleness distribution ``P_C``, or ``Q`` while no level is
    stale; ``N``: uniform over the unseen levels, or over all levels once none is left (PLR⊥;
    PLR replays with ``p = 1`` then). Built by :meth:`PrioritizedLevelReplay._mixture`;
    ``weights()`` reads :meth:`dense` and ``sample()`` :meth:`draw`, so the two cannot
    disagree.
    """

    __slots__ = (
        "count",
        "num_seen",
        "order",
        "p",
        "rho",
        "robust",
        "score_draw",
        "score_weights",
        "seen",
        "stale_draw",
        "timestamp",
    )

    def __init__(
        self,
        *,
        p: Tensor,
        rho: float,
        robust: bool,
        seen: Tensor,
        num_seen: Tensor,
        order: Tensor,
        timestamp: Tensor,
        count: Tensor,
        score_weights: Callable[[], Tensor],
        score_draw: Callable[[Tensor], Tensor],
        stale_draw: Callable[[int], Tensor | None],
    ) -> None:
        self.p, self.rho, self.robust = p, rho, robust
        self.seen, self.num_seen, self.order = seen, num_seen, order
        self.timestamp, self.count = timestamp, count
        self.score_weights = score_weights  # () -> unnormalised P_S, float64 [n], 0 off the seen levels
        self.score_draw = score_draw  # u [k] -> levels drawn from Q
        self.stale_draw = stale_draw  # k -> k levels drawn from P_C, None if no level is stale (CPU)

    def _staleness(self) -> Tensor:
        return F.staleness_weights(self.timestamp, self.count)

    def dense(self) -> Tensor:
        """The probabilities, float64 ``[num_tasks]``: every normalisation is a scalar coefficient
        of one weighted sum, a handful of passes over ``num_tasks``.
        """
        n = self.seen.numel()
        seen = self.seen.double()
        num_unseen = n - self.num_seen
        p = self.p
        score_w = self.score_weights()
        total = score_w.sum()
        rho = torch.zeros((), dtype=torch.float64, device=p.device)
        if self.rho > 0:
            stale = self._staleness().double()
            stale_sum = stale.sum()
            rho = torch.where(stale_sum > 0, self.rho, 0.0).double()  # C = Q while nothing is stale
        p_score = p * (1 - rho)
        has_score = total > 0
        w = score_w * torch.where(has_score, p_score / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)
        w.addcmul_(seen, torch.where(has_score, 0.0, p_score / self.num_seen.clamp_min(1)))
        if self.rho > 0:
            w.addcmul_(stale, p * rho / stale_sum.clamp_min(1))
        c_unseen = torch.where(num_unseen > 0, (1 - p) / num_unseen.clamp_min(1), 0.0)
        w.addcmul_(seen.neg_().add_(1), c_unseen)  # seen -> unseen, in place
        if self.robust:
            w.add_(torch.where(num_unseen > 0, 0.0, (1 - p) / n))
        return w

    def _new_levels(self, u: Tensor) -> Tensor:
        """Levels drawn from ``N`` for the uniforms ``u``."""
        order, num_seen = self.order, self.num_seen
        n = order.numel()
        num_unseen = n - num_seen
        if self.robust:
            lo = torch.where(num_unseen > 0, num_seen, 0)
            width = torch.where(num_unseen > 0, num_unseen, n)
        else:
            lo, width = num_seen, num_unseen.clamp_min(1)
        return order.index_select(0, (lo + (u * width).long()).clamp_max(n - 1))

    def draw(self, num: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``num`` levels drawn with ``generator``, and which of them are replays."""
        order = self.order
        device = order.device
        if device.type != "cpu":  # a fixed set of draws: no decision waits for the device
            u = torch.rand(5, num, generator=generator, device=device, dtype=torch.float64)
            is_replay = u[0] < self.p
            new_level = self._new_levels(u[1])
            replay = self.score_draw(u[2])
            if self.rho > 0:
                stale_cdf = torch.cumsum(self._staleness(), 0)
                use_stale = (u[4] < self.rho) & (stale_cdf[-1] > 0)
                replay = torch.where(use_stale, F.sample_from_cdf(stale_cdf, u[3]), replay)
            return torch.where(is_replay, replay, new_level), is_replay
        # On CPU the decisions are free to read: only the draws a branch needs are made, in
        # one call (rows: score draw, staleness coin, replay coin, new level).
        p = float(self.p)
        rows = 1 + (self.rho > 0) + (0 < p < 1) + (p < 1)
        u = torch.rand(rows, num, generator=generator, dtype=torch.float64)
        if p < 1:
            new_level = self._new_levels(u[rows - 1])
            if p <= 0:
                return new_level, torch.zeros(num, dtype=torch.bool)
        is_replay = u[rows - 2] < p if 0 < p < 1 else torch.ones(num, dtype=torch.bool)
        replay = self.score_draw(u[0])
        if self.rho > 0:
            # Each replay draw uses C with probability ρ; C is Q while no level is stale.
            stale_rows = (u[1] < self.rho).nonzero().squeeze(1)
            if stale_rows.numel():
                stale = self.stale_draw(stale_rows.numel())
                if stale is not None:
                    replay = replay.index_copy(0, stale_rows, stale)
        if p >= 1:
            return replay, is_replay
        return torch.where(is_replay, replay, new_level), is_replay


class PrioritizedLevelReplay(DiscreteCurriculum):
    """Prioritized Level Replay over a discrete level set, and robust PLR (``robust=True``).

    The state is preallocated per-level tensors: score, seen flag, staleness timestamp, the max
    return (MaxMC), the seen levels first in ``order``, and a lower bound of the timestamps. Rank
    prioritisation keeps the top-ranked levels per update (``O(episodes)``, a full ``topk`` only
    when the spare candidates run out, see :meth:`_refresh`) and draws ranks from a precomputed
    rank distribution; on CPU, staleness draws are made by rejection from uniform proposals
    (:meth:`_stale_draw`), so a draw costs ``O(draws)`` whatever the number of levels. ``power``,
    ``match`` and ``softmax`` keep their weights in a sum tree on CPU (TorchRL's C++ segment
    tree), the other transforms and other devices one cumulative sum. No Python loop over levels.

    Feedback: the per-episode score under ``"score"`` (``"value_mean"`` for ``max_mc``), e.g.
    from :meth:`make_tracker`. Episodes whose score (or MaxMC value mean) is NaN or infinite are
    counted in ``skipped_nonfinite`` and ignored. Several episodes of a level in one batch count
    as ``k`` updates with their mean (see :func:`currlearn.functional.batch_ema`).

    Score transforms (``prioritization``): ``P_S(l_i) = w_i / sum_j w_j`` over the seen levels
    (unseen levels have weight 0; all weights 0: uniform over the seen levels), with ``S_i`` the
    level's score, ``β`` the ``temperature``, ``M`` the highest seen score and ``m`` the number
    of seen levels scoring ``M``:

    ============ ================================================= ===========================
    transform    ``w_i``                                           from
    ============ ================================================= ===========================
    rank         ``rank_i^(-1/β)``, rank 1 = highest score         PLR paper (the default)
    power        ``max(S_i, 0)^(1/β)``                             PLR paper
    softmax      ``exp((S_i - M) / β)``                            Syllabus
    eps_greedy   ``(1 - ε) [S_i = M] / m + ε / num_seen``          Syllabus (``ε = eps``)
    constant     ``1``: uniform over the seen levels               Syllabus
    max          ``[S_i = M] / m``: ties share the mass            Syllabus
    match        ``max(S_i (1 - S_i), 0)^(1/β)``                   Syllabus
    match_rank   ``rank_i^(-1/β)``, ranked by ``S_i (1 - S_i)``    Syllabus
    ============ ================================================= ===========================

    Ranks are taken among the seen levels; ties go to the lower level id, keys compared as
    float32 (``match_rank``'s float64 ``S (1 - S)`` rounded, keys beyond float32's range at its
    largest magnitude), so a resumed run ranks as the original. (With more than 1024 ranks
    drawn, large temperatures, ties keep the order in which the levels were scored.) ``match`` and ``match_rank``
    favour levels scoring near 1/2 and are meant for scores in [0, 1], such as a success rate
    fed as ``"score"``.

    The transforms beyond the paper are those of Syllabus (Sullivan et al.,
    https://github.com/RyanNavillus/Syllabus, ``syllabus/curricula/plr/task_sampler.py``:
    ``TaskSampler._score_transform`` and ``sample_weights``). Where Syllabus departs from the PLR
    paper, this class follows the paper:

    - ranks count the seen levels only; Syllabus ranks all levels, the unseen ones with score 0,
      so that a seen level with a negative score ranks behind every unseen level;
    - ``power`` is ``max(S, 0)^(1/β)``, the paper's ``h(S) = S``; Syllabus adds ``1e-3`` to the
      scores when ``staleness_coef == 0``;
    - while no seen level is stale (all ``c - C_i = 0``, e.g. right after an update),
      ``P_replay = P_S`` (ρ = 0); Syllabus then mixes in ``ρ`` times a uniform distribution over
      the seen levels (weighted by the seen fraction, then renormalised).

    and on the transforms the paper does not have:

    - ``eps_greedy``: the greedy level is the best *seen* one, ties split, and ``ε`` is spread
      over the seen levels; Syllabus takes the first argmax over all levels (an unseen one when
      every seen score is negative) and spreads ``ε`` over all levels before it drops the unseen
      ones and renormalises;
    - ``max``: ties share the mass; Syllabus draws one of the (``np.isclose``) ties per call,
      the same in expectation for exact ties;
    - ``softmax``: the max is subtracted (the same distribution; Syllabus's ``exp(S/β)``
      overflows from ``S/β ≈ 710``);
    - ``match``: ``S (1 - S)`` is clamped at 0; in Syllabus a score outside [0, 1] gives a
      negative base, hence NaN for a fractional ``1/β`` (a large weight for an even one).

    Numerics: scores are stored finite. Non-finite feedback is skipped (above); per-level sums,
    means, the EMA and the MaxMC difference are computed in float64 and saturated into the
    state's range (a MaxMC score ``3e38 - (-3e38)`` is stored as float32's largest value);
    unseen levels hold the lowest finite score (not -inf). ``power``, ``match`` and ``softmax``
    use the plain formula while all its weights are representable in float64 (ordinary scores:
    the same bits as the formula) and otherwise the same weights scaled by the largest first,
    ``(h_i / max h)^(1/β)`` and ``exp((S_i - M) / β)``, so that a small temperature neither
    overflows (β = 0.01, S = 1.2e3) nor underflows (β = 0.01, S = 1e-5) into a uniform draw.

    Args:
        space (TaskSpace): a discrete space: the levels.
        score_function (str): how :meth:`make_tracker` scores episodes, one of
            :data:`SCORE_FUNCTIONS`. Default ``"l1_value_loss"`` (mean |GAE|, the paper's best).
        prioritization (str): the score transform, one of :data:`PRIORITIZATIONS` (table above).
            Default ``"rank"`` (the paper's).
        temperature (float): β > 0 of ``rank``, ``power``, ``softmax``, ``match`` and
            ``match_rank``. Default 0.1 (the paper's Procgen value).
        eps (float): ε in [0, 1] of ``eps_greedy``: the share spread uniformly over the seen
            levels. Default 0.05 (Syllabus's). Unused by the other transforms.
        staleness_coef (float): the paper's ρ in [0, 1], weight of the staleness distribution
            in ``P_replay = (1 - ρ) P_S + ρ P_C``. Default 0.1.
        replay_schedule (str): the replay decision ``P_D``. ``"proportionate"``: replay with
            probability ``|seen| / |levels|`` (the reference implementation's default schedule
            for PLR, facebookresearch/level-replay). ``"fixed"``: replay with probability
            ``replay_prob`` once a level has been seen, i.e. a new level with probability
            ``1 - replay_prob`` (PLR⊥, arXiv 2110.02439, Algorithm 1); with ``robust=False``
            always replay once every level is seen, as the reference code does.
        replay_prob (float): ``p`` of the ``"fixed"`` schedule, in [0, 1]. Default 0.5.
        min_seen_fraction (float): no replay before this fraction of the levels has been seen,
            in [0, 1]: the reference code's ``level_replay_rho`` (its default 1.0 plays every
            level once first), *not* the paper's ρ. Default 0.
        smoothing (float): weight of a new score in (0, 1]: 1 keeps the latest score (the
            paper), smaller values an exponential moving average.
        robust (bool): PLR⊥. Non-replay episodes are for scoring only: the per-env decision is
            exposed (:attr:`env_replay`, :attr:`last_sample_is_replay`) so that the loss can drop
            their transitions; once every level is seen, the non-replay branch draws a uniformly
            random level (exploration keeps going at rate ``1 - replay_prob``).
        num_envs (int, optional): number of envs, to keep the per-env replay decision.
        seed (int, optional): seed of the generator (checkpointed).
        device: device of the state.

    How to mask the loss (PLR⊥): put a :class:`~currlearn.integrations.replay.ReplayDecisionTransform`
    after the :class:`~currlearn.integrations.torchrl.CurriculumTransform` on the env; every
    transition then carries ``"level_replay"`` (bool, ``[*batch]``). Compute advantages on the
    whole batch (GAE needs whole trajectories), then keep the replayed steps only before the
    PPO epochs::

        flat = batch.reshape(-1)
        flat = flat[flat["level_replay"]]

    or zero ``"advantage"`` (and the value loss) where ``~batch["level_replay"]``.

    Raises:
        ValueError: unknown ``score_function``, ``prioritization`` or ``replay_schedule`` (the
            message lists the valid names), ``temperature <= 0``, ``eps``, ``staleness_coef``,
            ``replay_prob`` or ``min_seen_fraction`` outside [0, 1], ``smoothing`` outside (0, 1].
        TypeError: a continuous space.
    """

    needs_value_estimates = True  # scores come from advantages / values of the batch
    _new_state_keys = ("stale_floor",)

    def _fill_new_state(self, keys: set[str]) -> None:
        self._tensors["stale_floor"].zero_()  # 0 bounds every timestamp

    def __init__(
        self,
        space: TaskSpace,
        *,
        score_function: Literal[
            "l1_value_loss",
            "positive_value_loss",
            "max_mc",
            "policy_entropy",
            "least_confidence",
            "min_margin",
            "one_step_td_error",
        ] = "l1_value_loss",
        prioritization: Literal[
            "rank", "power", "softmax", "eps_greedy", "constant", "max", "match", "match_rank"
        ] = "rank",
        temperature: float = 0.1,
        eps: float = 0.05,
        staleness_coef: float = 0.1,
        replay_schedule: Literal["proportionate", "fixed"] = "proportionate",
        replay_prob: float = 0.5,
        min_seen_fraction: float = 0.0,
        smoothing: float = 1.0,
        robust: bool = False,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.score_function = check_choice("score_function", score_function, SCORE_FUNCTIONS)
        self.prioritization = check_choice("prioritization", prioritization, PRIORITIZATIONS)
        self.replay_schedule = check_choice("replay_schedule", replay_schedule, REPLAY_SCHEDULES)
        self.temperature = _check_temperature("temperature", temperature)
        self.eps = check_probability("eps", eps)
        self.staleness_coef = check_probability("staleness_coef", staleness_coef)
        self.replay_prob = check_probability("replay_prob", replay_prob)
        self.min_seen_fraction = check_probability("min_seen_fraction", min_seen_fraction)
        self.smoothing = check_probability("smoothing", smoothing, open_low=True)
        if not isinstance(robust, bool):
            raise TypeError(f"robust must be a bool, got {robust!r}.")
        self.robust = robust
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        n = space.num_tasks
        dtype = torch.get_default_dtype()
        lowest = torch.finfo(dtype).min
        # the lowest score a seen level stores: just above the unseen levels' (the lowest finite)
        self._lowest_seen = float(torch.nextafter(torch.tensor(lowest, dtype=dtype), torch.zeros((), dtype=dtype)))
        self.state = TensorDict(
            {
                "score": torch.full((n,), lowest),  # below every stored score: unseen levels rank last
                "seen": torch.zeros(n, dtype=torch.bool),
                "timestamp": torch.full((n,), _UNSEEN, dtype=torch.int64),
                "max_return": torch.full((n,), lowest),
                "order": torch.arange(n),
                "num_seen": torch.zeros((), dtype=torch.int64),
                "episode_count": torch.zeros((), dtype=torch.int64),
                # a lower bound of the seen levels' timestamps, for staleness draws on CPU
                "stale_floor": torch.zeros((), dtype=torch.int64),
                "env_replay": torch.ones(num_envs or 0, dtype=torch.bool),
            },
            device=self.device,
        )
        self._last_replay = torch.zeros(0, dtype=torch.bool, device=self.device)
        self._rank_cdf: Tensor | None = None
        self._refresh()

    # ------------------------------------------------------------------ derived caches
    def _refresh(self) -> None:
        """Recompute what derives from the state (after construction, load, ``to``).

        ``state["order"]`` lists the seen levels first, then the unseen ones. Rank
        prioritisation (``rank``, ``match_rank``) draws a rank ``r`` from the rank distribution,
        truncated where its float64 cdf stops growing (``k`` ranks: 39 for β = 0.1), and plays
        the level of rank ``r``: when ``k <= 1024`` up to 1024 candidates for the top-``k`` are
        kept per update from the old candidates and the updated levels, ordered by
        :func:`currlearn.functional.rank_codes` (ties by level id), with a full ``topk``
        (``O(num_tasks)``) only when top levels fell and the spare candidates ran out
        (:func:`currlearn.functional.update_top_candidates`), otherwise ``order`` is kept sorted by
        the rank key (:func:`currlearn.functional.update_sorted_order`). The other transforms
        keep ``P_S``'s weights and a sum tree of them (``power``, ``match``, ``softmax`` on CPU)
        or their cumulative sum. Unseen levels are promoted in
        ``O(batch)`` swaps.
        """
        st = self.state
        # the state's tensors by name: a dict lookup, where a TensorDict lookup costs microseconds
        self._tensors = dict(st.items())
        ranked = self.prioritization in _RANKED
        if ranked and (self._rank_cdf is None or self._rank_cdf.device != self.device):
            cdf = F.rank_cdf(self.space.num_tasks, self.temperature, device=self.device)
            # Ranks past the point where the cdf stops growing (float64) are never drawn.
            self._rank_cdf = cdf[: F.effective_length(cdf)].clone()
        self._sorted = ranked and self._rank_cdf is not None and self._rank_cdf.numel() > _TOPK_MAX
        self._num_seen = int(st["num_seen"])
        if not self._sorted:
            self._position = F.inverse_permutation(st["order"])
        if self.prioritization == "match_rank":
            self._match_rank_key = torch.where(st["seen"], _match_key(st["score"]), -math.inf)
        if ranked and not self._sorted:
            n = self.space.num_tasks
            # unseen levels rank below every seen one, whatever a seen key rounds to in float32
            keys = torch.where(st["seen"], self._rank_keys().double(), -math.inf)
            self._codes = F.rank_codes(keys, torch.arange(n, device=self.device))
            self._top_member = torch.zeros(n, dtype=torch.bool, device=self.device)
            self._rebuild_top()
        if not ranked:
            if self.prioritization in _POWERED and self.device.type == "cpu":
                self._powered_tree = SegmentSumTree(self.space.num_tasks)
                self._tree_holds_plain = False
            self._set_score_weights()
        self._last_replay = self._last_replay.to(self.device)

    def _rebuild_top(self) -> None:
        """The candidates for the top-``k`` levels from all rank codes (``O(num_tasks)``)."""
        self._top, self._top_bound = F.top_candidates(self._codes, self._rank_cdf.numel(), self._top_member, _TOP_SPARE)

    def _on_load(self) -> None:
        st = self.state
        score, seen = st["score"], st["seen"]
        info = torch.finfo(score.dtype)
        # States of earlier versions mark unseen levels with -inf and may hold non-finite scores.
        bad = bool((seen & ~torch.isfinite(score)).any())
        clean = torch.nan_to_num(score, nan=0.0, posinf=info.max, neginf=info.min).clamp_min_(self._lowest_seen)
        score.copy_(torch.where(seen, clean, info.min))
        st["max_return"].nan_to_num_(nan=info.min, posinf=info.max, neginf=info.min)
        self._refresh()
        if bad and self._sorted:  # the sorted order follows the repaired scores
            st["order"] = self._tensors["order"] = torch.sort(self._rank_keys(), descending=True, stable=True).indices

    def _store(self, x: Tensor) -> Tensor:
        """Float64 scores saturated into the state's dtype, above the unseen levels' value."""
        dtype = self._tensors["score"].dtype
        return x.clamp(self._lowest_seen, torch.finfo(dtype).max).to(dtype)

    def _rank_keys(self) -> Tensor:
        """What ranks order the levels by: the score, or ``S (1 - S)`` for ``match_rank``."""
        return self._match_rank_key if self.prioritization == "match_rank" else self._tensors["score"]

    def _plain_weights(self, score: Tensor) -> Tensor:
        """``P_S`` weights of ``power``, ``match`` and ``softmax`` by their formula (float64)."""
        if self.prioritization == "softmax":
            return score.double().div(self.temperature).exp_()
        if self.prioritization == "match":
            return F.power_weights(_match_key(score), self.temperature)
        return F.power_weights(score.double(), self.temperature)

    def _scaled_weights(self) -> Tensor:
        """The same weights up to a common factor, scaled by the largest first: ``(h / max h)^(1/β)``,
        ``exp((S - M) / β)``; each in [0, 1], the largest 1 (all 0 without a positive ``h``).
        """
        st = self.state
        seen = st["seen"]
        score = st["score"].double()
        if self.prioritization == "softmax":
            # the unseen levels' score is the lowest: the max is the seen levels'
            return (score - score.max()).div_(self.temperature).exp_().mul_(seen)
        h = (_match_key(score) if self.prioritization == "match" else score).clamp_min(0).mul_(seen)
        return (h / h.max().clamp_min(_TINY64)).pow_(1.0 / self.temperature)

    def _set_score_weights(self, ids: Tensor | None = None, new: Tensor | None = None) -> None:
        """``P_S``'s weights (float64, 0 off the seen levels) and what draws from them, for the
        transforms other than ranks: all levels, or after the scores of ``ids`` became ``new``.

        ``power``, ``match`` and ``softmax`` on CPU keep their weights in TorchRL's C++ sum
        tree (:class:`~currlearn.trees.SegmentSumTree`): an update re-weights the ``ids`` only
        and a draw descends the tree, ``O(k log num_tasks)``; elsewhere (and for the other
        transforms), a cumulative sum per update.
        """
        st = self.state
        seen = st["seen"]
        kind = self.prioritization
        self._score_tree = None
        if kind in _POWERED:
            on_tree = self.device.type == "cpu"  # (the C++ tree is a CPU structure)
            incremental = on_tree and ids is not None and self._tree_holds_plain
            if ids is None:
                self._plain = self._plain_weights(st["score"]).mul_(seen)
            else:
                weights = self._plain_weights(new)
                self._plain.index_copy_(0, ids, weights)
            plain = self._plain
            if incremental:  # re-weight the updated levels only
                self._powered_tree.update(ids, weights)
                total = self._powered_tree.total
            else:
                total = plain.sum()
            # The formula while its weights are finite with a normal largest one (a total of at
            # least num_tasks times the smallest normal float64 implies one), else scaled.
            ok = torch.isfinite(total) & (total >= _TINY64 * plain.numel())
            if not on_tree:
                w = torch.where(ok, plain, self._scaled_weights())
            elif bool(ok):  # on CPU the check waits for no device
                if not incremental:
                    self._powered_tree.build(plain)
                self._tree_holds_plain = True
                self._score_w, self._score_tree = plain, self._powered_tree
                return
            else:
                # scaled weights change everywhere at every update: a cumulative sum (the tree
                # is rebuilt from the formula's weights once they are representable again)
                self._tree_holds_plain = False
                w = self._scaled_weights()
        elif kind == "constant":
            w = seen.double()
        else:  # max, eps_greedy
            score = st["score"]
            top = (score == score.max()) & seen  # the unseen levels' score is the lowest
            w = top.double()
            if kind == "eps_greedy":
                w.mul_((1 - self.eps) / top.sum().clamp_min(1).double())
                w.add_(seen.double() * (self.eps / st["num_seen"].clamp_min(1).double()))
        self._score_w = w
        self._score_cdf = torch.cumsum(w, 0)

    # ------------------------------------------------------------------ public views
    @property
    def env_replay(self) -> Tensor:
        """Per-env decision of the last reset: True = replayed level (train on it), shape ``[num_envs]``."""
        return self.state["env_replay"]

    @property
    def last_sample_is_replay(self) -> Tensor:
        """Shape ``[n]``, bool: which tasks of the last :meth:`sample` call were replays."""
        return self._last_replay

    @property
    def score_key(self) -> str:
        """The feedback key :meth:`update` reads: ``"value_mean"`` for MaxMC, else ``"score"``."""
        return "value_mean" if self.score_function == "max_mc" else "score"

    def make_tracker(
        self,
        task_key: NestedKey = ("next", "task_id"),
        **score_keys: Any,
    ) -> EpisodeTracker:
        """An :class:`EpisodeTracker` that averages this curriculum's :class:`StepScore` per episode.

        Args:
            task_key (NestedKey): where transitions carry their level (the transform's key
                under ``"next"``).
            **score_keys: forwarded to :class:`StepScore` (``advantage_key``, ``gamma``...).

        Examples:
            >>> from currlearn.spaces import DiscreteSpace
            >>> tracker = PrioritizedLevelReplay(DiscreteSpace(num_tasks=3)).make_tracker()
            >>> tracker.mean_keys
            {'score': StepScore('l1_value_loss')}
        """
        return EpisodeTracker(
            task_key=task_key, mean_keys={self.score_key: StepScore(self.score_function, **score_keys)}
        )

    # ------------------------------------------------------------------ decision
    def replay_probability(self) -> Tensor:
        """Probability that the next draw replays a seen level (scalar tensor, float64)."""
        if self.device.type == "cpu":  # from the host's count of seen levels: a few scalar ops fewer
            return torch.tensor(self._replay_probability(self._num_seen), dtype=torch.float64)
        st = self._tensors
        n = self.space.num_tasks
        num_seen = st["num_seen"]
        if self.replay_schedule == "proportionate":
            p = num_seen.double() / n
        else:
            p = torch.where(num_seen > 0, self.replay_prob, 0.0).double()
        if not self.robust:
            p = torch.where(num_seen == n, 1.0, p)
        if self.min_seen_fraction > 0:
            p = torch.where(num_seen >= math.ceil(self.min_seen_fraction * n), p, 0.0)
        return p

    def _replay_probability(self, num_seen: int) -> float:
        """:meth:`replay_probability` for ``num_seen`` seen levels, in Python."""
        n = self.space.num_tasks
        if self.replay_schedule == "proportionate":
            p = num_seen / n
        else:
            p = self.replay_prob if num_seen > 0 else 0.0
        if not self.robust and num_seen == n:
            p = 1.0
        if self.min_seen_fraction > 0 and num_seen < math.ceil(self.min_seen_fraction * n):
            p = 0.0
        return p

    def _score_weights(self) -> Tensor:
        """Unnormalised ``P_S`` weights, float64, shape ``[num_tasks]``, zero for unseen levels."""
        st = self._tensors
        seen = st["seen"]
        if self.prioritization not in _RANKED:
            return self._score_w
        if self._sorted:
            ranks = F.inverse_permutation(st["order"]) + 1
            return ranks.double().pow_(-1.0 / self.temperature).mul_(seen)
        # Exactly what `_score_draw` draws: ranks past the truncation point have weight 0 (their
        # true weights are below float64 resolution relative to rank 1).
        k = min(self._num_seen, self._rank_cdf.numel())
        top_w = torch.arange(1, k + 1, device=self.device, dtype=torch.float64).pow(-1.0 / self.temperature)
        return torch.zeros(seen.numel(), device=self.device, dtype=torch.float64).index_copy_(0, self._top[:k], top_w)

    def _score_draw(self, u: Tensor) -> Tensor:
        """Levels drawn from ``Q`` (``P_S``, or uniform over the seen levels while it has no mass)
        for the uniforms ``u``.
        """
        st = self._tensors
        order = st["order"]
        seen_count = st["num_seen"].clamp_min(1)
        if self.prioritization in _RANKED:  # rank 1 always has weight: Q = P_S
            rank = F.sample_from_cdf(self._rank_cdf, u, seen_count)
            return (order if self._sorted else self._top).index_select(0, rank)
        if self._score_tree is not None:  # (CPU: the total is free to read)
            total = self._score_tree.total
            if float(total) > 0:
                return self._score_tree.find(u * total).clamp_max_(order.numel() - 1)
            return order.index_select(0, (u * seen_count).long().clamp_max(order.numel() - 1))
        by_score = F.sample_from_cdf(self._score_cdf, u)
        uniform_seen = order.index_select(0, (u * seen_count).long().clamp_max(order.numel() - 1))
        return torch.where(self._score_cdf[-1] > 0, by_score, uniform_seen)

    def _stale_draw(self, num: int) -> Tensor | None:
        """``num`` levels from ``P_C`` (``∝ c - C_i``), on CPU, or ``None`` while no level is stale.

        Rejection sampling: a seen level proposed uniformly is kept with probability
        ``(c - C_i) / (c - L)``, with ``L <= min_i C_i`` (``state["stale_floor"]``; timestamps
        only grow, so an old minimum stays a bound; it is renewed when fewer than a quarter of
        the proposals are kept). Every kept proposal is an exact draw from ``P_C``, at a cost
        independent of the number of levels; after three rounds of ``4 num + 16`` proposals,
        the remaining draws come from the staleness cdf (``O(num_tasks)``).
        """
        st = self._tensors
        count = int(st["episode_count"])
        seen = self._num_seen
        if seen == 0:
            return None
        ts, order, floor = st["timestamp"], st["order"], st["stale_floor"]
        out: list[Tensor] = []
        need = num
        for _ in range(3):
            span = count - int(floor)
            if span <= 0:  # every seen level was sampled just now: nothing is stale
                return None
            m = 4 * need + 16
            u = torch.rand(2, m, generator=self.generator, dtype=torch.float64)
            proposal = (u[0] * seen).long().clamp_max_(seen - 1)
            if seen < order.numel():  # (once all are seen, order[:seen] is every level)
                proposal = order.index_select(0, proposal)
            stale = count - ts.index_select(0, proposal)
            kept = proposal.masked_select(u[1] * span < stale)
            if 4 * kept.numel() < m:  # renew the bound: its staleness may have run far ahead
                floor.copy_(ts.min())
            out.append(kept[:need])
            need -= out[-1].numel()
            if need == 0:
                return torch.cat(out)
        stale_cdf = torch.cumsum(F.staleness_weights(ts, st["episode_count"]), 0)
        if not bool(stale_cdf[-1] > 0):
            return None
        u = torch.rand(need, generator=self.generator, dtype=torch.float64)
        out.append(F.sample_from_cdf(stale_cdf, u))
        return torch.cat(out)

    def _mixture(self) -> _Mixture:
        """The distribution of the next draw (see :class:`_Mixture`): the one definition that
        :meth:`weights` and :meth:`sample` both read.
        """
        st = self._tensors
        return _Mixture(
            p=self.replay_probability(),
            rho=self.staleness_coef,
            robust=self.robust,
            seen=st["seen"],
            num_seen=st["num_seen"],
            order=st["order"],
            timestamp=st["timestamp"],
            count=st["episode_count"],
            score_weights=self._score_weights,
            score_draw=self._score_draw,
            stale_draw=self._stale_draw,
        )

    def _compute_weights(self) -> Tensor:
        """The distribution of the next draw (:meth:`_mixture`, which ``sample`` draws from),
        shape ``[num_tasks]``: ``p ((1 - ρ) P_S + ρ P_C) + (1 - p) P_new``.

        ``p`` is :meth:`replay_probability`; ``ρ`` is ``staleness_coef`` once some level is stale
        (``P_C`` all zero before: ``ρ = 0``); ``P_S`` is uniform over the seen levels while all
        their weights are 0; ``P_new`` is uniform over the unseen levels (PLR⊥ once all are seen:
        over all levels).
        """
        return self._mixture().dense().to(torch.get_default_dtype())

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        st = self._tensors
        tasks, is_replay = self._mixture().draw(num, self.generator)
        count = st["episode_count"]
        count += num
        # C_i <- c for the sampled levels that are seen (unseen ones keep the sentinel).
        ts = st["timestamp"]
        ts.index_copy_(0, tasks, torch.where(st["seen"].index_select(0, tasks), count, ts.index_select(0, tasks)))
        if env_ids is not None and self.num_envs is not None:
            st["env_replay"].index_copy_(0, env_ids, is_replay)
        self._last_replay = is_replay
        return tasks

    # ------------------------------------------------------------------ learning
    def check_score_key(self, feedback: TensorDictBase, owner: str = "PrioritizedLevelReplay") -> None:
        """Raise ``ValueError`` (naming ``owner``) if ``feedback`` lacks :attr:`score_key`."""
        key = self.score_key
        if key not in feedback.keys():
            raise ValueError(
                f"{owner}(score_function={self.score_function!r}) reads the per-episode {key!r} from the "
                f"feedback, which has keys {sorted(map(str, feedback.keys()))}; build the tracker with "
                "curriculum.make_tracker() (or EpisodeTracker(mean_keys={" + repr(key) + ": StepScore(...)}))."
            )

    def _update(self, feedback: TensorDictBase) -> None:
        self.check_score_key(feedback)
        key = self.score_key
        st = self._tensors
        values = feedback[key].double()
        valid = F.finite(values)
        n_bad = valid.numel() - valid.sum()
        self.counters["skipped_nonfinite"] += n_bad
        if self.device.type == "cpu" and not bool(n_bad):  # (free to check on CPU)
            valid = None
        task = feedback["task"]
        big = torch.finfo(st["score"].dtype).max
        # float64 from here on: sums and differences of values near float32's end stay finite
        values = values.clamp(-big, big)
        ids, count, (total,) = self._group(task, values, valid=valid)
        mean = total.double() / count.double()
        if self.score_function == "max_mc":
            ret = feedback["return"].double().clamp(-big, big)  # finite: update() skipped the rest
            if valid is not None:
                task, ret = task[valid], ret[valid]
            st["max_return"].scatter_reduce_(0, task, ret.to(st["max_return"].dtype), "amax")
            mean = st["max_return"].index_select(0, ids).double() - mean
        if ids.numel() == 0:
            return
        all_seen = self._num_seen == self.space.num_tasks  # (a Python int: no sync)
        was_seen = None if all_seen else st["seen"].index_select(0, ids)
        ranked = self.prioritization in _RANKED
        if self.smoothing == 1 and was_seen is None:  # the paper's S_i <- score: no average
            new = self._store(mean)
        else:
            if was_seen is None:
                was_seen = torch.ones_like(ids, dtype=torch.bool)
            old = st["score"].index_select(0, ids).double()
            new = self._store(F.batch_ema(old, mean, count, self.smoothing, was_seen))
        st["score"].index_copy_(0, ids, new)
        st["timestamp"].index_fill_(0, ids, st["episode_count"])
        if not all_seen:
            st["seen"].index_fill_(0, ids, True)
            st["num_seen"] += (~was_seen).sum()
        if self.prioritization == "match_rank":
            self._match_rank_key.index_copy_(0, ids, _match_key(new))
        if self._sorted:
            st["order"] = self.state["order"] = F.update_sorted_order(
                st["order"], self._rank_keys(), ids, assume_unique=True
            )
        else:
            if not all_seen:
                newly_seen = ids[~was_seen]
                F.partition_promote(st["order"], self._position, newly_seen, self._num_seen)
                self._num_seen += newly_seen.numel()
            if ranked:
                k = self._rank_cdf.numel()
                self._codes.index_copy_(0, ids, F.rank_codes(self._rank_keys().index_select(0, ids), ids))
                self._top, self._top_bound, exact = F.update_top_candidates(
                    self._top, self._top_bound, self._codes, ids, self._top_member, k
                )
                if not bool(exact):  # the spare candidates ran out: one full topk
                    self._rebuild_top()
        if self._sorted and not all_seen:
            self._num_seen += int((~was_seen).sum())
        if not ranked:
            self._set_score_weights(ids, new)

    def forget(self, levels: Tensor) -> None:
        """Make ``levels`` unseen again: no score, no staleness, no MaxMC return. For a level
        buffer whose slots change hands (:class:`~currlearn.curricula.LevelReplay`): the next
        score of a forgotten slot is stored as is, not averaged with its former level's.
        ``O(num_tasks)`` (the derived caches are rebuilt); ties among the remaining scores are
        then ordered by level id.

        Args:
            levels (Tensor): level ids, int64, any shape.

        Raises:
            ValueError: ids outside the space.
        """
        levels = levels.to(self.device).reshape(-1)
        self.space.check_tasks(levels, "levels")
        st = self._tensors
        lowest = torch.finfo(st["score"].dtype).min
        st["seen"].index_fill_(0, levels, False)
        st["score"].index_fill_(0, levels, lowest)
        st["max_return"].index_fill_(0, levels, lowest)
        st["timestamp"].index_fill_(0, levels, _UNSEEN)
        seen = st["seen"]
        st["num_seen"].copy_(seen.sum())
        if self._sorted:
            score = st["score"]
            key = _match_key(score) if self.prioritization == "match_rank" else score.double()
            order = torch.sort(torch.where(seen, key, -math.inf), descending=True, stable=True).indices
        else:  # the seen levels first, each part in id order
            order = torch.sort((~seen).to(torch.int8), stable=True).indices
        st["order"].copy_(order)
        self.decision_version += 1
        self._refresh()

    def _metrics(self) -> dict[str, Tensor | float]:
        st = self.state
        seen = st["seen"]
        num_seen = st["num_seen"]
        score = st["score"].double()  # float64: a sum of scores near float32's end stays finite
        # products over the seen mask: a `where` over an irregular mask is slower on CPU
        mean_score = (score * seen).sum() / num_seen.clamp_min(1)
        return {
            "num_seen": num_seen,
            "proportion_seen": num_seen / self.space.num_tasks,
            "replay_probability": self.replay_probability(),
            "score_mean": mean_score,
            "score_max": torch.where(num_seen > 0, score.max(), math.nan),  # NaN: nothing scored yet
        }
