"""Batched tic-tac-toe against an opponent chosen per env: a two-player zero-sum game in pure torch.

The learner and the opponent share a 3x3 board per env. The opponent's moves are made inside
:meth:`TicTacToeEnv.step` (and at reset, when it moves first) by ``opponent(board, legal,
opponent_ids) -> cells``, called once for all envs whose opponent is to move: ``board``
``[m, 9]`` float from the opponent's side (+1 its marks, -1 the learner's), ``legal`` ``[m, 9]``
bool, ``opponent_ids`` ``[m]`` the slot each env plays (``("params", "task_id")``, which a
:class:`~currlearn.integrations.torchrl.CurriculumTransform` over an opponent curriculum writes
at reset). Without one, the ids name the env's scripted bots (:data:`BOTS`): 0 ``"block"``
(:func:`scripted_move`: win if it can, else block with probability ``block_prob``, else the
centre, else a random cell), 1 ``"random"`` (a uniformly drawn free cell) and 2 ``"perfect"``
(:func:`perfect_move`: a minimax-optimal cell, ties drawn at random; it never loses).

Observation ``"observation"`` ``[n, 9]`` float from the learner's side and ``"action_mask"``
``[n, 9]``; action ``[n]`` int64, a cell 0-8. A learner's move on a taken cell loses the game. An
opponent's move on a taken cell is replaced by its first free cell. Reward +1 win, -1 loss, 0
draw, at the end; ``"success"`` is True on a win; ``"outcome"`` is 1 / 0.5 / 0 (win / draw /
loss) on the last step. Who moves first is drawn per game from the env's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from currlearn.envs._parts import done_spec, seeded_generator

__all__ = ["BOTS", "LINES", "TicTacToeEnv", "minimax_values", "perfect_move", "scripted_move", "winner"]

LINES = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]])
"""The 8 winning lines of the 3x3 board (cells numbered row by row)."""

BOTS = ("block", "random", "perfect")
"""The scripted bots of :class:`TicTacToeEnv`, by id."""

Opponent = Callable[[Tensor, Tensor, Tensor], Tensor]
_POW3 = 3 ** torch.arange(9)
_Q: Tensor | None = None
_Q_ON: dict[torch.device, Tensor] = {}  # the solution, copied once to each device that plays it


def winner(board: Tensor) -> Tensor:
    """``[..., 9]`` boards -> ``[...]``: +1 if the +1 player has a line, -1 for the -1 player, else 0."""
    sums = board[..., LINES.to(board.device)].sum(-1)
    return (sums == 3).any(-1).to(board.dtype) - (sums == -3).any(-1).to(board.dtype)


def scripted_move(
    board: Tensor, legal: Tensor, generator: torch.Generator | None = None, block_prob: float = 1.0
) -> Tensor:
    """The baseline opponent, for ``[m, 9]`` boards from the mover's side (+1 its marks): a
    winning cell if there is one, else (with probability ``block_prob``) a cell that blocks the
    other's line, else the centre, else a uniformly drawn free cell. Returns ``[m]`` int64."""
    m = board.shape[0]
    eye = torch.eye(9, dtype=board.dtype, device=board.device)
    tries = board.unsqueeze(1) + eye  # [m, 9 moves, 9 cells]
    wins = (winner(tries) > 0) & legal
    blocks = (winner(board.unsqueeze(1) - eye) < 0) & legal
    noise = torch.rand((m, 9), generator=generator, device=board.device)
    if block_prob < 1.0:
        blocks &= torch.rand((m, 1), generator=generator, device=board.device) < block_prob
    score = noise + 2.0 * legal[:, 4:5].float() * eye[4] + 4.0 * blocks + 8.0 * wins
    return torch.where(legal, score, torch.full_like(score, -1.0)).argmax(-1)


def _board_index(board: Tensor) -> Tensor:
    """``[..., 9]`` boards (values -1, 0, 1) -> ``[...]`` int64 indices in ``[0, 3^9)``."""
    return ((board.long() + 1) * _POW3.to(board.device)).sum(-1)


def minimax_values() -> Tensor:
    """The game's solution: ``[3^9, 9]`` float, the minimax value for the player to move (+1
    its marks) of each cell of each board (indexed by the base-3 digits ``board + 1``, cell 0
    the lowest): 1 a forced win, 0 a draw, -1 a forced loss; -2 for a taken cell. Solved once by
    backward induction over all boards (9 sweeps, each a batched one-move lookahead) and cached.

    Examples:
        >>> q = minimax_values()
        >>> float(q[_board_index(torch.zeros(9))].max())  # the empty board: a draw
        0.0
    """
    global _Q
    if _Q is None:
        boards = torch.arange(3**9).unsqueeze(1) // _POW3 % 3 - 1  # [N, 9], the mover's marks +1
        after = boards.unsqueeze(1) + torch.eye(9, dtype=torch.int64)  # [N, move, 9]
        legal = boards == 0
        wins = winner(after) > 0
        full = (after != 0).all(-1)
        reply = _board_index(-after)  # the board after the move, from the other side
        value = torch.zeros(3**9)
        for _ in range(10):  # a game has at most 9 moves: 9 sweeps reach every board's value
            q = torch.where(wins, 1.0, torch.where(full, 0.0, -value[reply]))
            q = torch.where(legal, q, -2.0)
            value = q.max(-1).values
        _Q = q
    return _Q


def perfect_move(board: Tensor, legal: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A minimax-optimal cell for each of the ``[m, 9]`` boards from the mover's side (ties
    drawn uniformly with ``generator``); ``[m]`` int64. It never loses a game."""
    table = _Q_ON.get(board.device)
    if table is None:
        table = _Q_ON[board.device] = minimax_values().to(board.device)
    q = table[_board_index(board)]
    q = torch.where(legal, q, torch.full_like(q, -3.0))
    best = q == q.max(-1, keepdim=True).values
    noise = torch.rand(q.shape, generator=generator, device=board.device)
    return torch.where(best, noise, torch.full_like(noise, -1.0)).argmax(-1)


class TicTacToeEnv(EnvBase):
    """``num_envs`` games of tic-tac-toe, each against the opponent its ``("params",
    "task_id")`` names (see the module doc).

    Args:
        num_envs (int): games played at once, >= 1.
        opponent (callable, optional): ``(board, legal, opponent_ids) -> cells``; default the
            scripted bot each id names (:data:`BOTS`).
        block_prob (float): the ``"block"`` bot blocks a line with this probability (in [0, 1]);
            default 0.5, a bot that a trained policy can beat (at 1 it loses only to forks).
        device: the env's device. Default CPU.
        seed (int, optional): seed of the env's generator (first mover, the bot's random cells).

    Raises:
        ValueError: ``num_envs`` is not an int >= 1; ``opponent`` is not callable; without
            ``opponent``, a game's opponent id names no scripted bot.
    """

    def __init__(
        self,
        num_envs: int = 16,
        *,
        opponent: Opponent | None = None,
        block_prob: float = 0.5,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(block_prob, bool) or not isinstance(block_prob, (int, float)) or not 0 <= block_prob <= 1:
            raise ValueError(f"block_prob must be a number in [0, 1], got {block_prob!r}")
        self.block_prob = float(block_prob)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if opponent is not None and not callable(opponent):
            raise ValueError(f"opponent must be callable (board, legal, opponent_ids) -> cells, got {opponent!r}")
        device = torch.device("cpu") if device is None else torch.device(device)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.num_envs = num_envs
        self.opponent = opponent
        self.rng: torch.Generator | None = None
        self._make_specs()
        self.set_seed(torch.Generator().seed() if seed is None else seed)

    def _make_specs(self) -> None:
        n = self.num_envs
        state = Composite(
            board=Bounded(-1, 1, (n, 9), dtype=torch.int64),
            params=Composite(task_id=Unbounded((n,), dtype=torch.int64), shape=(n,)),
            shape=(n,),
        )
        obs = state.clone()
        obs["observation"] = Bounded(-1.0, 1.0, (n, 9), dtype=torch.float32)
        obs["action_mask"] = Categorical(2, (n, 9), dtype=torch.bool)
        obs["success"] = Categorical(2, (n, 1), dtype=torch.bool)
        obs["outcome"] = Bounded(0.0, 1.0, (n, 1), dtype=torch.float32)
        self.observation_spec = obs
        self.state_spec = state
        self.action_spec = Categorical(9, (n,), dtype=torch.int64)
        self.reward_spec = Unbounded((n, 1), dtype=torch.float32)
        self.full_done_spec = done_spec(n)

    # ------------------------------------------------------------------ the opponent
    bot_names = BOTS
    """The scripted opponents this env provides (:meth:`bot_move`), by id."""
    num_bots = len(BOTS)

    def bot_move(self, board: Tensor, legal: Tensor, bot: int = 0) -> Tensor:
        """Scripted bot ``bot``'s cells (:data:`BOTS`) for ``[m, 9]`` boards from its side, its
        random draws from the env's generator."""
        if bot == 0:
            return scripted_move(board, legal, self.rng, self.block_prob)
        if bot == 1:
            noise = torch.rand(board.shape, generator=self.rng, device=board.device)
            return torch.where(legal, noise, torch.full_like(noise, -1.0)).argmax(-1)
        if bot == 2:
            return perfect_move(board, legal, self.rng)
        raise ValueError(f"bot={bot!r}: TicTacToeEnv's scripted bots are 0-{self.num_bots - 1} {list(BOTS)}.")

    def _bot_moves(self, board: Tensor, legal: Tensor, ids: Tensor) -> Tensor:
        """Each game's cell by the scripted bot its id names (one call per bot in play)."""
        bad = (ids < 0) | (ids >= self.num_bots)
        if bool(bad.any()):
            raise ValueError(
                f"opponent id {int(ids[bad][0])} names no scripted bot of TicTacToeEnv (0-{self.num_bots - 1} "
                f"{list(BOTS)}); set env.opponent to play other opponents."
            )
        cells = torch.zeros(ids.shape, dtype=torch.int64, device=board.device)
        for bot in ids.unique().tolist():
            rows = ids == bot
            cells[rows] = self.bot_move(board[rows], legal[rows], bot)
        return cells

    def _opponent_moves(self, board: Tensor, movers: Tensor, ids: Tensor) -> Tensor:
        """The board after the opponent (-1) moved in the envs ``movers`` (bool ``[n]``)."""
        if not bool(movers.any()):
            return board
        view = -board[movers].float()  # the opponent's side: its marks +1
        legal = board[movers] == 0
        if self.opponent is None:
            cells = self._bot_moves(view, legal, ids[movers])
        else:
            cells = torch.as_tensor(self.opponent(view, legal, ids[movers]), device=board.device).long().reshape(-1)
            ok = legal.gather(1, cells.clamp(0, 8).unsqueeze(1)).squeeze(1) & (cells >= 0) & (cells <= 8)
            cells = torch.where(ok, cells, legal.float().argmax(-1))  # an illegal move: its first free cell
        out = board.clone()
        rows = movers.nonzero().squeeze(1)
        out[rows, cells] = -1
        return out

    def _observe(self, board: Tensor, params: TensorDictBase, **extra: Tensor) -> TensorDictBase:
        return TensorDict(
            {
                "board": board,
                "params": params,
                "observation": board.float(),
                "action_mask": board == 0,
                **extra,
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    # ------------------------------------------------------------------ EnvBase
    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        n, dev = self.num_envs, self.device
        if tensordict is not None and ("params", "task_id") in tensordict.keys(True):
            # (a grid of tasks, e.g. {task_id: [0]}, gives float ids)
            params = TensorDict({"task_id": tensordict["params", "task_id"].round().long()}, [n], device=dev)
        else:
            params = TensorDict({"task_id": torch.zeros(n, dtype=torch.int64, device=dev)}, [n], device=dev)
        board = torch.zeros((n, 9), dtype=torch.int64, device=dev)
        opponent_first = torch.rand(n, generator=self.rng, device=dev) < 0.5
        board = self._opponent_moves(board, opponent_first, params["task_id"])
        false = torch.zeros((n, 1), dtype=torch.bool, device=dev)
        return self._observe(
            board,
            params,
            success=false,
            outcome=torch.zeros((n, 1), device=dev),
            done=false.clone(),
            terminated=false.clone(),
            truncated=false.clone(),
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        board, params = tensordict["board"], tensordict["params"]
        action = tensordict["action"].reshape(-1).long().clamp(0, 8)
        rows = torch.arange(self.num_envs, device=self.device)
        illegal = board[rows, action] != 0
        board = board.clone()
        board[rows, action] = torch.where(illegal, board[rows, action], torch.ones_like(action))
        won = (winner(board) > 0) & ~illegal
        full = (board != 0).all(-1)
        over = won | illegal | full
        board = self._opponent_moves(board, ~over, params["task_id"])
        lost = illegal | (winner(board) < 0)
        draw = (board != 0).all(-1) & ~won & ~lost
        terminated = (won | lost | draw).unsqueeze(-1)
        reward = (won.float() - lost.float()).unsqueeze(-1)
        outcome = (won.float() + 0.5 * draw.float()).unsqueeze(-1)
        return self._observe(
            board,
            params,
            reward=reward,
            success=won.unsqueeze(-1),
            outcome=outcome,
            done=terminated,
            terminated=terminated.clone(),
            truncated=torch.zeros_like(terminated),
        )

    def _set_seed(self, seed: int | None) -> None:
        self.rng = seeded_generator(seed, self.device)
