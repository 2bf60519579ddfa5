"""The notebooks run top to bottom at a tiny budget (nbclient, the venv's ``python3`` kernel),
and are stored without outputs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart", "02_compare_curricula", "03_lightning", "04_accel_levels"]
TINY_FRAMES = {"01_quickstart": 2048, "02_compare_curricula": 1024, "03_lightning": 2048, "04_accel_levels": 4096}
TIMEOUT_S = 60  # per notebook: a notebook that runs longer fails


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no 'python3' kernel: install ipykernel into this environment (pip install -e '.[dev]').")
    # jupyter_client runs a spec whose argv[0] is "python"/"python3" with sys.executable: this venv
    assert spec.argv[0] in {"python", "python3", sys.executable}, spec.argv
    return "python3"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    first = code[0].source
    assert "class Args" in first and "CURRLEARN_NB_FRAMES" in first and '"""' in first
    assert any("# currlearn:" in c.source for c in code)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_tiny_budget(name, tmp_path, monkeypatch):
    monkeypatch.setenv("CURRLEARN_NB_FRAMES", str(TINY_FRAMES[name]))
    monkeypatch.setenv("CURRLEARN_NB_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=_kernel_name(),
        timeout=TIMEOUT_S,  # per cell; the whole run is checked below
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S, f"{name} took {elapsed:.1f} s at the tiny budget (limit {TIMEOUT_S} s)"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
    nbformat.write(nb, tmp_path / f"{name}.executed.ipynb")  # for inspection
