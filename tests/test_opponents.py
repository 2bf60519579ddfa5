"""Opponent curricula: the pool (capacity, eviction, state), the PFSP weights, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from currlearn.curricula import FictitiousSelfPlay, PrioritizedFictitiousSelfPlay, SelfPlay
from currlearn.feedback import episode_feedback


def _snap(value: float) -> TensorDict:
    return TensorDict({"net": {"w": torch.full((2, 3), value), "b": torch.full((3,), value)}}, [])


def _outcomes(opponents: list[int], results: list[float]):
    return episode_feedback(torch.tensor(opponents), torch.zeros(len(opponents)), success=torch.tensor(results))


def _values(cur) -> list[float]:
    """The value each slot's snapshot was made of (NaN for empty and bot slots)."""
    w = cur.snapshots["net", "w"][:, 0, 0]
    return torch.where(cur.state["valid"] & (cur.state["bot"] < 0), w, torch.nan).tolist()


# --------------------------------------------------------------------------- the pool
def test_a_full_pool_replaces_its_oldest_snapshot_and_keeps_bots():
    cur = FictitiousSelfPlay(capacity=4, seed=0)
    bot = cur.add_bot(7)
    slots = [cur.add(_snap(v)) for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert bot == 0 and slots == [1, 2, 3, 1, 2]  # 4 replaced 1 (oldest), 5 replaced 2
    assert _values(cur)[1:] == [4.0, 5.0, 3.0]
    assert cur.state["bot"].tolist() == [7, -1, -1, -1]
    assert cur.latest == 2 and cur.pool_size == 4
    # the new snapshot starts without results
    cur.update(_outcomes([1, 2, 3], [1.0, 0.0, 0.5]))
    cur.add(_snap(6.0))  # replaces slot 3, now the oldest
    assert cur.state["games"].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_random_eviction_never_takes_the_latest_or_a_bot():
    cur = FictitiousSelfPlay(capacity=3, eviction="random", seed=0)
    cur.add_bot()
    taken = set()
    for v in range(40):
        before = cur.latest
        slot = cur.add(_snap(float(v)))
        assert slot != 0 and (v < 2 or slot != before)
        taken.add(slot)
    assert taken == {1, 2}


def test_a_pool_of_bots_and_the_latest_snapshot_refuses_more():
    cur = SelfPlay(capacity=2, seed=0)
    cur.add_bot()
    cur.add(_snap(1.0))
    with pytest.raises(ValueError, match=r"capacity=2\) is full of bots and the latest snapshot"):
        cur.add(_snap(2.0))
    with pytest.raises(ValueError, match="is full: add bots before snapshots"):
        cur.add_bot()


def test_opponent_params_gather_each_envs_opponent():
    cur = FictitiousSelfPlay(capacity=3, seed=0)
    for v in (1.0, 2.0, 3.0):
        cur.add(_snap(v))
    opponents = torch.tensor([[2, 0], [1, 1]])
    got = cur.opponent_params(opponents)
    assert got.batch_size == torch.Size([2, 2])
    assert got["net", "b"][..., 0].tolist() == [[3.0, 1.0], [2.0, 2.0]]
    with pytest.raises(ValueError, match="opponents"):
        cur.opponent_params(torch.tensor([3]))


def test_track_snapshots_the_module_every_n_iterations():
    policy = nn.Linear(2, 1)
    cur = SelfPlay(capacity=8, snapshot_every=2, seed=0).track(policy)
    assert cur.pool_size == 1  # the module as it is now
    for it in range(1, 7):
        with torch.no_grad():
            policy.bias.fill_(float(it))
        cur.step(10)
    assert cur.pool_size == 4  # iterations 2, 4 and 6
    assert cur.snapshots["bias"][cur.latest].item() == 6.0
    assert cur.sample(5).tolist() == [cur.latest] * 5
    # a snapshot is a copy: training the module further does not change it
    with torch.no_grad():
        policy.bias.fill_(-1.0)
    assert cur.snapshots["bias"][cur.latest].item() == 6.0


# --------------------------------------------------------------------------- distributions
def test_pfsp_weights_match_hand_computed_values():
    def pool(**kw):
        cur = PrioritizedFictitiousSelfPlay(capacity=5, seed=0, **kw)
        for v in range(4):
            cur.add(_snap(float(v)))
        # win rates 1, 1/2 (a win and a loss), 1/4 (a draw, 3 losses... draws count half), unplayed
        cur.update(_outcomes([0, 0, 1, 1, 2, 2, 2, 2], [1, 1, 1, 0, 0.5, 0, 0, 0]))
        return cur

    cur = pool(weighting="hard", exponent=2.0)
    assert cur.win_rates()[:4].tolist() == [1.0, 0.5, 0.125, 0.5]
    hard = torch.tensor([0.0, 0.25, 0.875**2, 0.25, 0.0])
    torch.testing.assert_close(cur.weights(), hard / hard.sum())
    cur = pool(weighting="hard", exponent=1.0)
    lin = torch.tensor([0.0, 0.5, 0.875, 0.5, 0.0])
    torch.testing.assert_close(cur.weights(), lin / lin.sum())
    cur = pool(weighting="variance")
    var = torch.tensor([0.0, 0.25, 0.125 * 0.875, 0.25, 0.0])
    torch.testing.assert_close(cur.weights(), var / var.sum())
    cur = pool(weighting="variance", mix_latest=0.3)
    mixed = 0.7 * var / var.sum()
    mixed[3] += 0.3
    torch.testing.assert_close(cur.weights(), mixed)


def test_pfsp_hard_falls_back_to_uniform_when_every_opponent_is_beaten():
    cur = PrioritizedFictitiousSelfPlay(capacity=4, seed=0)
    cur.add(_snap(0.0))
    cur.add(_snap(1.0))
    cur.update(_outcomes([0, 1], [1.0, 1.0]))
    torch.testing.assert_close(cur.weights(), torch.tensor([0.5, 0.5, 0.0, 0.0]))


def test_self_play_and_fsp_distributions():
    sp, fsp = SelfPlay(capacity=4, seed=0), FictitiousSelfPlay(capacity=4, seed=0)
    for cur in (sp, fsp):
        cur.add_bot()
        cur.add(_snap(0.0))
        cur.add(_snap(1.0))
    assert sp.weights().tolist() == [0.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(fsp.weights(), torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    only_bots = SelfPlay(capacity=2, seed=0)
    only_bots.add_bot()
    assert only_bots.sample(3).tolist() == [0, 0, 0]  # no snapshot yet: the bots


def test_pfsp_draws_follow_its_weights():
    cur = PrioritizedFictitiousSelfPlay(capacity=4, weighting="variance", seed=0)
    for v in range(4):
        cur.add(_snap(float(v)))
    cur.update(_outcomes([0, 0, 1, 2, 2, 2, 2], [1, 0, 1, 1, 1, 1, 0]))  # p = 1/2, 1, 3/4, unplayed
    n = 40_000
    freq = torch.bincount(cur.sample(n), minlength=4).double() / n
    expected = cur.weights().double()
    assert expected[1] == 0 and freq[1] == 0
    # binomial standard error at n = 40k is at most 0.0025: a 4-sigma margin
    assert (freq - expected).abs().max() < 0.01, (freq, expected)


def test_metrics_report_the_pool_and_win_rates():
    cur = FictitiousSelfPlay(capacity=3, seed=0)
    cur.add(_snap(0.0))
    cur.add(_snap(1.0))
    cur.update(_outcomes([0, 0, 1], [1.0, 0.0, 1.0]))
    m = cur.metrics()
    assert m["curriculum/pool_size"] == 2.0
    assert m["curriculum/opponent/0/win_rate"] == 0.5 and m["curriculum/opponent/1/win_rate"] == 1.0
    assert m["curriculum/win_rate"] == pytest.approx(2 / 3)
    assert m["curriculum/entropy"] == pytest.approx(torch.log(torch.tensor(2.0)).item())


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("cls", [SelfPlay, FictitiousSelfPlay, PrioritizedFictitiousSelfPlay])
def test_state_round_trip_is_exact_with_the_snapshots(tmp_path, cls):
    cur = cls(capacity=3, seed=1)
    cur.add_bot(2)
    for v in (1.0, 2.0, 3.0):
        cur.add(_snap(v))
    cur.update(_outcomes([0, 1, 1, 2], [0.0, 1.0, 0.5, 1.0]))
    cur.sample(7)
    torch.save(cur.state_dict(), tmp_path / "opp.pt")

    fresh = cls(capacity=3, seed=99)  # no snapshot yet: takes the saved snapshots' structure
    fresh.load_state_dict(torch.load(tmp_path / "opp.pt", weights_only=False))
    assert (fresh.snapshots == cur.snapshots).all()
    assert fresh.state["bot"].tolist() == [2, -1, -1] and fresh.latest == cur.latest
    torch.testing.assert_close(fresh.weights(), cur.weights())
    assert torch.equal(fresh.sample(50), cur.sample(50))
    assert fresh.add(_snap(4.0)) == cur.add(_snap(4.0))


def test_a_state_with_other_snapshots_is_refused_unchanged():
    cur = FictitiousSelfPlay(capacity=2, seed=0)
    cur.add(_snap(1.0))
    other = FictitiousSelfPlay(capacity=2, seed=0, template=nn.Linear(3, 1))
    with pytest.raises(ValueError, match="state keys"):
        other.load_state_dict(cur.state_dict())
    assert other.pool_size == 0 and "bias" in other.snapshots.keys()


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_one_line():
    cases = [
        (lambda: FictitiousSelfPlay(capacity=2).sample(1), ValueError, "pool of FictitiousSelfPlay is empty"),
        (lambda: PrioritizedFictitiousSelfPlay(weighting="soft"), ValueError, "weighting='soft'"),
        (lambda: PrioritizedFictitiousSelfPlay(exponent=0.0), ValueError, "exponent must be a finite number > 0"),
        (lambda: PrioritizedFictitiousSelfPlay(mix_latest=1.5), ValueError, "mix_latest"),
        (lambda: FictitiousSelfPlay(capacity=0), ValueError, "capacity"),
        (lambda: FictitiousSelfPlay(eviction="lru"), ValueError, "eviction='lru'"),
        (lambda: FictitiousSelfPlay().add([1.0]), TypeError, "params must be a TensorDict"),
        (lambda: FictitiousSelfPlay().add_bot(-1), ValueError, "bot"),
        (lambda: FictitiousSelfPlay().opponent_params(torch.tensor([0])), ValueError, "no snapshot yet"),
        (lambda: SelfPlay().track("policy"), TypeError, "module must be an nn.Module"),
    ]
    for make, error, words in cases:
        with pytest.raises(error) as e:
            make()
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (
            TensorDict({"net": {"w": torch.zeros(3, 2), "b": torch.zeros(3)}}, []),
            "params[('net', 'w')] is torch.float32 [3, 2]",
        ),
        (TensorDict({"net": {"w": torch.zeros(2, 3)}}, []), "params has keys"),
        (TensorDict({"net": {"w": torch.zeros(2, 3, dtype=torch.float64), "b": torch.zeros(3)}}, []), "torch.float64"),
        (TensorDict({"net": {"w": torch.full((2, 3), float("nan")), "b": torch.zeros(3)}}, []), "NaN or infinite"),
    ],
    ids=["shape", "keys", "dtype", "nan"],
)
def test_a_snapshot_of_another_structure_is_refused_unchanged(params, words):
    cur = FictitiousSelfPlay(capacity=3, seed=0)
    cur.add(_snap(1.0))
    before = cur.state_dict()
    with pytest.raises(ValueError) as e:
        cur.add(params)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert all(torch.equal(v, before["state"][k]) for k, v in cur.state_dict()["state"].items())


def test_a_non_finite_first_snapshot_leaves_the_pool_unallocated():
    cur = FictitiousSelfPlay(capacity=3, seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        cur.add(TensorDict({"w": torch.tensor([float("inf")])}, []))
    assert cur.snapshots is None and cur.pool_size == 0


# --------------------------------------------------------------------------- playing the opponents
def test_the_batched_opponent_forward_equals_per_env_forwards():
    from currlearn.integrations.opponents import OpponentPolicy

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    cur = FictitiousSelfPlay(capacity=5, seed=0)
    nets = []
    for _ in range(3):
        snapshot = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
        nets.append(snapshot)
        cur.add(snapshot)
    cur.add_bot(0)

    def bot(x):
        return x[:, :2] * 0 + 7.0

    policy = OpponentPolicy(net, cur, bots=[bot])
    opponents = cur.sample(64)
    x = torch.randn(64, 3)
    with torch.no_grad():
        got = policy(opponents, x)
        want = torch.stack(
            [nets[o](x[i]) if o < 3 else torch.full((2,), 7.0) for i, o in enumerate(opponents.tolist())]
        )
    assert set(opponents.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="plays bot 0, but OpponentPolicy has 0 bots"):
        OpponentPolicy(net, cur)(torch.tensor([3]), x[:1])


# --------------------------------------------------------------------------- the two-player env
def test_tictactoe_specs_and_a_random_rollout():
    from torchrl.envs.utils import check_env_specs

    from currlearn.envs.tictactoe import TicTacToeEnv

    env = TicTacToeEnv(8, seed=0)
    check_env_specs(env)
    td = env.rollout(20, break_when_any_done=False)
    assert td.batch_size == torch.Size([8, 20])
    done = td["next", "done"].squeeze(-1)
    # a game lasts at most 5 learner moves
    assert done.any(-1).all()
    r = td["next", "reward"][done].reshape(-1)
    assert set(r.tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(td["next", "success"][done].reshape(-1), r == 1.0)


def test_scripted_move_wins_then_blocks_then_takes_the_centre():
    from currlearn.envs.tictactoe import scripted_move

    boards = torch.tensor(
        [
            [1, 1, 0, -1, -1, 0, 0, 0, 0],  # can win at 2 (and must block at 5): wins
            [0, 0, 0, -1, -1, 0, 1, 0, 0],  # must block at 5
            [0, 0, 0, 0, 0, 0, 0, 0, 0],  # empty: the centre
        ],
        dtype=torch.float32,
    )
    g = torch.Generator().manual_seed(0)
    assert scripted_move(boards, boards == 0, g).tolist() == [2, 5, 4]


def test_a_taken_cell_loses_and_the_opponent_sees_its_ids():
    from currlearn.envs.tictactoe import TicTacToeEnv

    seen = []

    def first_free(board, legal, ids):
        seen.append(ids.clone())
        return legal.float().argmax(-1)

    env = TicTacToeEnv(4, opponent=first_free, seed=0)
    td = env.reset(TensorDict({"params": {"task_id": torch.tensor([3, 1, 4, 1])}}, [4]))
    taken = td["board"].ne(0).float().argmax(-1)  # a cell the opponent took, where it moved first
    moved_first = td["board"].ne(0).any(-1)
    action = torch.where(moved_first, taken, torch.zeros_like(taken))
    out = env.step(td.set("action", action))["next"]
    assert out["reward"][moved_first].eq(-1.0).all() and out["done"][moved_first].all()
    assert out["done"][~moved_first].logical_not().all()
    assert sorted(torch.cat(seen).tolist()) == sorted([3, 1, 4, 1])  # each env's opponent moved once


def test_the_scripted_bot_rarely_loses_to_random_play():
    from currlearn.envs.tictactoe import TicTacToeEnv

    env = TicTacToeEnv(256, block_prob=1.0, seed=0)
    g = torch.Generator().manual_seed(1)

    def random_play(td):
        return td.set("action", torch.multinomial(td["action_mask"].float() + 1e-9, 1, generator=g).squeeze(-1))

    td = env.rollout(5, random_play, break_when_any_done=False)
    done = td["next", "done"].squeeze(-1)
    assert done.any(-1).all()
    first = done.float().argmax(-1)
    reward = td["next", "reward"].squeeze(-1)[torch.arange(256), first]
    # random play beats the win-or-block bot in a few games (a fork); far fewer than it loses
    assert (reward == 1).float().mean() < 0.15 and (reward == -1).float().mean() > 0.6


def test_pfsp_in_a_real_ppo_loop_against_its_own_snapshots_and_the_bot():
    """TorchRL's PPO trainer on tic-tac-toe: the transform draws each game's opponent from
    PFSP's pool (the scripted bot and snapshots of the policy, one per iteration), the opponents
    are played by OpponentPolicy, and the outcomes come back as per-opponent win rates."""
    from torchrl.envs import TransformedEnv

    from currlearn.envs.tictactoe import TicTacToeEnv, scripted_move
    from currlearn.integrations.opponents import OpponentPolicy
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer
    from currlearn.integrations.torchrl import CurriculumTransform

    cur = PrioritizedFictitiousSelfPlay(capacity=8, weighting="variance", mix_latest=0.2, snapshot_every=1, seed=0)
    cur.add_bot(0)
    game = TicTacToeEnv(32, seed=0)
    env = TransformedEnv(game, CurriculumTransform(cur))
    settings = PPOSettings(frames_per_batch=256, total_frames=256 * 4, minibatch_size=128, num_epochs=2, hidden=16)
    trainer, hook = make_ppo_trainer(env, cur, settings)
    net = trainer.loss_module.actor_network[0].module  # observation -> logits: what is snapshot
    cur.track(net)

    def bot(board):
        return 10.0 * torch.nn.functional.one_hot(scripted_move(board, board == 0), 9).float()

    opponents = OpponentPolicy(net, cur, bots=[bot])
    played = []

    def opponent(board, legal, ids):
        played.append(ids.clone())
        with torch.no_grad():
            logits = opponents(ids, board)
        return logits.masked_fill(~legal, float("-inf")).argmax(-1)

    game.opponent = opponent
    trainer.train()
    assert cur.iteration == 4 and cur.pool_size == 1 + 1 + 4  # the bot, the first snapshot, one per iteration
    ids = torch.cat(played)
    assert set(ids.unique().tolist()) >= {0, 1}  # the bot and snapshots were played
    games = cur.state["games"]
    assert int(games.sum()) == int(cur.counters["episodes"]) > 0
    assert bool((games[ids.unique()] > 0).any())
    assert all(0.0 <= r <= 1.0 for r in cur.win_rates().tolist())


def test_a_grid_of_opponent_ids_reaches_the_env_in_its_dtype():
    """A grid space holds the opponent id as a float; the transform writes it as the env's int64."""
    from torchrl.envs import TransformedEnv

    from currlearn.curricula import DomainRandomization
    from currlearn.envs.tictactoe import TicTacToeEnv
    from currlearn.integrations.torchrl import CurriculumTransform
    from currlearn.spaces import grid_space

    cur = DomainRandomization(grid_space({"task_id": [0.0]}), seed=0)
    assert cur.params(cur.sample(1))["task_id"].dtype == torch.float32
    env = TransformedEnv(TicTacToeEnv(4, seed=0), CurriculumTransform(cur))
    td = env.rollout(8, break_when_any_done=False)  # resets and steps stack: one dtype
    assert td["params", "task_id"].dtype == torch.int64 and td["next", "params", "task_id"].dtype == torch.int64


def test_the_ppo_actor_plays_legal_cells_only():
    """make_actor_critic masks a categorical action by the env's "action_mask"."""
    from currlearn.envs.tictactoe import TicTacToeEnv
    from currlearn.integrations.ppo import make_actor_critic

    env = TicTacToeEnv(64, seed=0)
    actor, _ = make_actor_critic(env, hidden=8)
    with torch.no_grad():
        td = env.rollout(4, actor, break_when_any_done=False)
    legal = td["action_mask"].gather(-1, td["action"].unsqueeze(-1))
    assert legal.all()


# --------------------------------------------------------------------------- the held-out bots
def _first_rewards(env, policy, start):
    """Each game's reward and outcome at its end, from a reset with ``start``'s opponents."""
    td = env.rollout(5, policy, break_when_any_done=False, auto_reset=False, tensordict=env.reset(start))
    done = td["next", "done"].squeeze(-1)
    assert done.any(-1).all()
    first = done.float().argmax(-1)
    rows = torch.arange(env.num_envs)
    return td["next", "reward"].squeeze(-1)[rows, first], td["next", "outcome"].squeeze(-1)[rows, first]


def _playing(bot: int, n: int) -> TensorDict:
    return TensorDict({"params": {"task_id": torch.full((n,), bot)}}, [n])


def test_the_minimax_solution_of_known_positions():
    from currlearn.envs.tictactoe import minimax_values

    q = minimax_values()
    digits = torch.tensor([3**i for i in range(9)])

    def values(board):
        return q[((torch.tensor(board) + 1) * digits).sum()].tolist()

    assert values([0] * 9) == [0.0] * 9  # every first move draws under perfect play
    # the mover (+1) wins at 2; taking 5 only blocks (a draw: the other still blocks 2 next);
    # any other free cell lets the other win at 5; taken cells -2
    assert values([1, 1, 0, -1, -1, 0, 0, 0, 0]) == [-2, -2, 1, -2, -2, 0, -1, -1, -1]
    # the other holds opposite corners, the mover the centre: an edge draws, a corner loses
    # (the forced block at the far corner gives the other a fork)
    assert values([-1, 0, 0, 0, 1, 0, 0, 0, -1]) == [-2, 0, -1, 0, -2, 0, -1, 0, -2]


def test_the_perfect_bot_never_loses_and_draws_itself():
    from currlearn.envs.tictactoe import TicTacToeEnv, perfect_move

    g = torch.Generator().manual_seed(1)

    def random_play(td):
        return td.set("action", torch.multinomial(td["action_mask"].float() + 1e-9, 1, generator=g).squeeze(-1))

    def perfect_play(td):
        return td.set("action", perfect_move(td["observation"], td["action_mask"], g))

    env = TicTacToeEnv(512, seed=0)
    reward, _ = _first_rewards(env, random_play, _playing(2, 512))
    assert (reward == 1).sum() == 0  # random play never beats it
    assert (reward == -1).float().mean() > 0.7  # and mostly loses
    _, outcome = _first_rewards(env, perfect_play, _playing(2, 512))
    assert torch.equal(outcome, torch.full((512,), 0.5))  # perfect against perfect: draws
    # the same perfect play beats the random bot most of the time and never loses to it
    reward, _ = _first_rewards(env, perfect_play, _playing(1, 512))
    assert (reward == -1).sum() == 0 and (reward == 1).float().mean() > 0.8


def test_each_game_plays_the_bot_its_id_names():
    from currlearn.envs.tictactoe import TicTacToeEnv

    n = 256
    env = TicTacToeEnv(n, seed=0)
    ids = torch.arange(n) % 3
    td = env.reset(_playing(0, n).set(("params", "task_id"), ids))
    assert torch.equal(td["params", "task_id"], ids)
    mine = ~td["board"].ne(0).any(-1)  # the learner moves first: it takes the corner 0
    action = torch.where(mine, torch.zeros(n, dtype=torch.long), td["action_mask"].float().argmax(-1))
    reply = env.step(td.set("action", action))["next", "board"][:, 4] == -1  # the opponent took the centre
    # against a corner the bots 0 (the centre first) and 2 (every other reply loses) take the
    # centre; the random bot takes it 1 time in 8
    assert reply[mine & (ids != 1)].all()
    assert reply[mine & (ids == 1)].float().mean() < 0.3
    with pytest.raises(ValueError, match=r"opponent id 3 names no scripted bot of TicTacToeEnv \(0-2"):
        env.reset(_playing(3, n))


@pytest.mark.parametrize(("metric", "rate"), [("outcome", 0.5), ("success", 0.0)])
def test_draws_count_half_with_the_outcome_metric(metric, rate):
    from torchrl.envs import TransformedEnv

    from currlearn.envs.tictactoe import TicTacToeEnv, perfect_move
    from currlearn.integrations.torchrl import CurriculumTransform

    cur = FictitiousSelfPlay(capacity=4, metric=metric, seed=0)
    cur.add_bot(2)  # slot 0: the perfect bot, which a perfect learner only draws
    g = torch.Generator().manual_seed(0)
    game = TicTacToeEnv(64, opponent=lambda board, legal, ids: perfect_move(board, legal, g), seed=0)
    env = TransformedEnv(game, CurriculumTransform(cur))
    batch = env.rollout(12, lambda td: td.set("action", perfect_move(td["observation"], td["action_mask"], g)),
                        break_when_any_done=False)  # fmt: skip
    feedback = cur.make_tracker()(batch)
    assert feedback.batch_size[0] >= 64
    cur.update(feedback)
    assert cur.state["games"][0] == feedback.batch_size[0]
    assert cur.win_rates()[0].item() == rate


def test_a_metric_outside_0_1_is_refused_unchanged():
    cur = FictitiousSelfPlay(capacity=2, metric="return", seed=0)
    cur.add_bot(0)
    fb = episode_feedback(torch.tensor([0, 0]), torch.tensor([1.0, -1.0]))  # a win and a loss as returns
    with pytest.raises(ValueError, match=r"metric='return' gave -1.0 for a game: .* use metric='outcome' or 'success'"):
        cur.update(fb)
    assert cur.state["games"].sum() == 0
