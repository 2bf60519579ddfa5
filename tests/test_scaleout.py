"""The curriculum's decision pushed to collector workers through TorchRL weight-sync schemes.

Real ``MultiSyncCollector`` / ``MultiAsyncCollector`` with 2 worker processes (spawned: the env
factories are importable ones from ``currlearn.testing``). What the workers play is read back
from the batches they return: the parameters, and the decision version every transition carries.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import MultiAsyncCollector, MultiSyncCollector

from currlearn.feedback import EpisodeTracker
from currlearn.integrations.sync import CurriculumDecision, WorkerLostError, decision_schemes
from currlearn.integrations.torchrl import CurriculumHook, transform_path
from currlearn.schedules import LinearSchedule
from currlearn.testing import make_worker_curriculum, make_worker_pendulum

PATH = transform_path(make_worker_pendulum())  # e.g. "env.transform[1]"
MASSES = [LinearSchedule(0.5, 2.0, total=3)(i).item() for i in range(4)]  # 0.5, 1.0, 1.5, 2.0


def _collector(cls, curriculum, backend="process", frames=32, total=32 * 4, kwargs=None):
    return cls(
        [make_worker_pendulum] * 2,
        None,
        frames_per_batch=frames,
        total_frames=total,
        create_env_kwargs=kwargs or [{"worker": 0}, {"worker": 1}],
        weight_sync_schemes=decision_schemes(curriculum, PATH, backend=backend),
    )


# --------------------------------------------------------------------------- the decision module
def test_decision_carries_state_without_the_generator():
    cur, replica = make_worker_curriculum("ladder", 4), make_worker_curriculum("ladder", 4)
    sent, received = CurriculumDecision(cur), CurriculumDecision(replica)
    assert received.apply_to(replica) is None  # nothing pushed yet
    cur.state["level"].copy_(torch.tensor([0, 1, 2, 3]))
    cur.counters["episodes"] += 7
    cur.step(10)
    sent.capture(cur)
    rng = replica.generator.get_state()
    received.weights().update_(sent.weights())  # what a scheme does on the receiving side
    assert received.apply_to(replica) is False
    assert replica.state["level"].tolist() == [0, 1, 2, 3]
    assert int(replica.counters["episodes"]) == 7
    assert (replica.decision_version, replica.step_calls) == (cur.decision_version, cur.step_calls)
    assert torch.equal(replica.generator.get_state(), rng)
    assert received.apply_to(replica) is None  # loaded once
    assert replica.sample(4, env_ids=torch.arange(4)).tolist() == [0, 1, 2, 3]


def test_decision_half_written_is_not_loaded():
    cur, replica = make_worker_curriculum("ladder", 4), make_worker_curriculum("ladder", 4)
    sent, received = CurriculumDecision(cur), CurriculumDecision(replica)
    cur.state["level"].fill_(2)
    sent.capture(cur, refresh=True)
    weights = sent.weights()
    received.weights().update_(weights.exclude("seal"))  # the last buffer not written yet
    assert received.apply_to(replica) is None
    assert replica.state["level"].tolist() == [0, 0, 0, 0]
    received.seal.copy_(sent.seal)
    assert received.apply_to(replica) is True
    assert replica.state["level"].tolist() == [2, 2, 2, 2]


def test_decision_schema_is_fixed():
    cur = make_worker_curriculum("ladder", 4)
    decision = CurriculumDecision(cur)
    cur.state["level"] = torch.zeros(5, dtype=torch.int64)
    with pytest.raises(ValueError, match="'level' is now torch.int64 \\[5\\].*fixed shapes"):
        decision.capture(cur)
    assert int(decision.seq) == 0
    with pytest.raises(ValueError, match="backend='pipe' is not one of"):
        decision_schemes(cur, PATH, backend="pipe")
    with pytest.raises(TypeError, match="must be a currlearn Curriculum"):
        CurriculumDecision(object())


def test_generated_levels_are_refused_in_workers():
    """LevelReplay draws new levels where it samples: a worker's would never reach the trainer."""
    from currlearn.curricula.level_replay import LevelReplay
    from currlearn.envs.maze import MazeGenerator

    cur = LevelReplay(MazeGenerator(), capacity=8, fresh=4, seed=0)
    with pytest.raises(ValueError, match="LevelReplay cannot sample in collector workers: it generates new levels"):
        decision_schemes(cur, PATH)
    with pytest.raises(ValueError, match=r"ParallelEnv\(n, make_env\)"):
        CurriculumHook(cur, collector=object(), worker_path=PATH)


# --------------------------------------------------------------------------- worker processes
@pytest.mark.parametrize("backend", ["process", "shared"])
def test_multisync_workers_play_each_pushed_decision(backend):
    cur = make_worker_curriculum("schedule")
    collector = _collector(MultiSyncCollector, cur, backend)
    hook = CurriculumHook(cur, collector=collector, version_key="decision_version")
    assert hook.scheme is not None
    seen, versions = [], []
    try:
        for batch in collector:
            seen.append(batch["next", "params", "m"].unique().tolist())
            versions.append((batch["next", "decision_version"].unique().tolist(), cur.decision_version))
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()
    assert seen == [[pytest.approx(m)] for m in MASSES], seen
    # every transition carries the version of the decision the trainer had pushed last
    assert all(tags == [now] for tags, now in versions), versions
    assert int(cur.counters["episodes"]) == 4 * 32 // 4


def test_multiasync_batches_mixing_decisions_are_attributed():
    """Async batches mix the decisions before and after a push; the version each transition
    carries says which one it was played under, and episodes are carried per global env."""
    cur = make_worker_curriculum("schedule")
    kwargs = [{"worker": 0, "max_steps": 3}, {"worker": 1, "max_steps": 5}]
    collector = _collector(MultiAsyncCollector, cur, frames=14, total=14 * 12, kwargs=kwargs)
    hook = CurriculumHook(cur, collector=collector, env_id_key="env_id", version_key="decision_version")
    mass_at = {cur.decision_version: MASSES[0]}
    tracker = EpisodeTracker(env_id_key=("next", "env_id"), version_key=("next", "decision_version"))
    played, lengths = [], {}
    try:
        for batch in collector:
            played.append(torch.stack([batch["next", "decision_version"], batch["next", "params", "m"]], -1))
            fb = tracker(batch)
            for env, length in zip(fb["env_id"].tolist(), fb["length"].tolist()):
                lengths.setdefault(env, set()).add(length)
            hook.process_batch(batch)
            hook.end_iteration()
            mass_at[cur.decision_version] = MASSES[min(cur.iteration, 3)]
    finally:
        collector.shutdown()
    pairs = torch.cat([p.reshape(-1, 2) for p in played]).unique(dim=0).tolist()
    assert {int(v) for v, _ in pairs} > {min(mass_at)}, pairs  # the workers played pushed decisions
    for version, mass in pairs:
        assert mass == pytest.approx(mass_at[int(version)]), (version, mass, mass_at)
    assert played[-1][..., 1].unique().tolist() == [pytest.approx(2.0)]  # the final decision reached them
    # Each worker's batches alternate; the episodes of env 0-1 (3 steps) and 2-3 (5 steps) are
    # continued across batches of the same env only.
    assert lengths == {0: {3}, 1: {3}, 2: {5}, 3: {5}}, lengths


def test_per_env_ladders_across_workers():
    """A curriculum with one ladder per env: worker w's env i is global env w * n + i."""
    cur = make_worker_curriculum("ladder", 4)
    kwargs = [{"worker": 0, "kind": "ladder"}, {"worker": 1, "kind": "ladder"}]
    collector = _collector(MultiSyncCollector, cur, frames=32, total=32 * 3, kwargs=kwargs)
    hook = CurriculumHook(cur, collector=collector, env_id_key="env_id")
    per_env = []
    try:
        for i, batch in enumerate(collector):
            hook.process_batch(batch)
            if i == 0:
                cur.state["level"].copy_(torch.tensor([3, 2, 1, 0]))
            hook.end_iteration()
            per_env.append(batch["next", "params", "m"].reshape(4, -1)[:, -1].tolist())
            ids = batch["next", "env_id"].reshape(4, -1)[:, 0].tolist()
            assert ids == [0, 1, 2, 3], ids
    finally:
        collector.shutdown()
    # per-episode decisions apply from each env's next episode (4 steps; batches of 8 steps)
    assert per_env[0] == [0.5] * 4 and per_env[-1] == [2.0, 1.5, 1.0, 0.5], per_env
    # Each env's episodes reached its own ladder: 2 episodes per batch, and the first episode of
    # the second batch was drawn (at the first batch's last step) before the change, so it
    # counts only for env 3, whose level did not change.
    assert cur.state["count"].tolist() == [5, 5, 5, 6]


def test_resume_restores_the_decision_in_new_workers(tmp_path):
    cur = make_worker_curriculum("schedule")
    collector = _collector(MultiSyncCollector, cur, total=32 * 2)
    hook = CurriculumHook(cur, collector=collector)
    try:
        for batch in collector:
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()
    torch.save(hook.state_dict(), tmp_path / "curriculum.pt")

    fresh = make_worker_curriculum("schedule")
    collector = _collector(MultiSyncCollector, fresh, total=32)
    hook = CurriculumHook(fresh, collector=collector, version_key="decision_version")
    hook.load_state_dict(torch.load(tmp_path / "curriculum.pt", weights_only=False))
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    assert fresh.iteration == 2
    # the workers re-drew every env's task from the restored decision before their first step
    assert batch["next", "params", "m"].unique().tolist() == [pytest.approx(MASSES[2])]
    assert batch["next", "decision_version"].unique().tolist() == [fresh.decision_version]


def test_tracker_carries_episodes_per_env_id():
    """Two envs' batches in turn, as MultiAsyncCollector returns them: episodes continue per id."""
    tracker = EpisodeTracker(env_id_key=("next", "env_id"), version_key=("next", "decision_version"))

    def batch(env, done, version):
        done = torch.tensor([done], dtype=torch.bool).unsqueeze(-1)
        t = done.shape[1]
        nxt = {"done": done, "reward": torch.ones(1, t, 1), "task_id": torch.zeros(1, t, dtype=torch.int64)}
        nxt["env_id"] = torch.full((1, t), env)
        nxt["decision_version"] = torch.full((1, t), version)
        return TensorDict({"next": TensorDict(nxt, [1, t])}, [1, t])

    assert tracker(batch(0, [0, 0], 1)).shape[0] == 0
    assert tracker(batch(5, [0, 0, 0], 1)).shape[0] == 0
    fb = tracker(batch(0, [1, 0], 2))
    assert fb["env_id"].tolist() == [0] and fb["length"].tolist() == [3] and fb["decision_version"].tolist() == [2]
    fb = tracker(batch(5, [0, 1], 3))
    assert fb["env_id"].tolist() == [5] and fb["length"].tolist() == [5]
    state = tracker.state_dict()
    assert state["carry"].shape[0] == 6
    with pytest.raises(ValueError, match="env ids must be >= 0"):
        tracker(batch(-1, [1], 1))


def test_worker_with_another_curriculum_is_refused():
    cur = make_worker_curriculum("ladder", 4)  # the workers build the schedule
    with pytest.raises(ValueError, match="the worker's curriculum does not match the trainer's.*state__level"):
        collector = _collector(MultiSyncCollector, cur)
        collector.shutdown()


@pytest.mark.parametrize("backend", ["process", "shared"])
def test_a_dead_worker_ends_the_push_with_one_line(tmp_path, backend):
    """TorchRL's schemes wait for every worker's acknowledgement without a timeout; a push to a
    worker killed mid-run raises one line instead, and the checkpoint saved before is intact."""
    cur = make_worker_curriculum("schedule")
    collector = _collector(MultiSyncCollector, cur, backend, total=32 * 10)
    hook = CurriculumHook(cur, collector=collector)
    ckpt = tmp_path / "curriculum.pt"
    try:
        hook.process_batch(next(iter(collector)))
        hook.end_iteration()
        torch.save(hook.state_dict(), ckpt)
        saved = ckpt.read_bytes()
        os.kill(collector.procs[1].pid, signal.SIGKILL)
        collector.procs[1].join(timeout=60)
        # the scheme's own wait (the worker dies after the hook's check, during the push) ...
        hook.scheme.watch(collector.procs)
        with pytest.raises(WorkerLostError, match=r"^collector worker 1 is gone \(exit code -9\)"):
            collector.update_policy_weights_(weights=hook.scheme.source.weights(), model_id=f"{PATH}.decision")
        # ... and the hook's check before it
        with pytest.raises(WorkerLostError) as e:
            hook.end_iteration()
    finally:
        collector.shutdown()
    msg = str(e.value)
    assert "\n" not in msg and "worker 1" in msg and f"version {cur.decision_version}" in msg, msg
    assert ckpt.read_bytes() == saved
    fresh = CurriculumHook(make_worker_curriculum("schedule"))
    fresh.load_state_dict(torch.load(ckpt, weights_only=False))
    assert fresh.curriculum.iteration == 1


def _ppo_trainer(checkpoint, total):
    """A TorchRL Trainer (PPO) whose collector's 2 workers play the hook's curriculum."""
    from torchrl.objectives import ClipPPOLoss
    from torchrl.objectives.value import GAE
    from torchrl.trainers import Trainer, ValueEstimatorHook
    from torchrl.weight_update import SharedMemWeightSyncScheme

    from currlearn.integrations.ppo import make_actor_critic

    cur = make_worker_curriculum("schedule")
    actor, critic = make_actor_critic(make_worker_pendulum(), hidden=8)
    schemes = {"policy": SharedMemWeightSyncScheme(), **decision_schemes(cur, PATH)}
    collector = MultiSyncCollector(
        [make_worker_pendulum] * 2,
        actor,
        frames_per_batch=32,
        total_frames=total,
        create_env_kwargs=[{"worker": 0}, {"worker": 1}],
        weight_sync_schemes=schemes,
    )
    loss = ClipPPOLoss(actor, critic)
    trainer = Trainer(
        collector=collector,
        total_frames=total,
        frame_skip=1,
        optim_steps_per_batch=1,
        loss_module=loss,
        optimizer=torch.optim.Adam(loss.parameters(), lr=1e-3),
        save_trainer_file=str(checkpoint),
        save_trainer_interval=1,
        progress_bar=False,
    )
    ValueEstimatorHook(GAE(gamma=0.99, lmbda=0.95, value_network=critic)).register(trainer)
    hook = CurriculumHook(cur, collector=collector)
    played = []
    trainer.register_op("batch_process", lambda b: played.append(b["next", "params", "m"].unique().tolist()) or b)
    hook.register(trainer)
    return trainer, hook, collector, played


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_trainer_with_a_dead_worker_stops_and_resumes_from_its_checkpoint(tmp_path):
    """A real TorchRL Trainer checkpointing every iteration: worker 1 is killed during the
    third; train() ends with the one line, the checkpoint of the second is untouched, and a
    new trainer with new workers resumes from it, its workers playing the restored decision."""
    ckpt = tmp_path / "trainer.pt"
    trainer, hook, collector, played = _ppo_trainer(ckpt, total=32 * 10)
    saved = {}

    def kill_worker_1(batch):
        if hook.curriculum.iteration == 2:
            saved["bytes"] = ckpt.read_bytes()
            os.kill(collector.procs[1].pid, signal.SIGKILL)
            collector.procs[1].join(timeout=60)
        return batch

    trainer.register_op("batch_process", kill_worker_1)
    try:
        with pytest.raises(WorkerLostError, match=r"^collector worker 1 is gone \(exit code -9\)[^\n]*$"):
            trainer.train()
    finally:
        collector.shutdown()
    assert played == [[pytest.approx(m)] for m in MASSES[:3]], played
    assert ckpt.read_bytes() == saved["bytes"]

    trainer, hook, collector, played = _ppo_trainer(ckpt, total=32 * 3)
    trainer.load_from_file(ckpt, weights_only=False)
    assert hook.curriculum.iteration == 2
    trainer.train()  # one more iteration, from the 64 frames of the checkpoint
    assert played == [[pytest.approx(MASSES[2])]], played


# --------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _ray_collector(curriculum, total):
    from torchrl.collectors import Collector
    from torchrl.collectors.distributed import RayCollector

    return RayCollector(
        [make_worker_pendulum] * 2,
        policy=None,
        frames_per_batch=32,
        total_frames=total,
        collector_class=Collector,
        collector_kwargs=[{"create_env_kwargs": {"worker": w}} for w in (0, 1)],
        remote_configs={"num_cpus": 1},
        weight_sync_schemes=decision_schemes(curriculum, PATH, backend="ray"),
        sync=True,
    )


@pytest.mark.filterwarnings("error:RayCollector iteration started before weight synchronization:UserWarning")
def test_ray_collector_plays_each_pushed_decision_and_resumes(ray_cluster, tmp_path):
    """Two Ray actors on a local cluster (2 CPUs): pushes, then a resume into new actors."""
    cur = make_worker_curriculum("schedule")
    collector = _ray_collector(cur, total=32 * 3)
    hook = CurriculumHook(cur, collector=collector, version_key="decision_version")
    seen = []
    try:
        for batch in collector:
            seen.append(batch["next", "params", "m"].unique().tolist())
            assert batch["next", "decision_version"].unique().tolist() == [cur.decision_version]
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()
    assert seen == [[pytest.approx(m)] for m in MASSES[:3]], seen
    torch.save(hook.state_dict(), tmp_path / "curriculum.pt")

    fresh = make_worker_curriculum("schedule")
    collector = _ray_collector(fresh, total=32)
    hook = CurriculumHook(fresh, collector=collector)
    hook.load_state_dict(torch.load(tmp_path / "curriculum.pt", weights_only=False))
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    assert batch["next", "params", "m"].unique().tolist() == [pytest.approx(MASSES[3])]


def test_a_killed_ray_actor_ends_the_push_with_one_line(ray_cluster):
    cur = make_worker_curriculum("schedule")
    collector = _ray_collector(cur, total=32 * 10)
    hook = CurriculumHook(cur, collector=collector)
    try:
        hook.process_batch(next(iter(collector)))
        hook.end_iteration()
        actor = collector.remote_collectors[1]
        ray_cluster.kill(actor)
        for _ in range(600):  # ray.kill is asynchronous: wait until the actor is gone
            try:
                ray_cluster.get(actor.__ray_ready__.remote(), timeout=60)
            except ray_cluster.exceptions.RayActorError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the killed actor still answers after a minute")
        with pytest.raises(WorkerLostError, match="a collector worker is gone") as e:
            hook.end_iteration()
    finally:
        collector.shutdown()
    assert "\n" not in str(e.value), str(e.value)
