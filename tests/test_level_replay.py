"""Generated levels: the level space and hash, the maze env, generator and editor, the level
buffer's invariants (capacity, eviction order, dedup, staleness, state round trip), PLR's
forget, and ACCEL end to end in a real TorchRL PPO loop."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import Compose, TransformedEnv
from torchrl.envs.utils import check_env_specs

from currlearn.curricula.level_replay import ACCEL, LevelReplay
from currlearn.curricula.plr import PrioritizedLevelReplay
from currlearn.envs.maze import HELD_OUT, MazeEditor, MazeEnv, MazeGenerator, held_out_levels, parse_maze
from currlearn.feedback import episode_feedback
from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer
from currlearn.integrations.replay import ReplayDecisionTransform
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.levels import LevelSpace, check_levels, level_hash
from currlearn.spaces import DiscreteSpace


def goal_levels(goals: list[list[int]]) -> TensorDict:
    return TensorDict({"goal": torch.tensor(goals)}, [len(goals)])


class GoalGenerator:
    """Levels that are just a goal cell, drawn from a 100 x 100 grid (few collisions)."""

    def __call__(self, num, rng, device):
        return goal_levels(torch.randint(100, (num, 2), generator=rng).tolist()).to(device)


def feed(cur, tasks, scores):
    cur.update(episode_feedback(tasks, torch.zeros(len(scores)), score=torch.tensor(scores, dtype=torch.float32)))


# ---------------------------------------------------------------------- level space, hash
def test_level_space_rows_and_params():
    space = LevelSpace(goal_levels([[0, 0]])[0], num_levels=4)
    space.write(torch.tensor([3, 1]), goal_levels([[7, 8], [1, 2]]))
    assert space.params(torch.tensor([1, 3, 0]))["goal"].tolist() == [[1, 2], [7, 8], [0, 0]]
    assert space.num_tasks == 4 and space.names == ("goal",)
    with pytest.raises(ValueError, match="num_levels must be an int >= 1, got 0"):
        LevelSpace(goal_levels([[0, 0]])[0], num_levels=0)
    with pytest.raises(ValueError, match=r"example must be one level.*\[2\]"):
        LevelSpace(goal_levels([[0, 0], [1, 1]]), num_levels=3)


def test_level_hash_equal_levels_equal_and_one_cell_changes_it():
    levels = held_out_levels()
    again = held_out_levels()
    assert torch.equal(level_hash(levels), level_hash(again))
    assert level_hash(levels).unique().numel() == len(HELD_OUT)
    walls = levels["walls"].clone()
    walls[0, 5, 5] = ~walls[0, 5, 5]
    edited = levels.clone()
    edited["walls"] = walls
    h0, h1 = level_hash(levels), level_hash(edited)
    assert h0[0] != h1[0] and torch.equal(h0[1:], h1[1:])
    moved = levels.clone()
    moved["goal"] = moved["goal"].flip(1)  # (r, c) -> (c, r): a permutation of the same values
    changed = (moved["goal"] != levels["goal"]).any(1)
    assert changed.sum() == 3  # the spiral's goal is (6, 6)
    assert torch.equal(level_hash(moved) != h0, changed)


def test_check_levels_messages():
    template = goal_levels([[0, 0]])[0]
    with pytest.raises(ValueError, match=r"editor returned batch size \[3\], expected \[2\]"):
        check_levels(goal_levels([[0, 0]] * 3), template, 2, "editor")
    bad = TensorDict({"goal": torch.zeros(2, 3, dtype=torch.int64)}, [2])
    with pytest.raises(ValueError, match=r"editor returned 'goal' of per-level shape \[3\].*expected shape \[2\]"):
        check_levels(bad, template, 2, "editor")
    with pytest.raises(ValueError, match=r"generator returned keys \['start'\], expected \['goal'\]"):
        check_levels(TensorDict({"start": torch.zeros(2, 2, dtype=torch.int64)}, [2]), template, 2, "generator")


# ---------------------------------------------------------------------- maze env
def test_maze_env_specs_and_dynamics():
    env = MazeEnv(3, max_steps=20)
    check_env_specs(env)
    level = parse_maze(["....", ".#..", "A..G"])  # start bottom-left facing up, goal bottom-right
    params = torch.stack([level] * 3)
    env = MazeEnv(3, height=3, width=4, view=3, max_steps=20)
    td = env.reset(TensorDict({"params": params}, [3]))
    assert td["position"].tolist() == [[2, 0]] * 3
    # turn right (face east), then forward three times: the goal at step 4
    for t, a in enumerate([1, 2, 2, 2]):
        td["action"] = torch.full((3,), a)
        td = env.step(td)
        nxt = td["next"]
        if t < 3:
            assert not nxt["done"].any()
        td = td["next"]
    assert nxt["terminated"].all() and nxt["success"].all()
    assert nxt["reward"][0].item() == pytest.approx(1 - 0.9 * 4 / 20)
    # forward into the wall at (1, 1) from (2, 1) facing up is blocked
    td = env.reset(TensorDict({"params": params}, [3]))
    for a in (1, 2, 0, 2):  # east, forward to (2, 1), turn up, forward: wall
        td["action"] = torch.full((3,), a)
        td = env.step(td)["next"]
    assert td["position"].tolist() == [[2, 1]] * 3


def test_maze_egocentric_view():
    level = parse_maze(["#.G", "...", "A.."])
    env = MazeEnv(1, height=3, width=3, view=3)
    td = env.reset(TensorDict({"params": level.unsqueeze(0)}, [1]))
    obs = td["observation"][0]
    wall, goal, heading = obs[:9].view(3, 3), obs[9:18].view(3, 3), obs[18:]
    # facing up from (2, 0): rows ahead 2, 1, 0 of columns -1, 0, 1 (column -1 is outside)
    assert wall.tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert goal.sum() == 0  # the goal (0, 2) is two columns to the right: outside the 3-wide view
    assert heading.tolist() == [1, 0, 0, 0]


def test_generator_and_editor_contracts():
    rng = torch.Generator().manual_seed(0)
    gen = MazeGenerator(9, 9, max_walls=20)
    levels = gen(64, rng)
    walls = levels["walls"]
    assert walls.shape == (64, 9, 9) and walls.flatten(1).sum(1).max() <= 20
    start, goal = levels["start"], levels["goal"]
    assert (start != goal).any(1).all()
    idx = torch.arange(64)
    assert not walls[idx, start[:, 0], start[:, 1]].any() and not walls[idx, goal[:, 0], goal[:, 1]].any()
    edited = MazeEditor(num_edits=3)(levels, rng)
    changed = (edited["walls"] != walls).flatten(1).sum(1)
    assert changed.max() <= 3 and changed.sum() > 64  # up to 3 flips each, most levels changed
    assert not edited["walls"][idx, goal[:, 0], goal[:, 1]].any()
    assert torch.equal(edited["start"], start)
    with pytest.raises(ValueError, match="max_walls must be <= height \\* width - 2 = 7, got 8"):
        MazeGenerator(3, 3, max_walls=8)
    with pytest.raises(ValueError, match="view must be odd"):
        MazeEnv(1, view=4)


# ---------------------------------------------------------------------- PLR forget
def test_plr_forget_makes_levels_unseen_and_the_next_score_exact():
    plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=4), smoothing=0.5, temperature=1.0, staleness_coef=0.0, seed=0)
    plr.update(episode_feedback(torch.arange(4), torch.zeros(4), score=torch.tensor([0.4, 0.1, 0.3, 0.2])))
    plr.forget(torch.tensor([0]))
    assert plr.state["seen"].tolist() == [False, True, True, True] and int(plr.state["num_seen"]) == 3
    assert torch.allclose(plr.weights()[1:].sum(), torch.tensor(plr.replay_probability().item()), atol=1e-6)
    plr.update(episode_feedback(torch.tensor([0]), torch.zeros(1), score=torch.tensor([0.9])))
    assert plr.state["score"][0].item() == pytest.approx(0.9)  # not 0.5 * 0.4 + 0.5 * 0.9
    plr.update(episode_feedback(torch.tensor([1]), torch.zeros(1), score=torch.tensor([0.5])))
    assert plr.state["score"][1].item() == pytest.approx(0.3)  # a seen level still averages


# ---------------------------------------------------------------------- the buffer
def test_buffer_fills_free_slots_then_evicts_the_lowest_only_when_beaten():
    cur = LevelReplay(GoalGenerator(), capacity=3, fresh=16, min_fill=1.0, seed=0)
    t = cur.sample(3)
    assert (t >= 3).all()  # empty buffer: new levels only
    feed(cur, t, [0.5, 0.2, 0.8])
    slots, levels, scores = cur.buffer_levels()
    assert slots.tolist() == [0, 1, 2]
    assert sorted(scores.tolist()) == pytest.approx([0.2, 0.5, 0.8])
    # full: a new level scoring 0.3 replaces the 0.2 one; one scoring 0.1 is dropped
    cur.replay_prob = 0.0
    t = cur.sample(2)
    new_goals = cur.levels(t)["goal"]
    feed(cur, t, [0.3, 0.1])
    slots, levels, scores = cur.buffer_levels()
    assert sorted(scores.tolist()) == pytest.approx([0.3, 0.5, 0.8])
    goals = levels["goal"].tolist()
    assert new_goals[0].tolist() in goals and new_goals[1].tolist() not in goals
    assert int(cur.counters["evicted"]) == 1 and int(cur.counters["inserted"]) == 4
    # the highest candidates take the lowest slots first: 0.9 and 0.6 evict 0.3 and 0.5
    t = cur.sample(2)
    feed(cur, t, [0.6, 0.9])
    assert sorted(cur.buffer_levels()[2].tolist()) == pytest.approx([0.6, 0.8, 0.9])


def test_buffer_dedups_levels_already_held_and_within_a_batch():
    class Same:  # every level identical
        def __call__(self, num, rng, device):
            return goal_levels([[4, 2]] * num)

    cur = LevelReplay(Same(), capacity=5, fresh=16, seed=0)
    t = cur.sample(3)
    feed(cur, t, [0.1, 0.7, 0.4])  # three copies in one batch: the first one stands
    assert cur.occupancy() == 1
    assert cur.buffer_levels()[2].tolist() == pytest.approx([0.1])
    cur.replay_prob = 0.0
    t = cur.sample(1)
    feed(cur, t, [0.9])  # the same level again: its slot's score moves, no second slot
    assert cur.occupancy() == 1 and cur.buffer_levels()[2].tolist() == pytest.approx([0.9])
    assert int(cur.counters["duplicates"]) >= 1
    off = LevelReplay(Same(), capacity=5, fresh=16, dedup=False, seed=0)
    feed(off, off.sample(3), [0.1, 0.7, 0.4])
    assert off.occupancy() == 1  # within a batch a level is proposed once even without dedup


def test_buffer_invariants_over_a_long_run():
    g = torch.Generator().manual_seed(1)
    cur = LevelReplay(MazeGenerator(7, 7, max_walls=12), capacity=50, fresh=128, seed=0)
    for _ in range(80):
        t = cur.sample(16)
        feed(cur, t, torch.rand(16, generator=g).tolist())
        cur.step()
        seen = cur.replay.state["seen"]
        assert int(seen.sum()) <= 50
        slots, levels, _ = cur.buffer_levels()
        assert torch.equal(level_hash(levels), cur.state["hash"][slots])
        assert level_hash(levels).unique().numel() == slots.numel()  # no level twice
    assert cur.occupancy() == 50 and int(cur.counters["evicted"]) > 0


def test_replay_decision_waits_for_min_fill_then_follows_replay_prob():
    cur = LevelReplay(GoalGenerator(), capacity=100, fresh=512, replay_prob=0.7, min_fill=0.5, seed=0)
    g = torch.Generator().manual_seed(0)
    while cur.occupancy() < 50:
        t = cur.sample(10)
        assert not cur.last_sample_is_replay.any()
        feed(cur, t, torch.rand(10, generator=g).tolist())
    flags = torch.cat([cur.sample(100) * 0 + cur.last_sample_is_replay for _ in range(20)])
    # 2000 draws at p = 0.7: the standard deviation of the rate is about 0.01
    assert abs(flags.float().mean().item() - 0.7) < 0.04


def test_replays_follow_the_plr_distribution_over_slots():
    cur = LevelReplay(GoalGenerator(), capacity=4, fresh=16, replay_prob=1.0, min_fill=0.0, staleness_coef=0.0,
                      temperature=1.0, seed=0)  # fmt: skip
    feed(cur, cur.sample(4), [0.1, 0.4, 0.3, 0.2])
    # new levels take the free slots best first
    assert cur.buffer_levels()[2].tolist() == pytest.approx([0.4, 0.3, 0.2, 0.1])
    draws = torch.cat([cur.sample(1000) for _ in range(10)])
    assert (draws < 4).all()
    freq = torch.bincount(draws, minlength=4).double() / draws.numel()
    # rank prioritisation, beta = 1: ranks 1, 2, 3, 4 -> 1/rank / (25/12)
    expected = torch.tensor([0.48, 0.24, 0.16, 0.12], dtype=torch.float64)
    assert torch.allclose(freq, expected, atol=0.02)


def test_state_round_trip_draws_the_same_levels():
    g = torch.Generator().manual_seed(2)

    def run(cur, n):
        for _ in range(n):
            t = cur.sample(8)
            feed(cur, t, torch.rand(8, generator=g).tolist())
            cur.step()

    cur = ACCEL(MazeGenerator(7, 7, max_walls=10), MazeEditor(2), capacity=20, fresh=64, min_fill=0.2, seed=3)
    run(cur, 30)
    state = cur.state_dict()
    other = ACCEL(MazeGenerator(7, 7, max_walls=10), MazeEditor(2), capacity=20, fresh=64, min_fill=0.2, seed=9)
    other.load_state_dict(state)
    for _ in range(5):
        a, b = cur.sample(16), other.sample(16)
        assert torch.equal(a, b)
        assert (cur.levels(a) == other.levels(b)).all()
        scores = torch.rand(16, generator=g).tolist()
        feed(cur, a, scores)
        feed(other, b, scores)
    assert torch.equal(cur.replay.state["score"], other.replay.state["score"])
    small = ACCEL(MazeGenerator(7, 7, max_walls=10), MazeEditor(2), capacity=10, fresh=64, seed=0)
    with pytest.raises(ValueError, match="task space"):
        small.load_state_dict(state)


def test_accel_plays_edits_of_replayed_levels():
    cur = ACCEL(MazeGenerator(7, 7, max_walls=5), MazeEditor(num_edits=2), capacity=10, fresh=64, replay_prob=1.0,
                min_fill=0.1, seed=0)  # fmt: skip
    feed(cur, cur.sample(4), [0.1, 0.2, 0.3, 0.4])
    replayed = cur.sample(3)
    assert (replayed < 10).all() and cur.last_sample_is_replay.all()
    parents = torch.unique(replayed)  # one child per replayed level, in slot order
    feed(cur, replayed, [0.5, 0.5, 0.5])
    assert int(cur.state["queue_len"]) == parents.numel()
    cur.replay_prob = 0.0  # the next new levels are the queued children
    children = cur.sample(parents.numel())
    assert (children >= 10).all() and int(cur.state["queue_len"]) == 0
    kids, originals = cur.levels(children), cur.levels(parents)
    diff = (kids["walls"] != originals["walls"]).flatten(1).sum(1)
    assert diff.max() <= 2 and diff.sum() > 0
    assert torch.equal(kids["start"], originals["start"]) and torch.equal(kids["goal"], originals["goal"])


def test_bad_arguments_and_bad_generators():
    with pytest.raises(ValueError, match="capacity"):
        LevelReplay(GoalGenerator(), capacity=0)
    with pytest.raises(ValueError, match="replay_prob"):
        LevelReplay(GoalGenerator(), replay_prob=1.5)
    with pytest.raises(ValueError, match=r"generator must return a TensorDict of batch size \[num\]"):
        LevelReplay(lambda n, rng, dev: torch.zeros(n))

    class Shrinking:
        calls = 0

        def __call__(self, num, rng, device):
            self.calls += 1
            return goal_levels([[0, 0]] * (num if self.calls == 1 else num + 1))

    cur = LevelReplay(Shrinking(), capacity=4, fresh=8, seed=0)
    with pytest.raises(ValueError, match=r"generator returned batch size \[3\], expected \[2\]"):
        cur.sample(2)

    def wrong_editor(levels, rng):
        return TensorDict({"goal": levels["goal"][:, :1]}, levels.batch_size)

    cur = ACCEL(GoalGenerator(), wrong_editor, capacity=4, fresh=8, replay_prob=1.0, min_fill=0.0, seed=0)
    feed(cur, cur.sample(2), [0.1, 0.2])
    with pytest.raises(ValueError, match=r"editor returned 'goal' of per-level shape \[1\]"):
        feed(cur, cur.sample(2), [0.1, 0.2])
    with pytest.raises(ValueError, match="ACCEL needs an editor"):
        ACCEL(GoalGenerator(), None)


def test_more_new_levels_than_fresh_rows_is_refused():
    cur = LevelReplay(GoalGenerator(), capacity=4, fresh=8, seed=0)
    with pytest.raises(ValueError, match=r"9 new levels at once need as many fresh rows, but fresh=8"):
        cur.sample(9)
    assert cur.sample(8).tolist() == list(range(4, 12))


def test_episodes_on_empty_slots_are_skipped():
    cur = LevelReplay(GoalGenerator(), capacity=4, fresh=8, seed=0)
    feed(cur, torch.tensor([2, 3]), [0.5, 0.6])  # nothing was ever drawn there
    assert cur.occupancy() == 0 and int(cur.counters["skipped_empty"]) == 2


def test_non_finite_scores_are_skipped():
    cur = LevelReplay(GoalGenerator(), capacity=4, fresh=8, seed=0)
    t = cur.sample(3)
    cur.update(episode_feedback(t, torch.zeros(3), score=torch.tensor([math.nan, 0.5, math.inf])))
    assert cur.occupancy() == 1 and int(cur.counters["skipped_nonfinite"]) == 2


def test_level_grid_draws_rows_of_levels():
    from currlearn import plot
    from currlearn.envs.maze import render_mazes

    images = render_mazes(held_out_levels())
    assert images.shape == (4, 13, 13, 3) and images.dtype == torch.uint8
    corridor = parse_maze(HELD_OUT["corridor"])
    assert images[0, 0, 0].tolist() == [60, 60, 60]  # a wall
    r, c = corridor["goal"].tolist()
    assert images[0, r, c].tolist() == [30, 170, 60]  # the goal
    ax = plot.level_grid([images, images[:2]], ["first", "second"])
    shown = ax.get_images()[0].get_array()
    assert shown.shape[:2] == (2 * 14 + 1, 4 * 14 + 1)  # 1-pixel gaps
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "second"]
    with pytest.raises(ValueError, match="all level images must be 13 x 13"):
        plot.level_grid([images, images[:, :5]])
    with pytest.raises(ValueError, match="row_labels has 1 labels for 2 rows"):
        plot.level_grid([images, images], ["one"])


# ---------------------------------------------------------------------- in TorchRL
def maze_env(cur, num_envs=4, **kw):
    base = MazeEnv(num_envs, height=7, width=7, max_steps=kw.pop("max_steps", 12))
    return TransformedEnv(base, Compose(CurriculumTransform(cur), ReplayDecisionTransform(cur)))


def test_transform_writes_the_curriculum_levels_into_the_envs():
    cur = LevelReplay(MazeGenerator(7, 7, max_walls=10), capacity=16, fresh=64, num_envs=4, seed=0)
    env = maze_env(cur)
    td = env.reset()
    tasks = env.transform[0].tasks
    levels = cur.levels(tasks)
    assert torch.equal(td["params", "walls"], levels["walls"])
    assert torch.equal(td["position"], levels["start"])
    rollout = env.rollout(30, break_when_any_done=False)
    # every transition carries its env's level: the walls in params are those of its task
    flat = rollout.reshape(-1)
    assert torch.equal(flat["params", "walls"], cur.levels(flat["task_id"])["walls"])
    assert "level_replay" in rollout.keys()


def test_accel_in_a_real_ppo_loop():
    gen, editor = MazeGenerator(7, 7, max_walls=0), MazeEditor(num_edits=3)
    cur = ACCEL(gen, editor, capacity=32, fresh=256, min_fill=0.25, num_envs=8, seed=0)
    env = maze_env(cur, num_envs=8, max_steps=16)
    settings = PPOSettings(frames_per_batch=256, total_frames=256 * 6, minibatch_size=64, num_epochs=2, hidden=32)
    trainer, _hook = make_ppo_trainer(env, cur, settings)
    trainer.train()
    assert cur.occupancy() > 8  # episodes were scored and their levels kept
    assert int(cur.counters["edits"]) > 0  # replays happened and their levels were edited
    _slots, levels, scores = cur.buffer_levels()
    assert torch.isfinite(scores).all()
    assert levels["walls"].flatten(1).sum(1).max() > 0  # edits made walls in the empty rooms
    assert cur.iteration == 6
