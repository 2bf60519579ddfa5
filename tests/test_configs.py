"""Structured configs: parity with the constructors, ConfigStore registration, instantiation."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
from hydra.utils import instantiate
from omegaconf import MISSING, OmegaConf

import currlearn
from currlearn.configs import (
    LevelCurriculumConfig,
    LinearScheduleConfig,
    config_classes,
    register_configs,
)


def _resolve(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _ctor_params(cls: type) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls).parameters
    out = {n: p for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if dataclasses.is_dataclass(cls):  # the signature shows a default_factory as <factory>
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                out[f.name] = out[f.name].replace(default=f.default_factory())
    return out


@pytest.mark.parametrize("target", sorted(config_classes()))
def test_config_matches_constructor(target):
    conf = config_classes()[target]
    cls = _resolve(target)
    fields = {f.name: f for f in dataclasses.fields(conf) if f.name != "_target_"}
    params = _ctor_params(cls)
    assert list(fields) == list(params), f"{conf.__name__} fields differ from {cls.__name__}'s arguments"
    for name, p in params.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if p.default is inspect.Parameter.empty:
            assert default is MISSING, f"{conf.__name__}.{name} should be MISSING (the constructor has no default)"
        else:
            assert default == p.default, f"{conf.__name__}.{name}: {default!r} != {p.default!r}"


def test_every_public_class_has_a_config():
    targets = set(config_classes())
    public = [getattr(currlearn, n) for n in currlearn.__all__]
    wanted = [
        c
        for c in public
        if inspect.isclass(c)
        and not inspect.isabstract(c)
        and c.__name__
        not in (
            "Curriculum",
            "DiscreteCurriculum",
            "TaskSpace",
            "Schedule",
            "EpisodeTracker",
            "ProductSpace",
        )
    ]
    built = {_resolve(t) for t in targets}  # a config may name the class by its defining module
    missing = [c.__name__ for c in wanted if c not in built]
    assert not missing, f"no structured config for {missing}"


def test_register_configs_stores_groups():
    from hydra.core.config_store import ConfigStore

    register_configs()
    repo = ConfigStore.instance().repo
    assert "LevelCurriculum.yaml" in repo["curriculum"]
    assert "LinearSchedule.yaml" in repo["schedule"]
    assert "PPOSettings.yaml" in repo["algo"]


def test_instantiate_structured_configs():
    cfg = OmegaConf.structured(
        LevelCurriculumConfig(levels={"gate_width": [8.0, 0.5]}, threshold=0.6, metric="success")
    )
    cur = instantiate(cfg, _convert_="all")
    assert isinstance(cur, currlearn.LevelCurriculum)
    assert cur.num_levels == 2
    sched = instantiate(OmegaConf.structured(LinearScheduleConfig(init=0.0, final=1.0, total=4)))
    assert float(sched(2)) == pytest.approx(0.5)
    with pytest.raises(Exception, match="threshold"):
        instantiate(OmegaConf.structured(LevelCurriculumConfig(levels={"g": [1.0]}, threshold="high")))
    # per-level thresholds (one per promotion) and demotion thresholds, through the structured config
    staged = instantiate(
        OmegaConf.structured(
            LevelCurriculumConfig(
                levels={"speed": [4.0, 6.0, 8.0, 10.0]}, threshold=[50, 100, 150], demote_threshold=[10, 20, 30]
            )
        ),
        _convert_="all",
    )
    assert staged.threshold == [50.0, 100.0, 150.0]
    assert staged.demote_threshold == [10.0, 20.0, 30.0]
