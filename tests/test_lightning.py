"""The Lightning integration with a real ``lightning.Trainer`` on PointMassGateEnv (CPU, tiny budgets).

Episodes in these tests last exactly ``MAX_STEPS = 5`` steps: in 5 steps the point mass cannot
reach the wall (y = 0) from its start near y = -3, so every episode is truncated whatever the
policy does, and batches of ``NUM_ENVS * MAX_STEPS * 2`` frames end on episode boundaries.
The curriculum's path then does not depend on the policy's random actions, which is what
lets a resumed run be compared exactly with an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from torchrl.envs import Compose, TransformedEnv

from currlearn import (
    DiscreteSpace,
    DomainRandomization,
    EpisodeTracker,
    LevelCurriculum,
    LinearSchedule,
    ScheduledCurriculum,
)
from currlearn.envs import PointMassGateEnv
from currlearn.integrations.lightning import CurriculumCallback
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.integrations.lightning_ppo import CollectorDataset, PPOLightningModule
from currlearn.integrations.ppo import PPOSettings

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*IterableDataset. has .__len__. defined"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*isinstance.treespec, LeafSpec"),
    pytest.mark.filterwarnings("ignore:.*resuming from a mid-epoch checkpoint"),
    pytest.mark.filterwarnings("ignore:.*checkpoint that ended before the epoch ended"),
    pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization"),
    pytest.mark.filterwarnings("ignore:Be aware that when using .ckpt_path."),  # a callback not given again
]

GATES = {"gate_width": [8.0, 4.0, 2.0, 1.0, 0.5], "gate_position": [0.0, 1.0, 2.0, 2.5, 2.5]}
NUM_ENVS = 4
MAX_STEPS = 5
FRAMES = NUM_ENVS * MAX_STEPS * 2  # two whole episodes per env per batch
SETTINGS = PPOSettings(frames_per_batch=FRAMES, total_frames=FRAMES * 6, num_epochs=1, minibatch_size=FRAMES, hidden=8)


def _make_env(*transforms: CurriculumTransform) -> TransformedEnv:
    base = PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0)
    return TransformedEnv(base, transforms[0] if len(transforms) == 1 else Compose(*transforms))


def _make_module(*curricula, **transform_kwargs) -> PPOLightningModule:
    env = _make_env(*(CurriculumTransform(c, **transform_kwargs) for c in curricula))
    return PPOLightningModule(env, SETTINGS)


def _make_trainer(max_steps: int, callbacks: list, **kwargs) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _level_curriculum(seed: int) -> LevelCurriculum:
    # metric = episode length (always MAX_STEPS): a promotion every 12 episodes, independent of the policy
    return LevelCurriculum(GATES, threshold=float(MAX_STEPS), metric="metric", min_episodes=12, seed=seed)


def _length_tracker() -> EpisodeTracker:
    return EpisodeTracker(step_metric=lambda batch: torch.ones(batch.shape))


def _assert_states_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key in ("counters", "state"):
        assert actual[key].keys() == expected[key].keys()
        for name in expected[key]:
            torch.testing.assert_close(actual[key][name], expected[key][name], msg=f"{key}[{name!r}] differs")
    assert torch.equal(actual["rng"], expected["rng"]), "the generator state differs"


class _Probe(pl.Callback):
    """Records, at train start, the curricula's state (after any restore) and, per batch, its tasks."""

    def __init__(self, *curricula) -> None:
        self.curricula = curricula
        self.start_states: list[dict] = []
        self.batches: list[tuple[int, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_states = [c.state_dict() for c in self.curricula]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append((self.curricula[0].iteration, batch["next", "params", "gate_width"].clone()))


class _NoEnvModule(pl.LightningModule):
    """A module with plain tensor batches and no env or collector."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(torch.ones(4, 2), batch_size=2)


class TestCurriculumCallback:
    def test_updates_steps_and_logs(self, tmp_path: Path):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = _make_module(cur)
        callback = CurriculumCallback(cur)
        trainer = _make_trainer(3, [callback], logger=CSVLogger(tmp_path, name="run"), log_every_n_steps=1)
        trainer.fit(module)
        m = cur.metrics()
        assert m["curriculum/episodes"] == 3 * FRAMES / MAX_STEPS, m
        assert m["curriculum/iteration"] == 3
        assert m["curriculum/frames"] == 3 * FRAMES
        assert callback.transform is module.env.transform
        assert trainer.logged_metrics["curriculum/episodes"] == m["curriculum/episodes"]
        csv = (Path(trainer.logger.log_dir) / "metrics.csv").read_text()
        assert "curriculum/episodes" in csv.splitlines()[0]

    def test_log_interval(self, tmp_path: Path):
        """Metrics are reported once more than log_interval frames passed since the last report."""
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        calls = []
        metrics = cur.metrics

        def counting():
            calls.append(int(cur.counters["frames"]))
            return metrics()

        cur.metrics = counting
        _make_trainer(5, [CurriculumCallback(cur, log_interval=2 * FRAMES)]).fit(_make_module(cur))
        assert calls == [3 * FRAMES], calls  # frames 40, 80, 120 (> 80 since 0: report), 160, 200
        with pytest.raises(ValueError, match=r"log_interval must be an int >= 0.*-5"):
            CurriculumCallback(cur, log_interval=-5)

    def test_schedule_reaches_the_envs_before_the_next_collection(self):
        # ScheduledCurriculum changes mid-episode: after step k, batch k + 1 must be played
        # entirely at the scheduled value for iteration k (no batch fetched ahead).
        cur = ScheduledCurriculum({"gate_width": LinearSchedule(8.0, 2.0, total=3)}, seed=0)
        module = _make_module(cur)
        probe = _Probe(cur)
        _make_trainer(4, [CurriculumCallback(cur), probe]).fit(module)
        assert [it for it, _ in probe.batches] == [0, 1, 2, 3]
        for it, widths in probe.batches:
            expected = torch.tensor(8.0 - 2.0 * it)
            assert torch.allclose(widths, expected), f"iteration {it}: widths {widths.unique().tolist()}"

    @pytest.mark.parametrize("kind", ["domain_randomization", "level"])
    def test_resume_matches_uninterrupted_run(self, tmp_path: Path, kind: str):
        def make(seed: int):
            if kind == "level":
                cur = _level_curriculum(seed)
                return cur, CurriculumCallback(cur, tracker=_length_tracker())
            cur = DomainRandomization(DiscreteSpace(GATES), seed=seed)
            return cur, CurriculumCallback(cur)

        # uninterrupted: 6 batches, with a checkpoint after batch 3 (mid-epoch)
        cur_a, cb_a = make(seed=0)
        module_a = _make_module(cur_a)
        ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
        _make_trainer(6, [cb_a, ckpt], enable_checkpointing=True).fit(module_a)
        path = tmp_path / "epoch=0-step=3.ckpt"
        assert path.exists(), sorted(p.name for p in tmp_path.iterdir())

        # resumed: another seed, so only the checkpoint can make the runs agree
        cur_b, cb_b = make(seed=123)
        module_b = _make_module(cur_b)
        _make_trainer(6, [cb_b]).fit(module_b, ckpt_path=path)

        if kind == "level":
            assert int(cur_a.level) >= 2, "the test should see promotions"
        _assert_states_equal(cur_b.state_dict(), cur_a.state_dict())
        torch.testing.assert_close(module_b.env.transform.tasks, module_a.env.transform.tasks)
        torch.testing.assert_close(cur_b.sample(8), cur_a.sample(8))

    def test_resume_reapplies_checkpointed_tasks_without_sampling(self, tmp_path: Path):
        cur_a = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module_a = _make_module(cur_a)
        trainer = _make_trainer(2, [CurriculumCallback(cur_a)])
        trainer.fit(module_a)
        trainer.save_checkpoint(tmp_path / "a.ckpt")
        saved_tasks = module_a.env.transform.tasks.clone()
        saved = cur_a.state_dict()

        cur_b = DomainRandomization(DiscreteSpace(GATES), seed=7)
        module_b = _make_module(cur_b)
        probe = _Probe(cur_b)
        _make_trainer(3, [CurriculumCallback(cur_b), probe]).fit(module_b, ckpt_path=tmp_path / "a.ckpt")
        _assert_states_equal(probe.start_states[0], saved)  # restored, and re-applying drew no sample
        # the first resumed batch was played with the checkpointed tasks
        expected = cur_b.space.params(saved_tasks)["gate_width"]
        torch.testing.assert_close(probe.batches[0][1][:, 0], expected)

    def test_two_callbacks_in_one_checkpoint(self, tmp_path: Path):
        def make(seed: int):
            width = DomainRandomization(DiscreteSpace({"gate_width": [8.0, 4.0, 2.0]}), seed=seed)
            position = DomainRandomization(DiscreteSpace({"gate_position": [0.0, 1.0, 2.0]}), seed=seed + 1)
            env = _make_env(
                CurriculumTransform(width, task_key="width_id"), CurriculumTransform(position, task_key="position_id")
            )
            callbacks = [CurriculumCallback(width, name="width"), CurriculumCallback(position, name="position")]
            return width, position, PPOLightningModule(env, SETTINGS), callbacks

        width_a, position_a, module_a, callbacks_a = make(seed=0)
        trainer = _make_trainer(2, callbacks_a)
        trainer.fit(module_a)
        assert {"curriculum/width/episodes", "curriculum/position/episodes"} <= set(trainer.logged_metrics)
        trainer.save_checkpoint(tmp_path / "two.ckpt")
        states = torch.load(tmp_path / "two.ckpt", weights_only=True)["callbacks"]
        assert {"CurriculumCallback{'name': 'width'}", "CurriculumCallback{'name': 'position'}"} <= set(states)
        saved = [width_a.state_dict(), position_a.state_dict()]

        width_b, position_b, module_b, callbacks_b = make(seed=50)
        probe = _Probe(width_b, position_b)
        _make_trainer(3, [*callbacks_b, probe]).fit(module_b, ckpt_path=tmp_path / "two.ckpt")
        for restored, expected in zip(probe.start_states, saved, strict=True):
            _assert_states_equal(restored, expected)
        assert width_b.iteration == position_b.iteration == 3

    def test_same_name_twice_raises(self):
        a = DomainRandomization(DiscreteSpace(GATES), seed=0)
        b = DomainRandomization(DiscreteSpace(GATES), seed=1)
        with pytest.raises(RuntimeError, match=r"state_key` must be unique"):
            _make_trainer(1, [CurriculumCallback(a), CurriculumCallback(b)])

    def test_state_key_from_identity(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        assert CurriculumCallback(cur).state_key == "CurriculumCallback{'name': None}"
        assert CurriculumCallback(cur, name="gates").state_key == "CurriculumCallback{'name': 'gates'}"


def test_robust_plr_trains_on_replayed_levels_only():
    """PLR⊥ with Lightning: the PPO loss sees replayed transitions only; the curriculum still
    scores every episode (from the GAE the module computed on the whole batch)."""
    from currlearn import PrioritizedLevelReplay
    from currlearn.integrations.replay import ReplayDecisionTransform

    torch.manual_seed(0)
    cur = PrioritizedLevelReplay(
        DiscreteSpace(GATES), robust=True, replay_schedule="fixed", replay_prob=0.5, num_envs=NUM_ENVS, seed=0
    )
    module = PPOLightningModule(_make_env(CurriculumTransform(cur), ReplayDecisionTransform(cur)), SETTINGS)
    seen, forward = [], module.loss_module.forward

    def recording(td):
        seen.append(td["level_replay"].clone())
        return forward(td)

    module.loss_module.forward = recording
    batches = []

    class Count(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            batches.append(int(batch["level_replay"].sum()))

    # 6 optimiser steps; a batch with no replayed transition makes none
    _make_trainer(6, [Count(), CurriculumCallback(cur, tracker=cur.make_tracker())]).fit(module)
    assert batches[0] == 0, "nothing is seen before the first batch: no replay"
    assert 0 < sum(batches) < len(batches) * FRAMES, batches
    assert len(seen) == 6
    flags = torch.cat(seen)
    assert bool(flags.all()), "a transition of a new level reached the loss"
    assert flags.numel() == sum(batches)  # one epoch, one minibatch of all replayed transitions
    assert int(cur.counters["episodes"]) == len(batches) * FRAMES // MAX_STEPS


class TestCurriculumCallbackErrors:
    def test_constructor_arguments(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        with pytest.raises(TypeError, match="curriculum must be a currlearn Curriculum, got dict"):
            CurriculumCallback({})
        with pytest.raises(TypeError, match="transform must be a CurriculumTransform or None, got str"):
            CurriculumCallback(cur, transform="env")
        with pytest.raises(TypeError, match="tracker must be an EpisodeTracker or None"):
            CurriculumCallback(cur, tracker=object())
        with pytest.raises(ValueError, match="name must be None or a non-empty string without '/', got 'a/b'"):
            CurriculumCallback(cur, name="a/b")

    def test_module_without_env_or_collector(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        with pytest.raises(ValueError, match="_NoEnvModule has no `env` attribute and no `collector`"):
            _make_trainer(1, [CurriculumCallback(cur)]).fit(_NoEnvModule())

    def test_env_without_curriculum_transform(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = PPOLightningModule(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), SETTINGS)
        with pytest.raises(ValueError, match=r"pl_module\.env of PPOLightningModule has no CurriculumTransform"):
            _make_trainer(1, [CurriculumCallback(cur)]).fit(module)

    def test_env_driven_by_another_curriculum(self):
        used = DomainRandomization(DiscreteSpace(GATES), seed=0)
        other = DomainRandomization(DiscreteSpace(GATES), seed=0)
        with pytest.raises(ValueError, match=r"has 1 CurriculumTransform\(s\), driving other curricula"):
            _make_trainer(1, [CurriculumCallback(other)]).fit(_make_module(used))

    def test_found_through_collector(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = _make_module(cur)
        env = module.env
        object.__setattr__(module, "env", None)
        callback = CurriculumCallback(cur)
        _make_trainer(1, [callback]).fit(module)
        assert callback.transform is env.transform

    def test_non_tensordict_batch(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = _NoEnvModule()
        callback = CurriculumCallback(cur, transform=CurriculumTransform(cur))
        with pytest.raises(TypeError, match=r"needs TensorDict training batches .* got Tensor"):
            _make_trainer(1, [callback]).fit(module)

    @pytest.mark.parametrize(
        ("make_other", "match"),
        [
            (
                lambda: _level_curriculum(seed=0),
                "state_dict is from a DomainRandomization, cannot load it into a LevelCurriculum",
            ),
            (
                lambda: DomainRandomization(DiscreteSpace({"gate_width": [8.0, 1.0]}), seed=0),
                "state_dict is for the task space",
            ),
        ],
    )
    def test_checkpoint_from_another_curriculum(self, tmp_path: Path, make_other, match: str):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        trainer = _make_trainer(1, [CurriculumCallback(cur)])
        trainer.fit(_make_module(cur))
        trainer.save_checkpoint(tmp_path / "dr.ckpt")

        other = make_other()
        module = _make_module(other)
        before = other.state_dict()
        tasks_before = module.env.transform.tasks.clone()
        with pytest.raises(ValueError, match=match):
            _make_trainer(2, [CurriculumCallback(other)]).fit(module, ckpt_path=tmp_path / "dr.ckpt")
        _assert_states_equal(other.state_dict(), before)
        torch.testing.assert_close(module.env.transform.tasks, tasks_before)

    def test_checkpoint_saved_under_another_name(self, tmp_path: Path):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        trainer = _make_trainer(1, [CurriculumCallback(cur, name="old")])
        trainer.fit(_make_module(cur))
        trainer.save_checkpoint(tmp_path / "old.ckpt")
        fresh = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = _make_module(fresh)
        trainer = _make_trainer(2, [CurriculumCallback(fresh, name="new")])
        with pytest.raises(ValueError, match=r"no state for CurriculumCallback\{'name': 'new'\}.*'old'"):
            trainer.fit(module, ckpt_path=tmp_path / "old.ckpt")


class TestPPOLightningModule:
    def test_env_on_another_device_than_the_trainer(self):
        module = _make_module(DomainRandomization(DiscreteSpace(GATES), seed=0))
        object.__setattr__(module, "env", SimpleNamespace(device=torch.device("meta")))
        with pytest.raises(ValueError, match=r"PPOLightningModule is on cpu but its env .* is on meta"):
            _make_trainer(1, []).fit(module)


class TestCollectorDataset:
    def test_len_and_epochs_continue_the_collection(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        module = _make_module(cur)
        data = CollectorDataset(module.collector, num_batches=2)
        assert len(data) == 2
        first = list(data)
        second = list(data)
        assert len(first) == len(second) == 2
        assert first[0].shape == (NUM_ENVS, FRAMES // NUM_ENVS)
        # the second epoch continues the same stream (no new env reset, hence new samples)
        assert cur.counters["samples"] == NUM_ENVS * (1 + 2 * 4)

    def test_num_batches_validated(self):
        with pytest.raises(ValueError, match="num_batches must be an int >= 1, got 0"):
            CollectorDataset([], num_batches=0)
