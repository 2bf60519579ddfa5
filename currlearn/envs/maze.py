"""A batched grid maze in pure torch, with per-env levels, a level generator, an editor, and
held-out evaluation mazes.

In the spirit of jaxued's ``Maze`` (Coward et al. 2024, https://github.com/DramaCow/jaxued),
itself after the MiniGrid mazes of the PAIRED / PLR⊥ / ACCEL papers: an agent with a heading
moves on a ``height x width`` grid of free and wall cells and must reach a goal cell.

- Actions: 0 turn left, 1 turn right, 2 move forward (blocked by walls and the border).
- Observation (``"observation"``, float32): the ``view x view`` cells in front of the agent,
  egocentric (the agent at the middle of the bottom row, looking up), two channels (wall,
  goal; outside the grid counts as wall), then the heading one-hot: ``2 view^2 + 4`` values.
- Reward: ``1 - 0.9 t / max_steps`` when the goal is reached at step ``t`` (terminated),
  else 0; ``truncated`` after ``max_steps``.
- A level (``"params"``): ``walls`` ``[H, W]`` bool, ``start`` ``[2]`` int64 (row, column),
  ``start_dir`` ``[]`` int64 (0 up, 1 right, 2 down, 3 left), ``goal`` ``[2]`` int64. The env
  reads the level of each env at reset from ``"params"`` (where
  :class:`~currlearn.integrations.torchrl.CurriculumTransform` writes the curriculum's
  levels), else plays its default level (the first held-out maze of its size, or an empty
  room).

:class:`MazeGenerator` draws random levels (a random number of walls on random cells, random
start and goal), :class:`MazeEditor` edits them (ACCEL's mutations: flip cells, move the goal),
both batched on the curriculum's generator. :data:`HELD_OUT` holds fixed 13 x 13 evaluation
mazes; :func:`held_out_levels` returns them as a batch of levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from currlearn.envs._parts import done_spec
from currlearn.levels import LevelSpace

__all__ = [
    "HELD_OUT",
    "MazeEditor",
    "MazeEnv",
    "MazeGenerator",
    "held_out_levels",
    "held_out_space",
    "parse_maze",
    "render_mazes",
]

# row, column steps of the headings up, right, down, left
_DIRECTIONS = torch.tensor([[-1, 0], [0, 1], [1, 0], [0, -1]])

# Held-out evaluation mazes, 13 x 13: '#' wall, '.' free, 'A' start (facing up), 'G' goal.
HELD_OUT: dict[str, tuple[str, ...]] = {
    "corridor": (
        "#############",
        "#A..........#",
        "###########.#",
        "#...........#",
        "#.###########",
        "#...........#",
        "###########.#",
        "#...........#",
        "#.###########",
        "#...........#",
        "###########.#",
        "#G..........#",
        "#############",
    ),
    "four_rooms": (
        ".....#.......",
        ".A...#.......",
        ".............",
        ".....#.......",
        ".....#.......",
        "##.####......",
        ".....#####.##",
        ".....#.......",
        ".....#.......",
        "...........G.",
        ".....#.......",
        ".....#.......",
        ".....#.......",
    ),
    "spiral": (
        ".............",
        ".###########.",
        ".#.........#.",
        ".#.#######.#.",
        ".#.#.....#.#.",
        ".#.#.###.#.#.",
        ".#.#.#G#.#.#.",
        ".#.#.#.#.#.#.",
        ".#.#...#.#.#.",
        ".#.#####.#.#.",
        ".#.......#.#.",
        ".#########.#.",
        "A............",
    ),
    "open_field": (
        ".............",
        "..#.....#....",
        ".............",
        "....#....#...",
        ".#...........",
        "......G......",
        "...#.....#...",
        ".............",
        "..#...#......",
        ".........#...",
        ".#...........",
        "......A......",
        ".............",
    ),
}


def parse_maze(rows: Sequence[str]) -> TensorDict:
    """One level from text rows: ``#`` wall, ``.`` free, ``A`` start (facing up), ``G`` goal.

    Raises:
        ValueError: rows of unequal length, unknown characters, or not exactly one ``A`` and
            one ``G``.
    """
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"maze rows must be non-empty and of equal length, got lengths {[len(r) for r in rows]}.")
    text = "".join(rows)
    bad = sorted(set(text) - set("#.AG"))
    if bad:
        raise ValueError(f"maze has unknown characters {bad}; allowed: '#', '.', 'A', 'G'.")
    if text.count("A") != 1 or text.count("G") != 1:
        raise ValueError(f"a maze needs exactly one 'A' and one 'G', got {text.count('A')} and {text.count('G')}.")
    w = len(rows[0])
    a, g = text.index("A"), text.index("G")
    return TensorDict(
        {
            "walls": torch.tensor([[c == "#" for c in r] for r in rows]),
            "start": torch.tensor([a // w, a % w]),
            "start_dir": torch.tensor(0),
            "goal": torch.tensor([g // w, g % w]),
        },
        batch_size=[],
    )


def held_out_levels(names: Sequence[str] | None = None, device: torch.device | str | None = None) -> TensorDict:
    """The held-out mazes (all of :data:`HELD_OUT`, or ``names``) as levels of batch ``[n]``."""
    names = list(HELD_OUT) if names is None else list(names)
    unknown = [n for n in names if n not in HELD_OUT]
    if unknown:
        raise ValueError(f"unknown held-out maze(s) {unknown}; known: {list(HELD_OUT)}.")
    return torch.stack([parse_maze(HELD_OUT[n]) for n in names]).to(device or "cpu")


def held_out_space(names: Sequence[str] | None = None, device: torch.device | str | None = None) -> LevelSpace:
    """A :class:`~currlearn.levels.LevelSpace` holding the held-out mazes (one row each), for an
    evaluation that plays them (the app's ``task.eval`` of ``env=maze``)."""
    levels = held_out_levels(names, device)
    space = LevelSpace(levels[0], levels.batch_size[0], device=device)
    space.write(torch.arange(levels.batch_size[0]), levels)
    return space


def render_mazes(levels: TensorDictBase) -> Tensor:
    """Images of maze levels, ``[n, H, W, 3]`` uint8 (see :meth:`MazeGenerator.render`)."""
    walls = levels.get("walls").cpu()
    n, h, w = walls.shape
    image = torch.where(walls.unsqueeze(-1), torch.tensor([60, 60, 60]), torch.tensor([245, 245, 245]))
    rows = torch.arange(n)
    start, goal = levels.get("start").cpu(), levels.get("goal").cpu()
    image[rows, start[:, 0], start[:, 1]] = torch.tensor([40, 90, 220])
    image[rows, goal[:, 0], goal[:, 1]] = torch.tensor([30, 170, 60])
    return image.to(torch.uint8)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


class MazeGenerator:
    """Random maze levels: ``U{0..max_walls}`` walls on random cells, random start, heading and
    goal on distinct free cells (jaxued's default level generator draws the same way).

    Args:
        height, width (int): grid size, each >= 2. Default 13 x 13.
        max_walls (int): the largest number of walls, in ``[0, height * width - 2]``. Default
            60 (jaxued's ``n_walls`` for 13 x 13).

    Call it as ``generator(num, rng, device)``; :meth:`level_metrics` summarises levels.
    """

    def __init__(self, height: int = 13, width: int = 13, max_walls: int = 60) -> None:
        self.height = _check_int("height", height, 2)
        self.width = _check_int("width", width, 2)
        self.max_walls = _check_int("max_walls", max_walls, 0)
        if max_walls > height * width - 2:
            raise ValueError(f"max_walls must be <= height * width - 2 = {height * width - 2}, got {max_walls}.")

    def __call__(self, num: int, rng: torch.Generator, device: torch.device | str | None = None) -> TensorDict:
        """``num`` levels drawn with ``rng``, on ``device`` (default: ``rng``'s)."""
        device = rng.device if device is None else torch.device(device)
        h, w = self.height, self.width
        cells = torch.rand(num, h * w, generator=rng, device=rng.device).argsort(1).to(device)
        n_walls = torch.randint(self.max_walls + 1, (num, 1), generator=rng, device=rng.device).to(device)
        put = torch.arange(self.max_walls, device=device) < n_walls
        walls = torch.zeros(num, h * w, dtype=torch.bool, device=device)
        walls.scatter_(1, cells[:, 2 : 2 + self.max_walls], put)
        start_dir = torch.randint(4, (num,), generator=rng, device=rng.device).to(device)
        goal, start = cells[:, 0], cells[:, 1]
        return TensorDict(
            {
                "walls": walls.view(num, h, w),
                "start": torch.stack([start // w, start % w], 1),
                "start_dir": start_dir,
                "goal": torch.stack([goal // w, goal % w], 1),
            },
            batch_size=[num],
            device=device,
        )

    @staticmethod
    def render(levels: TensorDictBase) -> Tensor:
        """Images of levels, ``[n, H, W, 3]`` uint8: walls dark, free cells white, the start blue
        and the goal green (what the app's ``levels.png`` shows)."""
        return render_mazes(levels)

    @staticmethod
    def level_metrics(levels: TensorDictBase) -> dict[str, Tensor]:
        """Per-level statistics (shape ``[n]``): ``wall_count`` and ``goal_distance`` (the
        L1 distance from start to goal).
        """
        walls = levels.get("walls")
        return {
            "wall_count": walls.flatten(1).sum(1).float(),
            "goal_distance": (levels.get("start") - levels.get("goal")).abs().sum(1).float(),
        }


class MazeEditor:
    """ACCEL's edits: each level gets ``num_edits`` random cell flips (wall <-> free; the start
    and goal cells stay free), and with probability ``goal_move_prob`` its goal moves to a
    random free cell.

    Args:
        num_edits (int): cell flips per level, >= 0. Default 5 (ACCEL's maze setting).
        goal_move_prob (float): in [0, 1]. Default 0.
    """

    def __init__(self, num_edits: int = 5, goal_move_prob: float = 0.0) -> None:
        self.num_edits = _check_int("num_edits", num_edits, 0)
        if isinstance(goal_move_prob, bool) or not isinstance(goal_move_prob, (int, float)):
            raise ValueError(f"goal_move_prob must be a float in [0, 1], got {goal_move_prob!r}.")
        if not 0.0 <= goal_move_prob <= 1.0:
            raise ValueError(f"goal_move_prob must be in [0, 1], got {goal_move_prob!r}.")
        self.goal_move_prob = float(goal_move_prob)

    def __call__(self, levels: TensorDictBase, rng: torch.Generator) -> TensorDict:
        """Edited copies of ``levels`` (the input is not changed)."""
        walls = levels.get("walls")
        n, h, w = walls.shape
        device = walls.device
        flat = walls.reshape(n, h * w).clone()
        start = levels.get("start")
        goal = levels.get("goal").clone()
        start_cell = start[:, 0] * w + start[:, 1]
        if self.goal_move_prob > 0:
            move = torch.rand(n, generator=rng, device=rng.device).to(device) < self.goal_move_prob
            new_goal = torch.randint(h * w, (n,), generator=rng, device=rng.device).to(device)
            move &= new_goal != start_cell
            cell = torch.where(move, new_goal, goal[:, 0] * w + goal[:, 1])
            goal = torch.stack([cell // w, cell % w], 1)
        goal_cell = goal[:, 0] * w + goal[:, 1]
        for _ in range(self.num_edits):  # a fixed, small number of batched flips
            cell = torch.randint(h * w, (n,), generator=rng, device=rng.device).to(device)
            keep = (cell == start_cell) | (cell == goal_cell)
            old = flat.gather(1, cell.unsqueeze(1)).squeeze(1)
            flat.scatter_(1, cell.unsqueeze(1), torch.where(keep, old, ~old).unsqueeze(1))
        flat.scatter_(1, goal_cell.unsqueeze(1), False)
        return TensorDict(
            {
                "walls": flat.view(n, h, w),
                "start": start.clone(),
                "start_dir": levels.get("start_dir").clone(),
                "goal": goal,
            },
            batch_size=[n],
            device=device,
        )


class MazeEnv(EnvBase):
    """Batched grid maze, one level per env (see the module doc).

    Args:
        num_envs (int): envs; the batch size is ``[num_envs]``.
        height, width (int): grid size. Default 13 x 13.
        view (int): side of the egocentric view, odd, >= 1. Default 5.
        max_steps (int): episode length before ``truncated``. Default 250 (jaxued's).
        device: where the env runs. Default CPU.
        seed (int, optional): unused by the dynamics (they are deterministic); kept for the
            TorchRL interface.

    Keys (``B = num_envs``): ``"observation"`` ``[B, 2 view^2 + 4]`` float32, ``"position"``
    ``[B, 2]`` and ``"direction"`` ``[B]`` int64, ``"elapsed_steps"`` ``[B, 1]``,
    ``"success"`` ``[B, 1]`` bool, ``"params"`` (the level), ``"action"`` ``[B]`` in {0, 1, 2}
    (categorical; a one-hot ``[B, 3]`` action is read by its argmax), ``"reward"``, ``"done"``,
    ``"terminated"``, ``"truncated"`` ``[B, 1]``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        height: int = 13,
        width: int = 13,
        view: int = 5,
        max_steps: int = 250,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        _check_int("num_envs", num_envs, 1)
        self.height = _check_int("height", height, 2)
        self.width = _check_int("width", width, 2)
        self.view = _check_int("view", view, 1)
        if view % 2 == 0:
            raise ValueError(f"view must be odd (the agent sits in the middle column), got {view}.")
        self.max_steps = _check_int("max_steps", max_steps, 1)
        device = torch.device("cpu") if device is None else torch.device(device)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.num_envs = num_envs
        self.obs_dim = 2 * view * view + 4
        # view cell (i, j): i rows ahead of the agent's row (from view - 1 down to 0), j - view // 2 to its right
        ahead = torch.arange(view - 1, -1, -1).view(view, 1).expand(view, view)
        right = (torch.arange(view) - view // 2).view(1, view).expand(view, view)
        dirs = _DIRECTIONS
        rights = dirs.roll(-1, 0)  # the heading one turn to the right
        self._offsets = (
            ahead[None, ..., None] * dirs[:, None, None] + right[None, ..., None] * rights[:, None, None]
        ).to(device)  # [4, view, view, 2]
        self._dirs = dirs.to(device)
        self._default = self._default_level().to(device)
        self._make_specs()
        if seed is not None:
            self.set_seed(seed)

    def _default_level(self) -> TensorDict:
        if (self.height, self.width) == (13, 13):
            return parse_maze(HELD_OUT["corridor"])
        walls = torch.zeros(self.height, self.width, dtype=torch.bool)
        return TensorDict(
            {
                "walls": walls,
                "start": torch.tensor([self.height - 1, 0]),
                "start_dir": torch.tensor(0),
                "goal": torch.tensor([0, self.width - 1]),
            },
            batch_size=[],
        )

    def gen_params(self, batch_size: Sequence[int] | torch.Size | None = None) -> TensorDict:
        """``{"params": level}`` with the default level for every env of ``batch_size``."""
        shape = self.batch_size if batch_size is None else torch.Size(batch_size)
        params = self._default.expand(shape).clone()
        return TensorDict({"params": params}, batch_size=shape, device=self.device)

    def _make_specs(self) -> None:
        n, h, w = self.num_envs, self.height, self.width
        params = Composite(
            walls=Categorical(2, (n, h, w), dtype=torch.bool),
            start=Unbounded((n, 2), dtype=torch.int64),
            start_dir=Unbounded((n,), dtype=torch.int64),
            goal=Unbounded((n, 2), dtype=torch.int64),
            shape=(n,),
        )
        state = Composite(
            position=Unbounded((n, 2), dtype=torch.int64),
            direction=Unbounded((n,), dtype=torch.int64),
            elapsed_steps=Unbounded((n, 1), dtype=torch.int64),
            params=params,
            shape=(n,),
        )
        obs = state.clone()
        obs["observation"] = Bounded(0.0, 1.0, (n, self.obs_dim), dtype=torch.float32)
        obs["success"] = Categorical(2, (n, 1), dtype=torch.bool)
        self.observation_spec = obs
        self.state_spec = state
        self.action_spec = Categorical(3, (n,), dtype=torch.int64)
        self.reward_spec = Unbounded((n, 1), dtype=torch.float32)
        self.full_done_spec = done_spec(n)

    def _observe(self, position: Tensor, direction: Tensor, params: TensorDictBase) -> Tensor:
        walls, goal = params["walls"], params["goal"]
        n, h, w = walls.shape
        cells = position[:, None, None, :] + self._offsets.index_select(0, direction)  # [n, v, v, 2]
        r, c = cells[..., 0], cells[..., 1]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        index = (r.clamp(0, h - 1) * w + c.clamp(0, w - 1)).view(n, -1)
        wall = walls.reshape(n, h * w).gather(1, index).view_as(inside) | ~inside
        is_goal = (cells == goal[:, None, None, :]).all(-1) & inside
        heading = torch.nn.functional.one_hot(direction, 4)
        return torch.cat([wall.flatten(1), is_goal.flatten(1), heading], 1).float()

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        if tensordict is not None and "params" in tensordict.keys():
            params = tensordict["params"].clone()
        else:
            params = self.gen_params()["params"]
        n, dev = self.num_envs, self.device
        position = params["start"].clone()
        direction = params["start_dir"].clone()
        false = torch.zeros((n, 1), dtype=torch.bool, device=dev)
        return TensorDict(
            {
                "position": position,
                "direction": direction,
                "elapsed_steps": torch.zeros((n, 1), dtype=torch.int64, device=dev),
                "params": params,
                "observation": self._observe(position, direction, params),
                "success": false,
                "done": false.clone(),
                "terminated": false.clone(),
                "truncated": false.clone(),
            },
            batch_size=self.batch_size,
            device=dev,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        params = tensordict["params"]
        walls = params["walls"]
        n, h, w = walls.shape
        action = tensordict["action"]
        if action.dim() > 1:  # one-hot
            action = action.argmax(-1)
        position, direction = tensordict["position"], tensordict["direction"]
        direction = torch.where(
            action == 0, (direction + 3) % 4, torch.where(action == 1, (direction + 1) % 4, direction)
        )
        ahead = position + self._dirs.index_select(0, direction)
        r, c = ahead[:, 0], ahead[:, 1]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        blocked = walls.reshape(n, h * w).gather(1, (r.clamp(0, h - 1) * w + c.clamp(0, w - 1)).unsqueeze(1)).squeeze(1)
        move = (action == 2) & inside & ~blocked
        position = torch.where(move.unsqueeze(1), ahead, position)
        elapsed = tensordict["elapsed_steps"] + 1
        success = (position == params["goal"]).all(1, keepdim=True)
        truncated = (elapsed >= self.max_steps) & ~success
        reward = torch.where(success, 1.0 - 0.9 * elapsed.float() / self.max_steps, 0.0)
        return TensorDict(
            {
                "position": position,
                "direction": direction,
                "elapsed_steps": elapsed,
                "params": params,
                "observation": self._observe(position, direction, params),
                "success": success,
                "reward": reward,
                "done": success | truncated,
                "terminated": success,
                "truncated": truncated,
            },
            batch_size=tensordict.batch_size,
            device=tensordict.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        self._seed_value = seed  # the dynamics draw nothing
