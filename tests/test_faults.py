"""Faults in the middle of a run (real subprocesses): an env worker killed, a write that fails.

Each ends the run with one line naming what failed and the checkpoint that is kept, a
non-zero exit and no hang; the kept checkpoint loads and no temporary file is left behind.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"PYTHONWARNINGS": "ignore"}
TIMEOUT = 300  # s per run: under 20 s on an idle 2-core machine, torch's import included
COMMON = ["checkpoint_every=1", "eval.episodes=4", "eval.every=0", "progress=false", "log=none", "output.plots=false"]


def _rows(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[-1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc")
def test_a_dead_env_worker_ends_the_run_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "env=cartpole_params", "env.batched=parallel", "env.num_envs=2", "algo.frames_per_batch=256",
        "algo.minibatch_size=128", "frames=1000000", *COMMON, f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    p = subprocess.Popen(
        [sys.executable, "-m", "currlearn.app", *args], cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and p.poll() is None and _rows(run_dir) < 2:
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()[1][-3000:]
        workers = [c for c in _children(p.pid) if "spawn_main" in _cmdline(c)]
        assert len(workers) == 2, [_cmdline(c) for c in _children(p.pid)]
        os.kill(workers[-1], signal.SIGKILL)
        _, stderr = p.communicate(timeout=TIMEOUT)  # no hang
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1
    line = _error_line(stderr)
    assert line.startswith("currlearn-train: error: env worker "), line
    assert "died (exit code -9)" in line and "the checkpoint of iteration" in line, line
    assert f"resume={run_dir}" in line
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert f"the checkpoint of iteration {ckpt['iteration']} is kept" in line
    assert not list(run_dir.rglob("*.tmp"))


def _limit_file_size(limit: int):
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return setup


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    """Files may grow to a limit (RLIMIT_FSIZE, a full disk's stand-in) that the checkpoint of
    iteration 2 fits in and that of iteration 3 (it holds one metrics row more) does not."""
    args = ["algo.frames_per_batch=1024", *COMMON]
    ref = tmp_path / "ref"
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *args, "frames=2048", f"hydra.run.dir={ref}"],
        env=ENV, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    size2 = (ref / "checkpoints" / "last.pt").stat().st_size
    run_dir = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *args, "frames=8192", f"hydra.run.dir={run_dir}"],
        env=ENV, capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=_limit_file_size(size2 + 256),
    )  # fmt: skip
    assert r.returncode == 1, r.stderr[-3000:]
    line = _error_line(r.stderr)
    assert line.startswith("currlearn-train: error: writing the results of iteration 3 failed"), line
    assert f"File too large: {run_dir / 'checkpoints' / 'last.pt'}" in line, line
    assert "the checkpoint of iteration 2 is kept" in line, line
    kept = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert kept["iteration"] == 2 and len(kept["rows"]) == 2
    assert not list(run_dir.rglob("*.tmp"))
    # and the run goes on from it
    more = tmp_path / "more"
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *args, "frames=4096", f"resume={run_dir}", f"hydra.run.dir={more}"],
        env=ENV, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert _rows(more) == 4
