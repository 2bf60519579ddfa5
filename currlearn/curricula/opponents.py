"""Opponent curricula: which opponent from a pool of past agents (and scripted bots) to play next.

The task is an opponent: a slot of the curriculum's pool. The pool holds up to ``capacity``
snapshots of a policy's parameters, stacked in one TensorDict ``state["params"]`` of batch size
``[capacity]`` (so a batched opponent can gather the parameters of each env's opponent in one
indexing), and scripted bots, which take a slot without parameters and are never evicted.
Feedback is the episode's outcome from the learner's side, as ``success``: 1 a win, 0.5 a draw,
0 a loss; per opponent the curriculum keeps the games and the learner's wins (draws count half).

- :class:`SelfPlay`: always the latest snapshot.
- :class:`FictitiousSelfPlay`: uniform over the pool (Heinrich et al. 2015, "Fictitious
  Self-Play in Extensive-Form Games").
- :class:`PrioritizedFictitiousSelfPlay`: opponents weighted by ``f(p)``, ``p`` the learner's win
  rate against each, as in AlphaStar (Vinyals et al. 2019, "Grandmaster level in StarCraft II
  using multi-agent reinforcement learning", Methods, "Prioritized fictitious self-play"):
  ``"hard"`` ``(1 - p)^k`` (the opponents it loses to), ``"variance"`` ``p (1 - p)`` (the even
  ones). ``mix_latest`` plays the latest snapshot with that probability (self-play mixed in).

Snapshots are added with :meth:`OpponentCurriculum.add` (a TensorDict of parameters, e.g.
``TensorDict.from_module(policy)``, or the module itself), or every ``snapshot_every``
iterations of :meth:`~currlearn.base.Curriculum.step` from the module given to :meth:`track`.
When the pool is full, a new snapshot replaces the oldest one (``eviction="oldest"``, the
window of ML-Agents' self-play) or a uniformly drawn one (``"random"``); the latest snapshot and
the bots stay. The pool and the win counts are part of :meth:`state_dict` (the snapshots
included: ``capacity`` times the policy's size), so a resumed run samples exactly as an
uninterrupted one.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from currlearn.feedback import episode_feedback
    >>> cur = PrioritizedFictitiousSelfPlay(capacity=3, weighting="variance", seed=0)
    >>> for w in (0.0, 1.0, 2.0):
    ...     _ = cur.add(TensorDict({"w": torch.full((2,), w)}))
    >>> outcome = torch.tensor([1.0, 1.0, 0.0, 1.0])  # 2 wins on opponent 0, a loss and a win on 1
    >>> cur.update(episode_feedback(torch.tensor([0, 0, 1, 1]), torch.zeros(4), success=outcome))
    >>> cur.weights()  # p = 1, 1/2 and (unplayed) 1/2: p (1 - p) = 0, 1/4, 1/4
    tensor([0.0000, 0.5000, 0.5000])
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from currlearn.base import DiscreteCurriculum, check_choice, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import DiscreteSpace

__all__ = ["FictitiousSelfPlay", "OpponentCurriculum", "PrioritizedFictitiousSelfPlay", "SelfPlay"]

EVICTIONS = ("oldest", "random")
WEIGHTINGS = ("hard", "variance")


def _as_params(params: Any) -> TensorDictBase:
    if isinstance(params, nn.Module):
        return TensorDict.from_module(params).detach()
    if isinstance(params, TensorDictBase):
        return params.detach()
    raise TypeError(f"params must be a TensorDict of parameters or an nn.Module, got {type(params).__name__}.")


class OpponentCurriculum(DiscreteCurriculum):
    """A pool of opponents (policy snapshots and scripted bots) and the learner's results
    against each; subclasses choose the distribution over the pool (:meth:`_opponent_weights`).

    Args:
        capacity (int): pool slots, >= 1.
        template (TensorDict or nn.Module, optional): the parameters' structure (keys, shapes,
            dtypes), allocating ``state["params"]`` now; default: at the first :meth:`add` (or
            :meth:`load_state_dict`). Give it when the pool's tensors must exist before any
            snapshot (collector workers: their decision buffers have fixed shapes).
        snapshot_every (int): with :meth:`track`, add a snapshot of the tracked module every
            this many iterations (0: only when :meth:`add` is called). Default 0.
        eviction (str): ``"oldest"`` (default) or ``"random"``: which snapshot a new one
            replaces in a full pool.
        metric (str or callable): the learner's result per game in [0, 1]: ``"success"``
            (default: a win 1, else 0, or the value a hand-made feedback gives, a draw 0.5),
            ``"outcome"`` (the ``"outcome"`` entry at a game's last step, 1 / 0.5 / 0 for a
            win / draw / loss, as :class:`~currlearn.envs.TicTacToeEnv` writes it), or any
            metric of :mod:`currlearn.metrics`.
        num_envs, seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        ValueError: a bad number or choice (the message names it).
    """

    def __init__(
        self,
        capacity: int = 16,
        *,
        template: Any = None,
        snapshot_every: int = 0,
        eviction: str = "oldest",
        metric: MetricLike = "success",
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.capacity = check_positive_int("capacity", capacity)
        super().__init__(DiscreteSpace(num_tasks=self.capacity), num_envs=num_envs, seed=seed, device=device)
        self.snapshot_every = check_positive_int("snapshot_every", snapshot_every, minimum=0)
        self.eviction = check_choice("eviction", eviction, EVICTIONS)
        self._set_metric(metric)
        c, dev = self.capacity, self.device
        self.state = TensorDict(
            {
                "valid": torch.zeros(c, dtype=torch.bool, device=dev),
                "bot": torch.full((c,), -1, dtype=torch.int64, device=dev),  # scripted bot id, -1: a snapshot
                "added": torch.full((c,), -1, dtype=torch.int64, device=dev),  # add order (-1: empty)
                "games": torch.zeros(c, dtype=torch.float64, device=dev),
                "wins": torch.zeros(c, dtype=torch.float64, device=dev),  # draws count half
                "latest": torch.full((), -1, dtype=torch.int64, device=dev),
                "adds": torch.zeros((), dtype=torch.int64, device=dev),
            },
            device=dev,
        )
        self._tracked: nn.Module | None = None
        if template is not None:
            self._allocate(_as_params(template))

    # ------------------------------------------------------------------ the pool
    def _allocate(self, params: TensorDictBase) -> None:
        stacked = params.to(self.device).unsqueeze(0).expand(self.capacity).clone().zero_()
        self.state["params"] = stacked

    @property
    def snapshots(self) -> TensorDictBase | None:
        """The pool's parameters, batch size ``[capacity]`` (zeros in empty and bot slots), or
        None before the first snapshot.
        """
        return self.state.get("params", None)

    @property
    def pool_size(self) -> int:
        """Filled slots (snapshots and bots). Syncs with the host."""
        return int(self.state["valid"].sum())

    @property
    def latest(self) -> int:
        """The slot of the latest snapshot, -1 before the first. Syncs with the host."""
        return int(self.state["latest"])

    def opponent_params(self, opponents: Tensor) -> TensorDictBase:
        """The parameters of ``opponents`` (slot ids, any shape), batch size ``opponents.shape``."""
        if self.snapshots is None:
            raise ValueError("the opponent pool has no snapshot yet: add(params) before asking for parameters.")
        self.space.check_tasks(opponents, "opponents")
        return self.snapshots[opponents]

    def _check_params(self, params: TensorDictBase) -> TensorDictBase:
        theirs = dict(params.items(True, True))
        for k, v in theirs.items():  # before a first snapshot allocates the pool in its shapes
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise ValueError(f"params[{k!r}] has NaN or infinite values; the pool keeps finite snapshots only.")
        if self.snapshots is None:
            self._allocate(params)
        expected = dict(self.snapshots.items(True, True))  # type: ignore[union-attr]
        if set(theirs) != set(expected):
            raise ValueError(
                f"params has keys {sorted(map(str, theirs))[:6]}, the pool's snapshots have "
                f"{sorted(map(str, expected))[:6]}: snapshot the same policy."
            )
        for k, v in theirs.items():
            want = expected[k]
            if tuple(v.shape) != tuple(want.shape[1:]) or v.dtype != want.dtype:
                raise ValueError(
                    f"params[{k!r}] is {v.dtype} {list(v.shape)}, the pool's snapshots have {want.dtype} "
                    f"{list(want.shape[1:])}: snapshot the same policy."
                )
        return params

    def _free_slot(self) -> int | None:
        free = (~self.state["valid"]).nonzero()
        return int(free[0, 0]) if free.numel() else None

    def _slot_for_new(self) -> int:
        free = self._free_slot()
        if free is not None:
            return free
        st = self.state
        evictable = (st["bot"] < 0) & (torch.arange(self.capacity, device=self.device) != st["latest"])
        if not bool(evictable.any()):
            raise ValueError(
                f"the opponent pool (capacity={self.capacity}) is full of bots and the latest snapshot: "
                "raise capacity to keep a window of snapshots."
            )
        candidates = evictable.nonzero().squeeze(1)
        if self.eviction == "oldest":
            return int(candidates[st["added"][candidates].argmin()])
        pick = torch.randint(candidates.numel(), (), generator=self.generator, device=self.device)
        return int(candidates[pick])

    def _take(self, slot: int, bot: int) -> None:
        st = self.state
        st["valid"][slot] = True
        st["bot"][slot] = bot
        st["added"][slot] = st["adds"]
        st["adds"] += 1
        st["games"][slot] = 0.0
        st["wins"][slot] = 0.0
        self.decision_version += 1

    def add(self, params: Any) -> int:
        """Add a snapshot of a policy (a TensorDict of its parameters or the module); it becomes
        the latest. Returns its slot.

        Raises:
            TypeError: ``params`` is neither a TensorDict nor a module.
            ValueError: other keys, shapes or dtypes than the pool's snapshots (the message
                names the entry), non-finite values, or a pool of bots only.
        """
        params = self._check_params(_as_params(params))
        slot = self._slot_for_new()
        self.snapshots[slot] = params.to(self.device)  # type: ignore[index]
        self._take(slot, -1)
        self.state["latest"].fill_(slot)
        return slot

    def add_bot(self, bot: int = 0) -> int:
        """Give a scripted opponent (``bot``: its id, >= 0, for whoever plays the opponents) a
        slot; bots are never evicted. Returns the slot.
        """
        bot = check_positive_int("bot", bot, minimum=0)
        slot = self._free_slot()
        if slot is None:
            raise ValueError(f"the opponent pool (capacity={self.capacity}) is full: add bots before snapshots.")
        self._take(slot, bot)
        return slot

    def track(self, module: nn.Module) -> OpponentCurriculum:
        """Snapshot ``module`` every ``snapshot_every`` iterations of :meth:`step` (and now, if
        the pool has no snapshot yet). Returns self.
        """
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}.")
        self._tracked = module
        if self.latest < 0:
            self.add(module)
        return self

    def _on_step(self) -> None:
        if self._tracked is not None and self.snapshot_every and self.iteration % self.snapshot_every == 0:
            self.add(self._tracked)

    # ------------------------------------------------------------------ feedback and sampling
    def _update(self, feedback: TensorDictBase) -> None:
        task = feedback["task"].long()
        outcome, known = self._metric_values(feedback, torch.float64)
        outside = known & ((outcome < -1e-6) | (outcome > 1 + 1e-6))
        if bool(outside.any()):
            raise ValueError(
                f"metric={self.metric_name!r} gave {float(outcome[outside][0])!r} for a game: an opponent curriculum "
                "counts results in [0, 1] (1 a win, 0.5 a draw, 0 a loss): use metric='outcome' or 'success'."
            )
        outcome = outcome.clamp(0.0, 1.0)  # (rounding: -1e-25 is a loss)
        st = self.state
        st["games"].index_add_(0, task, known.to(torch.float64))
        st["wins"].index_add_(0, task, torch.where(known, outcome, torch.zeros_like(outcome)))

    def win_rates(self) -> Tensor:
        """The learner's win rate against each slot (draws half), ``[capacity]``; 1/2 for
        opponents not played yet (and for empty slots).
        """
        st = self.state
        rate = (st["wins"] / st["games"].clamp_min(1.0)).clamp_(0.0, 1.0)
        return torch.where(st["games"] > 0, rate, torch.full_like(rate, 0.5))

    @abstractmethod
    def _opponent_weights(self) -> Tensor:
        """Non-negative weights over the filled slots, ``[capacity]`` (zeros elsewhere allowed)."""

    def _compute_weights(self) -> Tensor:
        valid = self.state["valid"]
        if not bool(valid.any()):
            raise ValueError(
                f"the opponent pool of {type(self).__name__} is empty: add(params) a snapshot (or track(policy)) "
                "or add_bot() before sampling."
            )
        w = torch.where(valid, self._opponent_weights().to(torch.float64), torch.zeros((), dtype=torch.float64))
        if not bool(w.sum() > 0):  # e.g. "hard" when every opponent is beaten: uniform over the pool
            w = valid.to(torch.float64)
        return self._adjust(w / w.sum()).float()

    def _adjust(self, w: Tensor) -> Tensor:
        """The final distribution from the normalised opponent weights. Default: unchanged."""
        return w

    def _metrics(self) -> dict[str, Tensor | float]:
        st = self.state
        out: dict[str, Tensor | float] = {"pool_size": st["valid"].sum()}
        played = st["valid"] & (st["games"] > 0)
        if bool(played.any()):
            out["win_rate"] = (st["wins"][played].sum() / st["games"][played].sum()).float()
        rates = self.win_rates()
        for slot in st["valid"][:32].nonzero().squeeze(1).tolist():
            out[f"opponent/{slot}/win_rate"] = rates[slot].float()
        return out

    # ------------------------------------------------------------------ checkpoints
    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`~currlearn.base.Curriculum.check_state_dict`; a pool without snapshots yet
        first takes the saved snapshots' structure (and drops it again if the state is refused)."""
        if self.snapshots is None and isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict):
            incoming = [k for k in state_dict["state"] if k.startswith("params.")]
            if incoming:  # a pool without snapshots yet takes the saved snapshots' structure
                saved = TensorDict({tuple(k.split(".")[1:]): state_dict["state"][k][0] for k in incoming}, [])
                self._allocate(saved)
                try:
                    super().check_state_dict(state_dict)
                except ValueError:
                    del self.state["params"]
                    raise
                return
        super().check_state_dict(state_dict)


class SelfPlay(OpponentCurriculum):
    """Self-play: every env plays the latest snapshot (bots only if there is no snapshot).

    Args: see :class:`OpponentCurriculum`.
    """

    def _opponent_weights(self) -> Tensor:
        latest = self.state["latest"]
        w = torch.zeros(self.capacity, dtype=torch.float64, device=self.device)
        if bool(latest >= 0):
            w[latest] = 1.0
        return w


class FictitiousSelfPlay(OpponentCurriculum):
    """Fictitious self-play: opponents drawn uniformly from the pool (snapshots and bots).

    Args: see :class:`OpponentCurriculum`.
    """

    def _opponent_weights(self) -> Tensor:
        return torch.ones(self.capacity, dtype=torch.float64, device=self.device)


class PrioritizedFictitiousSelfPlay(OpponentCurriculum):
    """Prioritized fictitious self-play (AlphaStar): opponent ``i`` with weight ``f(p_i)``,
    ``p_i`` the learner's win rate against it (1/2 before the first game).

    ``P(i) = (1 - mix_latest) f(p_i) / sum_j f(p_j) + mix_latest [i = latest]``.

    Args:
        weighting (str): ``"hard"``: ``f(p) = (1 - p)^exponent``; ``"variance"``:
            ``f(p) = p (1 - p)``. Default ``"hard"``. When every ``f(p)`` is 0 (every opponent
            always beaten, under ``"hard"``), the pool is drawn uniformly.
        exponent (float): ``k`` of ``"hard"``, > 0. Default 2 (AlphaStar's
            ``f_hard(x) = (1 - x)^p``; its main agents' ``p`` is 2 in the pseudocode).
        mix_latest (float): probability of the latest snapshot instead, in [0, 1]. Default 0.
        capacity, template, snapshot_every, eviction, num_envs, seed, device: see
            :class:`OpponentCurriculum`.
    """

    def __init__(
        self,
        capacity: int = 16,
        *,
        weighting: str = "hard",
        exponent: float = 2.0,
        mix_latest: float = 0.0,
        template: Any = None,
        snapshot_every: int = 0,
        eviction: str = "oldest",
        metric: MetricLike = "success",
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.weighting = check_choice("weighting", weighting, WEIGHTINGS)
        if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not 0 < exponent < float("inf"):
            raise ValueError(f"exponent must be a finite number > 0, got {exponent!r}.")
        self.exponent = float(exponent)
        self.mix_latest = check_probability("mix_latest", mix_latest)
        super().__init__(
            capacity,
            template=template,
            snapshot_every=snapshot_every,
            eviction=eviction,
            metric=metric,
            num_envs=num_envs,
            seed=seed,
            device=device,
        )

    def _priorities(self) -> Tensor:
        p = self.win_rates()
        return (1.0 - p).pow(self.exponent) if self.weighting == "hard" else p * (1.0 - p)

    def _opponent_weights(self) -> Tensor:
        return self._priorities()

    def _adjust(self, w: Tensor) -> Tensor:
        latest = self.state["latest"]
        if self.mix_latest == 0.0 or not bool(latest >= 0):
            return w
        w = (1.0 - self.mix_latest) * w
        w[latest] += self.mix_latest
        return w
