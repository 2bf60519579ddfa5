"""TorchRL's own PPOTrainer, built from TorchRL's own configs, with the curriculum in ``hooks``.

The env is TorchRL's ``TransformedEnvConfig`` over currlearn's ``PointMassGateEnv`` with a
``CurriculumTransformConfig``; the hook is a ``CurriculumHookConfig`` in
``PPOTrainerConfig.hooks``, without a curriculum: it drives the transform's.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchrl.trainers.algorithms.configs import (
    AdamConfig,
    CollectorConfig,
    LazyTensorStorageConfig,
    MLPConfig,
    PPOLossConfig,
    PPOTrainerConfig,
    ReplayBufferConfig,
    SamplerWithoutReplacementConfig,
    TanhNormalModelConfig,
    TransformedEnvConfig,
    ValueModelConfig,
)

from currlearn import LevelCurriculum, PrioritizedLevelReplay
from currlearn.configs import (
    CurriculumHookConfig,
    CurriculumTransformConfig,
    DiscreteSpaceConfig,
    LevelCurriculumConfig,
    PrioritizedLevelReplayConfig,
)
from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform

pytestmark = [
    pytest.mark.filterwarnings("ignore:PPOTrainer is an experimental"),
    pytest.mark.filterwarnings("ignore:.*hook stage will be replaced:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

GATES = {"gate_width": [8.0, 4.0, 2.0, 1.0, 0.5], "gate_position": [0.0, 1.0, 2.0, 2.5, 2.5]}
NUM_ENVS, MAX_STEPS = 8, 10
FRAMES = NUM_ENVS * MAX_STEPS * 2  # per batch
OBS_DIM = 6  # PointMassGateEnv's observation


def _trainer_config(curriculum, hook, iterations: int = 3):
    """A root config ``{curriculum, trainer}``: TorchRL's PPOTrainerConfig whose env transform
    interpolates ``${curriculum}``.
    """
    env = TransformedEnvConfig(
        base_env={"_target_": "currlearn.envs.PointMassGateEnv", "num_envs": NUM_ENVS, "max_steps": MAX_STEPS},
        transform=CurriculumTransformConfig(curriculum="${curriculum}"),
    )
    actor = TanhNormalModelConfig(
        network=MLPConfig(in_features=OBS_DIM, out_features=4, depth=1, num_cells=16), return_log_prob=True
    )
    critic = ValueModelConfig(
        network=MLPConfig(in_features=OBS_DIM, out_features=1, depth=1, num_cells=16), in_keys=["observation"]
    )
    trainer = PPOTrainerConfig(
        collector=CollectorConfig(
            create_env_fn=env,
            policy="${trainer.loss_module.actor_network}",  # weights synced by the trainer's UpdateWeights
            frames_per_batch=FRAMES,
            total_frames=iterations * FRAMES,
        ),
        total_frames=iterations * FRAMES,
        optim_steps_per_batch=None,
        loss_module=PPOLossConfig(actor_network=actor, critic_network=critic),
        optimizer=AdamConfig(lr=1e-3),
        logger=None,
        save_trainer_file=None,
        replay_buffer=ReplayBufferConfig(
            storage=LazyTensorStorageConfig(max_size=FRAMES), sampler=SamplerWithoutReplacementConfig(), batch_size=80
        ),
        num_epochs=2,
        progress_bar=False,
        hooks=[hook],
    )
    return OmegaConf.create({"curriculum": curriculum, "trainer": trainer})


class _Record:
    """A ``batch_process`` op keeping a copy of every collected batch."""

    def __init__(self) -> None:
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch.clone())
        return batch


def _build(cfg):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = instantiate(cfg.trainer)
    record = _Record()
    trainer.register_op("batch_process", record)
    return trainer, record


def _assert_params_follow_the_tasks(batches, curriculum):
    for batch in batches:
        tasks = batch["next", "task_id"].reshape(-1)
        torch.testing.assert_close(batch["next", "params"].reshape(-1), curriculum.params(tasks))


def test_level_curriculum_in_torchrl_ppo_trainer_config():
    # threshold below any return: a promotion every min_episodes episodes, whatever the policy
    level = LevelCurriculumConfig(levels=GATES, threshold=-100.0, metric="return", min_episodes=8, seed=0)
    trainer, record = _build(_trainer_config(level, CurriculumHookConfig()))
    transform = trainer.collector.env.transform
    hook = trainer._modules["curriculum"]
    assert isinstance(transform, CurriculumTransform)
    assert isinstance(hook, CurriculumHook)
    assert hook.curriculum is transform.curriculum  # one object, however the config was wired
    assert hook.transform is transform
    try:
        trainer.train()
    finally:
        trainer.shutdown()
    cur = transform.curriculum
    assert isinstance(cur, LevelCurriculum)
    assert cur.iteration == len(record.batches) == 3
    _assert_params_follow_the_tasks(record.batches, cur)
    widths = [b["next", "params", "gate_width"].unique().tolist() for b in record.batches]
    assert widths[0] == [8.0], widths
    assert int(cur.level) >= 2, widths  # 16 episodes per batch, a promotion every 8
    assert min(widths[-1]) <= 2.0, widths  # the envs play the promoted levels


def test_plr_scores_from_ppo_advantages_in_torchrl_ppo_trainer_config():
    plr = PrioritizedLevelReplayConfig(space=DiscreteSpaceConfig(params=GATES), seed=0)
    trainer, record = _build(_trainer_config(plr, CurriculumHookConfig(feedback_at="pre_epoch")))
    hook = trainer._modules["curriculum"]
    transform = trainer.collector.env.transform
    # TorchRL registered its GAE and its replay-buffer fill before the hooks: the hook's op
    # runs between the two, on the unflattened batch that has the advantages.
    names = [op.__name__ for op, _ in trainer._pre_epoch_ops]
    assert names == ["ValueEstimatorHook", "first_epoch", "extend"], names
    try:
        trainer.train()
    finally:
        trainer.shutdown()
    cur = hook.curriculum
    assert isinstance(cur, PrioritizedLevelReplay)
    assert cur is transform.curriculum
    _assert_params_follow_the_tasks(record.batches, cur)
    assert int(cur.counters["episodes"]) == 3 * FRAMES // MAX_STEPS
    seen = cur.state["seen"]
    assert int(seen.sum()) > 0
    scores = cur.state["score"][seen]
    assert bool(torch.isfinite(scores).all())
    assert bool((scores > 0).all()), scores  # mean |advantage| of the levels' episodes


def test_hook_given_another_curriculum_object_raises():
    # The natural wiring that builds two objects: ${curriculum} in the transform and in the hook.
    level = LevelCurriculumConfig(levels=GATES, threshold=0.5, metric="success", seed=0)
    cfg = _trainer_config(level, CurriculumHookConfig(curriculum="${curriculum}"))
    with pytest.raises(InstantiationException, match="drop `curriculum` from the hook config"):
        _build(cfg)


def test_currlearn_config_names_do_not_collide_with_torchrl():
    code = (
        "from hydra.core.config_store import ConfigStore\n"
        "import torchrl.trainers.algorithms.configs\n"
        "repo = ConfigStore.instance().repo\n"
        "theirs = {(g, n) for g, names in repo.items() if isinstance(names, dict) for n in names}\n"
        "from currlearn.configs import _GROUPS\n"
        "ours = {(g, c._target_.rsplit('.', 1)[-1] + '.yaml') for g, cs in _GROUPS.items() for c in cs}\n"
        "assert ('hook', 'CurriculumHook.yaml') in ours and ('transform', 'CurriculumTransform.yaml') in ours\n"
        "assert ('transform', 'compose.yaml') in theirs\n"
        "print(sorted(ours & theirs))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
