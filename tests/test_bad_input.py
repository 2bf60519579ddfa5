"""Bad input to ``currlearn-train``: each case is one line on stderr naming the key, the value
and what is allowed, a non-zero exit, no traceback, no run dir left behind and every file of
an existing run byte-identical.

The cases run the real entry point (``currlearn.app.cli.main``, Hydra included) in this
process; a few also run as real subprocesses (``test_bad_input_in_a_subprocess``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from currlearn.app import cli

TINY = ["frames=2048", "algo.frames_per_batch=1024", "eval.episodes=8", "progress=false", "log=none"]
ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"PYTHONWARNINGS": "ignore"}

# (arguments, words the one line must contain)
BAD = [
    # top-level settings: types, ranges, NaN / inf
    (["frames=abc"], ["frames='abc'", "an integer >= 1"]),
    (["frames=0"], ["frames=0", "an integer >= 1"]),
    (["frames=-5"], ["frames=-5", ">= 1"]),
    (["frames=1.5"], ["frames=1.5", "an integer"]),
    (["frames=inf"], ["frames=inf", "an integer"]),
    (["seed=-1"], ["seed=-1", "an integer >= 0"]),
    (["seed=nan"], ["seed=nan", "an integer >= 0"]),
    (["num_threads=0"], ["num_threads=0", ">= 1"]),
    (["checkpoint_every=-1"], ["checkpoint_every=-1", "an integer >= 0"]),
    (["checkpoint_every=true"], ["checkpoint_every=True", "an integer"]),
    (["progress=maybe"], ["progress='maybe'", "true or false"]),
    (["device=tpu"], ["device='tpu'", "cpu, cuda, cuda:N"]),
    (["device=cuda:x"], ["device='cuda:x'", "cpu, cuda, cuda:N"]),
    (["resume=/no/such/run"], ["resume", "/no/such/run"]),
    # keys that are no setting
    (["+foo=1"], ["foo is not a setting", "allowed keys", "frames"]),
    (["+eval.episods=8"], ["eval.episods is not a setting", "episodes"]),
    (["+task.ladr=1"], ["task.ladr is not a setting", "ladder"]),
    (["+output.plot=false"], ["output.plot is not a setting", "plots"]),
    (["frame=10"], ["frame", "frames"]),
    (["eval.episods=8"], ["eval.episods", "episodes"]),
    # eval
    (["eval.episodes=0"], ["eval.episodes=0", ">= 1"]),
    (["eval.episodes=nan"], ["eval.episodes=nan", "an integer"]),
    (["eval.max_steps=0"], ["eval.max_steps=0", ">= 1"]),
    (["eval.num_envs=0"], ["eval.num_envs=0", ">= 1", "or null"]),
    (["eval.every=-1"], ["eval.every=-1", ">= 0"]),
    (["eval.every_episodes=0"], ["eval.every_episodes=0", ">= 1"]),
    (["eval.deterministic=2"], ["eval.deterministic=2", "true or false"]),
    # output
    (["output.plots=maybe"], ["output.plots='maybe'", "true or false"]),
    (["output.metrics=a/b.csv"], ["output.metrics='a/b.csv'", "name inside the run dir"]),
    (["output.summary=''"], ["output.summary=''", "name inside the run dir"]),
    (["output.checkpoint_dir=.."], ["output.checkpoint_dir='..'", "name inside the run dir"]),
    (["output.metrics=."], ["output.metrics='.'", "name inside the run dir"]),
    (["output.checkpoint_dir=null"], ["output.checkpoint_dir=None", "name inside the run dir"]),
    # algo (PPOSettings)
    (["algo.lr=inf"], ["algo.lr=inf", "finite number > 0"]),
    (["algo.lr=-5"], ["algo.lr=-5", "finite number > 0"]),
    (["algo.entropy_coef=nan"], ["algo.entropy_coef=nan", "finite number >= 0"]),
    (["algo.clip_epsilon=inf"], ["algo.clip_epsilon=inf", "finite"]),
    (["algo.gamma=1.5"], ["algo.gamma=1.5", "[0, 1]"]),
    (["algo.lmbda=-0.1"], ["algo.lmbda=-0.1", "[0, 1]"]),
    (["algo.num_epochs=0"], ["algo.num_epochs=0", ">= 1"]),
    (["algo.hidden=abc"], ["algo.hidden='abc'", "integer"]),
    (["algo.max_grad_norm=0"], ["algo.max_grad_norm=0", "> 0"]),
    (["algo.minibatch_size=4096"], ["algo.minibatch_size=4096", "frames_per_batch=1024"]),
    (["+algo.foo=1"], ["algo", "foo"]),
    # curriculum
    (["curriculum=foo"], ["curriculum", "foo", "level", "none"]),
    (["curriculum.threshold=-0.5"], ["threshold", "-0.5", "[0, 1]"]),
    (["curriculum.threshold=abc"], ["threshold", "abc"]),
    (["curriculum.threshold=nan"], ["threshold", "nan"]),
    (["curriculum=scheduled", "+curriculum.schedules.totl=3"], ["curriculum.schedules.totl", "allowed", "total"]),
    (["curriculum=scheduled", "curriculum.schedules.total=0"], ["curriculum.schedules", "total", "0"]),
    (["curriculum=plr", "curriculum.staleness_coef=2"], ["staleness_coef", "2"]),
    (["curriculum=plr", "curriculum.temperature=-1"], ["temperature", "-1"]),
    (["curriculum=plr", "curriculum.prioritization=best"], ["prioritization", "best", "rank"]),
    (["curriculum=domain_randomization", "task.low.gate_width=inf"], ["inf"]),
    # env
    (["env=foo"], ["env", "foo", "point_mass"]),
    (["env.gate_height=1"], ["gate_height", "gate_width"]),
    (["+env.gate_height=1"], ["gate_height", "gate_width"]),
    (["env.gate_width=9"], ["gate_width", "9", "(0.0, 8.0]"]),
    (["env.num_envs=0"], ["env.num_envs=0", ">= 1"]),
    (["env.num_envs=abc"], ["env.num_envs='abc'", "integer"]),
    # the task interface
    (["task.ladder={}"], ["task.ladder={} changes nothing", "merges"]),
    (["~task.ladder", "+task.ladder={g: []}"], ["curriculum (currlearn.LevelCurriculum)", "empty"]),
    (["~task"], ["task"]),
    # logger
    (["log=foo"], ["log", "foo", "csv"]),
    # opponent curricula
    (
        ["curriculum=pfsp"],
        ["curriculum=PrioritizedFictitiousSelfPlay chooses opponents", "not a two-player env", "env=tictactoe"],
    ),
    (["env=tictactoe", "curriculum=fsp", "task.bots=0"], ["task.bots=0", "an int in [1, 15]"]),
    (["env=tictactoe", "curriculum=pfsp", "curriculum.weighting=soft"], ["weighting='soft'", "hard"]),
    # held-out evaluation tasks and pools
    (["env=tictactoe", "curriculum=fsp", "task.heldout=7"], ["task.heldout=7", "a mapping of names to tasks"]),
    (
        ["env=tictactoe", "curriculum=fsp", "+task.heldout.p={task_id:oops}"],
        ["task.heldout.p", "task_id", "non-empty list"],
    ),
    (
        ["env=tictactoe", "curriculum=fsp", "+task.heldout.p={pool:/no/such/run}"],
        ["task.heldout.p.pool='/no/such/run'", "no such run"],
    ),
    (
        ["env=tictactoe", "curriculum=fsp", "+task.heldout.p={pool:/x,n:1}"],
        ["task.heldout.p has ['n', 'pool']", "the one key pool"],
    ),
    (
        ["env=tictactoe", "curriculum=fsp", "+task.heldout.p={task_id:[1,5]}"],
        ["task.heldout.p has task_id 5", "TicTacToeEnv has bots 0-2 ['block', 'random', 'perfect']"],
    ),
    (["env=tictactoe", "curriculum=none", "task.target={task_id:[3]}"], ["task.target has task_id 3", "bots 0-2"]),
    (["env=tictactoe", "curriculum=fsp", "task.bots=4"], ["task.bots=4", "TicTacToeEnv has 3 scripted bots"]),
    (
        ["env=tictactoe", "curriculum=fsp", "task.bots=2"],
        ["task.heldout.random has task_id 1", "bots 0-1 are in the training pool (task.bots=2)"],
    ),
    (
        ["env=tictactoe", "curriculum=fsp", "+task.heldout.p={taskid:[2]}"],
        ["task.heldout.p has ['taskid']", "a task is an opponent, task_id"],
    ),
    (["+task.heldout.p={pool:.}"], ["task.heldout.p.pool='.'", "no checkpoint"]),
]

# multirun: a bad value in any job is one line before the first job runs
BAD_MULTIRUN = [
    (["seed=0,1", "algo.lr=3e-4,inf"], ["job 1 of the sweep", "algo.lr=inf", "finite number > 0"]),
    (["frames=2048,0"], ["job 1 of the sweep", "frames=0", ">= 1"]),
    (["curriculum=level,foo"], ["curriculum", "foo"]),
    (["eval.every=1,-1"], ["job 1 of the sweep", "eval.every=-1"]),
]


@pytest.fixture(scope="module")
def a_run(tmp_path_factory) -> Path:
    """A finished run, whose files no bad command may touch."""
    run_dir = tmp_path_factory.mktemp("app") / "run"
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *TINY, f"hydra.run.dir={run_dir}"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,  # about 8 s on an idle 2-core machine
    )
    assert r.returncode == 0, r.stderr
    return run_dir


def _tree_hash(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _main(argv: list[str], monkeypatch, cwd: Path) -> str:
    """Run ``currlearn-train argv`` in this process; the one-line error it exits with."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["currlearn-train", *argv])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as e:
            cli.main()
    finally:
        torch.set_num_threads(threads)
    code = e.value.code
    assert isinstance(code, str), f"exit status {code!r}, not an error message"  # sys.exit(msg): status 1
    return code


def _file_handlers() -> list[logging.FileHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [h for log in loggers for h in getattr(log, "handlers", ()) if isinstance(h, logging.FileHandler)]


def _check(err: str, words: list[str]) -> None:
    assert err.count("\n") == 0, err
    assert err.startswith("currlearn-train: error:"), err
    assert "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize(("args", "words"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line(a_run, tmp_path, monkeypatch, args, words):
    before = _tree_hash(a_run)
    out = tmp_path / "bad"
    _check(_main([*TINY, *args, f"hydra.run.dir={out}"], monkeypatch, tmp_path), words)
    assert not out.exists()  # no run dir left behind
    assert _tree_hash(a_run) == before
    # nor a log handler on the removed dir, which the next record in this process would fail on
    assert not [h for h in _file_handlers() if out in Path(h.baseFilename).parents]


@pytest.mark.parametrize(("args", "words"), BAD_MULTIRUN, ids=[" ".join(a) for a, _ in BAD_MULTIRUN])
def test_bad_value_in_a_multirun_is_caught_before_the_first_job(tmp_path, monkeypatch, args, words):
    sweep = tmp_path / "sweep"
    _check(_main(["-m", *TINY, *args, f"hydra.sweep.dir={sweep}"], monkeypatch, tmp_path), words)
    assert not sweep.exists()  # no job ran: nothing was written


def test_existing_run_dir_is_refused_unless_resumed(a_run, tmp_path, monkeypatch):
    before = _tree_hash(a_run)
    err = _main([*TINY, f"hydra.run.dir={a_run}"], monkeypatch, tmp_path)
    _check(err, [f"hydra.run.dir='{a_run}' holds a run already", f"resume={a_run}"])
    assert _tree_hash(a_run) == before


def test_a_dir_without_checkpoint_is_no_resume(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    _check(_main([*TINY, f"resume={empty}", f"hydra.run.dir={tmp_path / 'out'}"], monkeypatch, tmp_path), [
        "resume", str(empty)
    ])  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_an_unwritable_run_dir_is_one_line(tmp_path, monkeypatch):
    _check(_main([*TINY, "hydra.run.dir=/proc/currlearn-run"], monkeypatch, tmp_path), [
        "hydra.run.dir='/proc/currlearn-run' is not writable"
    ])  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_cuda_without_a_gpu(tmp_path, monkeypatch):
    _check(_main([*TINY, "device=cuda", f"hydra.run.dir={tmp_path / 'out'}"], monkeypatch, tmp_path), [
        "device='cuda' is not available", "device=cpu"
    ])  # fmt: skip


def test_the_table_is_at_least_fifty_cases():
    assert len(BAD) + len(BAD_MULTIRUN) + 4 >= 50


@pytest.mark.parametrize(
    ("args", "words"),
    [BAD[0], BAD[14], BAD[31], BAD_MULTIRUN[0]],
    ids=["frames=abc", "+foo=1", "algo.lr=inf", "multirun"],
)
def test_bad_input_in_a_subprocess(a_run, tmp_path, args, words):
    """The real console process: exit status 1 and the one line on stderr."""
    before = _tree_hash(a_run)
    out = tmp_path / "out"
    multirun = args is BAD_MULTIRUN[0][0]
    where = f"hydra.sweep.dir={out}" if multirun else f"hydra.run.dir={out}"
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *(["-m"] if multirun else []), *TINY, *args, where],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1
    _check(r.stderr.strip(), words)
    assert not out.exists()
    assert _tree_hash(a_run) == before
