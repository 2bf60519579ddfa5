"""`import currlearn` stays light: no optional framework is imported with the core."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("lightning", "hydra", "omegaconf", "matplotlib", "torchrl", "wandb", "ray", "gymnasium")


def test_import_currlearn_imports_no_optional_framework():
    code = "import sys, currlearn; print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import currlearn pulled in: {out}"


@pytest.mark.parametrize("name", ["currlearn.integrations.torchrl", "currlearn.envs", "currlearn.integrations.ppo"])
def test_integration_modules_import(name):
    __import__(name)
