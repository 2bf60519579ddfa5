"""currlearn's config tree in other Hydra apps: found through the search-path plugin, never
shadowing a user's own configs or TorchRL's registered ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

USER_APP = """
from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class MyLevel:
    mine: int = 1


ConfigStore.instance().store(group="curriculum", name="level", node=MyLevel)


@hydra.main(config_path=None, config_name=None, version_base="1.3")
def main(cfg):
    print("COMPOSED", OmegaConf.to_container(cfg))


main()
"""


def _user_app(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    (tmp_path / "app.py").write_text(USER_APP)
    return subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "app.py", *overrides, f"hydra.run.dir={tmp_path / 'o'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_user_structured_config_wins_over_currlearns_yaml(tmp_path):
    r = _user_app(tmp_path, "+curriculum=level")
    assert r.returncode == 0, r.stderr  # no "schema matching" warning (an error here)
    assert "COMPOSED {'curriculum': {'mine': 1}}" in r.stdout, r.stdout


def test_the_plugin_adds_currlearns_configs_to_a_user_app(tmp_path):
    r = _user_app(tmp_path, "+curriculum=plr")
    assert r.returncode == 0, r.stderr
    assert "'_target_': 'currlearn.PrioritizedLevelReplay'" in r.stdout


def test_no_currlearn_config_collides_with_torchrls():
    code = (
        "import torchrl.trainers.algorithms.configs\n"
        "from hydra.core.config_store import ConfigStore\n"
        "repo = ConfigStore.instance().repo\n"
        "print(sorted(f'{g}/{n}' for g, v in repo.items() if isinstance(v, dict) for n in v))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    registered = set(eval(out.strip().splitlines()[-1]))
    assert "logger/csv.yaml" in registered  # the check sees TorchRL's registry
    ours = {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}
    assert len(ours) > 20
    assert not ours & registered, ours & registered
