"""Curricula over generated levels: a fixed-capacity level buffer with PLR, robust PLR and
ACCEL, and domain randomisation over a level generator.

The PLR paper runs over an unbounded level space: new levels come from a generator, and a
buffer of fixed capacity keeps the most promising ones (Jiang et al. 2021,
https://arxiv.org/abs/2010.03934; robust PLR, PLR⊥: https://arxiv.org/abs/2110.02439). ACCEL
(Parker-Holder et al. 2022, https://arxiv.org/abs/2203.01302) also *edits* the levels it
replays and keeps the edits whose score is high. :class:`LevelReplay` is all three:

- The task space is a :class:`~currlearn.levels.LevelSpace` of ``capacity + fresh`` rows:
  rows ``[0, capacity)`` are the buffer, rows ``[capacity, capacity + fresh)`` hold levels
  that are being played for the first time (generated, or ACCEL's edits), reused in turn.
  A task is a row id; its parameters are the level, which
  :class:`~currlearn.integrations.torchrl.CurriculumTransform` writes into the env at reset.
- ``sample``: each draw replays a buffer level with probability ``replay_prob`` once the
  buffer holds ``min_fill * capacity`` levels (else 0), drawn by
  :class:`~currlearn.curricula.PrioritizedLevelReplay` over the buffer's slots (its score
  transforms, staleness and ``P_replay = (1 - ρ) P_S + ρ P_C``, the same code); the other draws
  play new levels: ACCEL's queued edits first, then freshly generated ones.
- ``update``: episodes on buffer levels update their scores (PLR's update); episodes on new
  levels propose them for the buffer: a level already in the buffer (same content hash)
  updates that slot; the others fill empty slots first, then replace the lowest-scoring
  levels whose score they exceed (jaxued's rule), the highest-scoring candidates first. With
  an ``editor`` (ACCEL), every finished replay episode queues one edited child of its level.
- ``robust=True`` (PLR⊥, ACCEL): only replayed levels are for training; :attr:`env_replay` and
  :attr:`last_sample_is_replay` tell which (use
  :class:`~currlearn.integrations.replay.ReplayDecisionTransform` to tag transitions).
- ``replay_prob=0`` is domain randomisation over the generator (the buffer still fills, so
  its metrics and plots show what the generator draws and how the agent scores it).

The state (buffer levels, hashes, the PLR state over slots, the queue, the rows in use) is
checkpointed with the curriculum; a resumed run draws the same levels.

An episode that is still running on a buffer level when that level is evicted scores its
successor; at a capacity much larger than the number of envs this is rare. ``fresh`` must
exceed the number of new levels in flight (envs plus a transform's prefetch), or a new level
is overwritten before its episode ends.

Examples:
    >>> import torch
    >>> from currlearn.envs.maze import MazeGenerator
    >>> from currlearn.feedback import episode_feedback
    >>> cur = LevelReplay(MazeGenerator(7, 7, max_walls=10), capacity=4, fresh=8, min_fill=0.5, seed=0)
    >>> tasks = cur.sample(3)  # the buffer is empty: three new levels
    >>> tasks.tolist()
    [4, 5, 6]
    >>> cur.update(episode_feedback(tasks, torch.zeros(3), score=torch.tensor([0.3, 0.1, 0.2])))
    >>> cur.occupancy()
    3
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn import functional as F
from currlearn.base import Curriculum, check_positive_int, check_probability
from currlearn.curricula.plr import PrioritizedLevelReplay
from currlearn.feedback import EpisodeTracker, episode_feedback
from currlearn.levels import LevelEditor, LevelGenerator, LevelSpace, check_levels, level_hash
from currlearn.spaces import DiscreteSpace

__all__ = ["ACCEL", "LevelReplay"]

_EMPTY_HASH = torch.iinfo(torch.int64).min  # the hash of an empty slot (no level hashes to it in practice)


class LevelReplay(Curriculum):
    """PLR / robust PLR / ACCEL over a buffer of generated levels (see the module doc).

    Args:
        generator (callable): ``(num, rng, device) -> TensorDict [num]`` of levels
            (:data:`~currlearn.levels.LevelGenerator`), e.g.
            :class:`~currlearn.envs.maze.MazeGenerator`.
        editor (callable, optional): ``(levels, rng) -> levels`` (ACCEL's edits). Default None.
        capacity (int): buffer slots, >= 1. Default 4000 (jaxued's).
        fresh (int): rows for levels played for the first time, >= 1. Default 1024.
        replay_prob (float): probability that a draw replays a buffer level, in [0, 1].
            Default 0.8 (jaxued's PLR and ACCEL).
        min_fill (float): no replay before ``ceil(min_fill * capacity)`` slots hold levels, in
            [0, 1]. Default 0.5 (jaxued's ``minimum_fill_ratio``).
        robust (bool): PLR⊥: train on replayed levels only. Default True.
        dedup (bool): a new level equal to a buffer level updates that slot instead of taking
            a second one. Default True.
        max_queue (int, optional): ACCEL's queue of edited children awaiting play, at most this
            many (the oldest are dropped). Default ``fresh // 2``.
        score_function, prioritization, temperature, eps, staleness_coef, smoothing: as
            :class:`~currlearn.curricula.PrioritizedLevelReplay` (defaults: ``"positive_value_loss"``,
            ``"rank"``, 0.3, 0.05, 0.3, 1.0: jaxued's).
        num_envs, seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        ValueError: a bad number (the message names it), a generator whose levels are not a
            TensorDict of batch size ``[num]``, or an editor that changes keys, shapes or
            dtypes (checked at the first edit).
    """

    needs_value_estimates = True
    samples_in_trainer = (
        "it generates new levels as it samples, so levels drawn in a worker would never reach the trainer's buffer"
    )

    def __init__(
        self,
        generator: LevelGenerator,
        *,
        editor: LevelEditor | None = None,
        capacity: int = 4000,
        fresh: int = 1024,
        replay_prob: float = 0.8,
        min_fill: float = 0.5,
        robust: bool = True,
        dedup: bool = True,
        max_queue: int | None = None,
        score_function: str = "positive_value_loss",
        prioritization: str = "rank",
        temperature: float = 0.3,
        eps: float = 0.05,
        staleness_coef: float = 0.3,
        smoothing: float = 1.0,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not callable(generator):
            raise TypeError(f"generator must be callable (num, rng, device) -> levels, got {generator!r}.")
        if editor is not None and not callable(editor):
            raise TypeError(f"editor must be callable (levels, rng) -> levels or None, got {editor!r}.")
        self.capacity = check_positive_int("capacity", capacity)
        self.fresh = check_positive_int("fresh", fresh)
        self.replay_prob = check_probability("replay_prob", replay_prob)
        self.min_fill = check_probability("min_fill", min_fill)
        for name, value in (("robust", robust), ("dedup", dedup)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}.")
        self.robust, self.dedup = robust, dedup
        self.max_queue = self.fresh // 2 if max_queue is None else check_positive_int("max_queue", max_queue, minimum=0)
        if self.max_queue > self.fresh:
            raise ValueError(f"max_queue must be <= fresh={self.fresh}, got {self.max_queue}.")
        self.level_generator, self.editor = generator, editor
        device = torch.device("cpu") if device is None else torch.device(device)
        probe_rng = torch.Generator(device=device).manual_seed(0 if seed is None else seed)
        first = generator(1, probe_rng, device)
        space = LevelSpace(_any_template(first), self.capacity + self.fresh, device=device)
        super().__init__(space, num_envs=num_envs, seed=seed, device=device)
        # PLR over the buffer's slots: always replays (the replay decision is made here); a slot
        # is "seen" exactly while it holds a level
        self.replay = PrioritizedLevelReplay(
            DiscreteSpace(num_tasks=self.capacity, device=device),
            score_function=score_function,  # type: ignore[arg-type]
            prioritization=prioritization,  # type: ignore[arg-type]
            temperature=temperature,
            eps=eps,
            staleness_coef=staleness_coef,
            replay_schedule="fixed",
            replay_prob=1.0,
            smoothing=smoothing,
            seed=0,
            device=device,
        )
        self.replay.generator = self.generator  # one random stream, checkpointed once
        self.state = TensorDict(
            {
                "levels": space.table,
                "hash": torch.full((self.capacity,), _EMPTY_HASH, dtype=torch.int64),
                "replay": self.replay.state,
                "next_fresh": torch.zeros((), dtype=torch.int64),
                "queue": torch.zeros(self.fresh, dtype=torch.int64),  # rows of queued edits, a ring
                "queue_head": torch.zeros((), dtype=torch.int64),
                "queue_len": torch.zeros((), dtype=torch.int64),
                "env_replay": torch.ones(num_envs or 0, dtype=torch.bool),
            },
            device=device,
        )
        self.counters["inserted"] = torch.zeros((), dtype=torch.int64, device=device)
        self.counters["evicted"] = torch.zeros((), dtype=torch.int64, device=device)
        self.counters["duplicates"] = torch.zeros((), dtype=torch.int64, device=device)
        self.counters["edits"] = torch.zeros((), dtype=torch.int64, device=device)
        self.counters["skipped_empty"] = torch.zeros((), dtype=torch.int64, device=device)
        self._last_replay = torch.zeros(0, dtype=torch.bool, device=device)
        self._edits_checked = False

    # ------------------------------------------------------------------ views
    @property
    def score_function(self) -> str:
        """The PLR score function (what :meth:`make_tracker` computes per episode)."""
        return self.replay.score_function

    @property
    def score_key(self) -> str:
        """The feedback key :meth:`update` reads (``"value_mean"`` for MaxMC, else ``"score"``)."""
        return self.replay.score_key

    @property
    def env_replay(self) -> Tensor:
        """Per-env decision of the last reset: True = a replayed buffer level, ``[num_envs]``."""
        return self.state["env_replay"]

    @property
    def last_sample_is_replay(self) -> Tensor:
        """Shape ``[n]``, bool: which tasks of the last :meth:`sample` call were replays."""
        return self._last_replay

    def make_tracker(self, task_key: Any = ("next", "task_id"), **score_keys: Any) -> EpisodeTracker:
        """The PLR tracker (see :meth:`PrioritizedLevelReplay.make_tracker`)."""
        return self.replay.make_tracker(task_key, **score_keys)

    def occupancy(self) -> int:
        """Slots that hold a level (syncs with the host)."""
        return int(self.replay.state["num_seen"])

    def buffer_levels(self) -> tuple[Tensor, TensorDict, Tensor]:
        """The buffer's occupied slots, their levels and scores (copies)."""
        slots = self.replay.state["seen"].nonzero().squeeze(1)
        return slots, self.space.levels(slots), self.replay.state["score"].index_select(0, slots)

    def levels(self, tasks: Tensor) -> TensorDict:
        """The levels of ``tasks`` (row ids), as the env receives them."""
        return self.space.levels(tasks)

    # ------------------------------------------------------------------ drawing
    def _replay_now(self) -> float:
        filled = self.replay._num_seen
        return self.replay_prob if filled > 0 and filled >= math.ceil(self.min_fill * self.capacity) else 0.0

    def _take_rows(self, num: int) -> Tensor:
        """``num`` fresh rows, in turn.

        Raises:
            ValueError: ``num > fresh`` (rows would be reused within one call).
        """
        if num > self.fresh:
            raise ValueError(
                f"{num} new levels at once need as many fresh rows, but fresh={self.fresh}; "
                f"build the curriculum with fresh >= {num}."
            )
        st = self.state
        rows = self.capacity + (st["next_fresh"] + torch.arange(num, device=self.device)) % self.fresh
        st["next_fresh"].copy_((st["next_fresh"] + num) % self.fresh)
        return rows

    def _new_levels(self, num: int) -> Tensor:
        """Rows of ``num`` levels to play for the first time: queued edits, then generated ones."""
        st = self.state
        queued = min(int(st["queue_len"]), num)
        parts = []
        if queued:
            head = int(st["queue_head"])
            parts.append(st["queue"].index_select(0, (head + torch.arange(queued, device=self.device)) % self.fresh))
            st["queue_head"].copy_((head + queued) % self.fresh)
            st["queue_len"] -= queued
        if num > queued:
            rows = self._take_rows(num - queued)
            levels = check_levels(
                self.level_generator(num - queued, self.generator, self.device),
                self.space.template,
                num - queued,
                "generator",
            )
            self.space.write(rows, levels)
            parts.append(rows)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        p = self._replay_now()
        is_replay = torch.rand(num, generator=self.generator, device=self.device) < p
        k = int(is_replay.sum())
        tasks = torch.empty(num, dtype=torch.int64, device=self.device)
        if k:
            tasks[is_replay] = self.replay.sample(k)
        if k < num:
            tasks[~is_replay] = self._new_levels(num - k)
        if env_ids is not None and self.num_envs is not None:
            self.state["env_replay"].index_copy_(0, env_ids, is_replay if self.robust else torch.ones_like(is_replay))
        self._last_replay = is_replay
        return tasks

    # ------------------------------------------------------------------ learning
    def _update(self, feedback: TensorDictBase) -> None:
        self.replay.check_score_key(feedback, type(self).__name__)
        valid = F.finite(feedback[self.score_key].double())
        if not bool(valid.all()):
            self.counters["skipped_nonfinite"] += (~valid).sum()
            feedback = feedback[valid]
        task = feedback["task"]
        in_buffer = task < self.capacity
        # an episode on an empty slot played no level of the buffer (none was drawn there)
        empty = in_buffer & ~self.replay.state["seen"].index_select(0, task.clamp_max(self.capacity - 1))
        # one sync for both counts; a batch all on one side is not copied (boolean indexing
        # of a TensorDict costs hundreds of microseconds)
        num_empty, num_in = torch.stack([empty.sum(), in_buffer.sum()]).tolist()
        if num_empty:
            self.counters["skipped_empty"] += num_empty
            feedback, in_buffer = feedback[~empty], in_buffer[~empty]
            num_in -= num_empty
        n = feedback.batch_size[0]
        if num_in:
            replayed = feedback if num_in == n else feedback[in_buffer]
            self._replay_update(replayed)
            if self.editor is not None:
                self._queue_edits(torch.unique(replayed["task"]))
        if num_in < n:
            self._propose(feedback if num_in == 0 else feedback[~in_buffer])

    def _replay_update(self, feedback: TensorDictBase) -> None:
        """The inner PLR's update of buffer slots, without its input checks: :meth:`update`
        made them already (finite values, tasks inside the buffer)."""
        replay = self.replay
        replay.counters["episodes"] += feedback.batch_size[0]
        replay.decision_version += 1
        replay._update(feedback)

    def _queue_edits(self, slots: Tensor) -> None:
        """One edited child per slot, written into fresh rows and queued for play."""
        st = self.state
        children = self.editor(self.space.levels(slots), self.generator)  # type: ignore[misc]
        if not self._edits_checked:
            check_levels(children, self.space.template, slots.numel(), "editor")
            self._edits_checked = True
        rows = self._take_rows(slots.numel())
        self.space.write(rows, children)
        self.counters["edits"] += slots.numel()
        length, head = int(st["queue_len"]), int(st["queue_head"])
        at = (head + length + torch.arange(rows.numel(), device=self.device)) % self.fresh
        st["queue"].index_copy_(0, at, rows)
        length += rows.numel()
        if length > self.max_queue:  # drop the oldest
            head = (head + length - self.max_queue) % self.fresh
            length = self.max_queue
        st["queue_head"].fill_(head)
        st["queue_len"].fill_(length)

    def _propose(self, feedback: TensorDictBase) -> None:
        """Insert the new levels of ``feedback`` (rows >= capacity) by their mean score."""
        # one grouping for the score and the return (MaxMC needs it: PLR's update derives it)
        rows, count, (total, ret_total) = F.group_by_task(
            feedback["task"], feedback[self.score_key].double(), feedback["return"].double()
        )
        score = total / count
        ret = ret_total / count  # the mean return of the level's episodes
        levels = self.space.levels(rows)
        hashes = level_hash(levels)
        st = self.state
        # the same level twice among the candidates: the first one stands
        first = torch.unique(hashes, return_inverse=True)[1]
        keep = torch.zeros(first.max() + 1, dtype=torch.int64, device=self.device).fill_(-1)
        keep.scatter_reduce_(0, first, torch.arange(rows.numel(), device=self.device), "amin", include_self=False)
        pick = keep[keep >= 0]
        rows, score, hashes, levels = rows[pick], score[pick], hashes[pick], levels[pick]
        extra = {} if self.score_function != "max_mc" else {"return": ret[pick]}
        if self.dedup:  # a level already in the buffer: an update of its slot
            sorted_hash, order = torch.sort(st["hash"])
            at = torch.searchsorted(sorted_hash, hashes).clamp_max(self.capacity - 1)
            dup = sorted_hash.index_select(0, at) == hashes
            if bool(dup.any()):
                slots = order.index_select(0, at[dup])
                self.counters["duplicates"] += dup.sum()
                self._replay_update(self._feedback(slots, score[dup], {k: v[dup] for k, v in extra.items()}))
                fresh = ~dup
                rows, score, hashes, levels = rows[fresh], score[fresh], hashes[fresh], levels[fresh]
                extra = {k: v[fresh] for k, v in extra.items()}
        m = rows.numel()
        if m == 0:
            return
        by_score = torch.sort(score, descending=True, stable=True).indices
        seen = self.replay.state["seen"]
        free = (~seen).nonzero().squeeze(1)
        f = min(free.numel(), m)
        targets = [free[:f]]
        chosen = [by_score[:f]]
        rest = by_score[f:]
        if rest.numel():
            occupied = seen.nonzero().squeeze(1)
            slot_score = self.replay.state["score"].index_select(0, occupied).double()
            lowest = torch.sort(slot_score, stable=True).indices[: rest.numel()]
            r = lowest.numel()
            beats = score.index_select(0, rest[:r]) > slot_score.index_select(0, lowest)
            evict = occupied.index_select(0, lowest)[beats]
            self.counters["evicted"] += evict.numel()
            targets.append(evict)
            chosen.append(rest[:r][beats])
        targets_t, chosen_t = torch.cat(targets), torch.cat(chosen)
        if targets_t.numel() == 0:
            return
        self.space.write(targets_t, levels[chosen_t])
        st["hash"].index_copy_(0, targets_t, hashes.index_select(0, chosen_t))
        self.replay.forget(targets_t)
        self._replay_update(
            self._feedback(targets_t, score.index_select(0, chosen_t), {k: v[chosen_t] for k, v in extra.items()})
        )
        self.counters["inserted"] += targets_t.numel()

    def _feedback(self, slots: Tensor, score: Tensor, extra: dict[str, Tensor]) -> TensorDict:
        key = self.score_key
        ret = extra.get("return", torch.zeros_like(score))
        fb = episode_feedback(slots, ret.float(), score=score.float())
        if key != "score":
            fb[key] = score.float()
        return fb

    # ------------------------------------------------------------------ state
    def _on_load(self) -> None:
        self.space.table = self.state["levels"]
        self.replay.state = self.state["replay"]
        self.replay.generator = self.generator
        self.replay.decision_version += 1
        self.replay._on_load()

    def to(self, device: torch.device | str) -> LevelReplay:  # noqa: D102
        self.replay.to(device)
        self.state["replay"] = self.replay.state
        super().to(device)
        return self

    def _metrics(self) -> dict[str, Tensor | float]:
        st = self.replay.state
        seen = st["seen"]
        num = st["num_seen"]
        out: dict[str, Tensor | float] = {
            "buffer_occupancy": num.double() / self.capacity,
            "replay_probability": self._replay_now(),
            "queue_length": self.state["queue_len"],
        }
        if int(num) == 0:
            return out
        score = st["score"][seen].double()
        q = torch.quantile(score, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=score.device))
        out.update({"buffer_score_q10": q[0], "buffer_score_median": q[1], "buffer_score_q90": q[2]})
        stats = getattr(self.level_generator, "level_metrics", None)
        if callable(stats):
            levels = self.space.levels(seen.nonzero().squeeze(1))
            out.update({f"buffer_{k}": v.double().mean() for k, v in stats(levels).items()})
        return out


class ACCEL(LevelReplay):
    """ACCEL (Parker-Holder et al. 2022): robust PLR over a level buffer whose replayed levels
    are edited, the edits played (for scoring only) and kept when their score is high: a
    :class:`LevelReplay` whose ``editor`` is required.

    Args:
        generator, editor: as :class:`LevelReplay` (``editor`` required), e.g.
            :class:`~currlearn.envs.maze.MazeGenerator` (ACCEL starts from simple levels:
            ``max_walls=0`` gives empty rooms) and :class:`~currlearn.envs.maze.MazeEditor`.
        capacity, fresh, replay_prob, min_fill, robust, dedup, max_queue, score_function,
        prioritization, temperature, eps, staleness_coef, smoothing, num_envs, seed, device:
            as :class:`LevelReplay`.
    """

    def __init__(
        self,
        generator: LevelGenerator,
        editor: LevelEditor,
        *,
        capacity: int = 4000,
        fresh: int = 1024,
        replay_prob: float = 0.8,
        min_fill: float = 0.5,
        robust: bool = True,
        dedup: bool = True,
        max_queue: int | None = None,
        score_function: str = "positive_value_loss",
        prioritization: str = "rank",
        temperature: float = 0.3,
        eps: float = 0.05,
        staleness_coef: float = 0.3,
        smoothing: float = 1.0,
        num_envs: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if editor is None:
            raise ValueError("ACCEL needs an editor (levels, rng) -> edited levels, got None.")
        super().__init__(
            generator,
            editor=editor,
            capacity=capacity,
            fresh=fresh,
            replay_prob=replay_prob,
            min_fill=min_fill,
            robust=robust,
            dedup=dedup,
            max_queue=max_queue,
            score_function=score_function,
            prioritization=prioritization,
            temperature=temperature,
            eps=eps,
            staleness_coef=staleness_coef,
            smoothing=smoothing,
            num_envs=num_envs,
            seed=seed,
            device=device,
        )


def _any_template(levels: object) -> TensorDictBase:
    """The per-level template of a generator's first output (its keys, shapes, dtypes)."""
    if not isinstance(levels, TensorDictBase) or levels.batch_dims != 1 or levels.batch_size[0] != 1:
        raise ValueError(
            "generator must return a TensorDict of batch size [num]; for num=1 it returned "
            f"{type(levels).__name__} {list(getattr(levels, 'batch_size', []))}."
        )
    return levels[0]
