"""The Hydra app: composition, tiny real runs (subprocesses), resume, multirun + report,
bad input, Ctrl-C, and the installed wheel."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from currlearn.app.build import build_curriculum, build_env
from currlearn.app.settings import resolve as _resolve

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "frames=2048",
    "algo.frames_per_batch=1024",
    "eval.episodes=16",
    "progress=false",
    "log=none",
]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": ""}
ENV.pop("HYDRA_FULL_ERROR")


def _train(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "currlearn.app", *args],
        cwd=cwd,
        env=ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tree_hash(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- composition
def _compose(overrides: list[str]):
    with initialize_config_module("currlearn.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def test_compose_overrides_and_instantiate():
    cfg = _compose(
        [
            "curriculum=level",
            "curriculum.threshold=0.7",
            "env.gate_width=0.3",
            "seed=3",
        ]
    )
    conf = _resolve(cfg)
    assert conf["curriculum"]["threshold"] == 0.7
    assert conf["seed"] == 3
    assert conf["curriculum"]["levels"]["gate_width"][-1] == 0.3  # the ladder ends at the target
    cur = build_curriculum(conf)
    assert cur.num_levels == 5
    assert cur.threshold == 0.7
    env = build_env(conf, cur)
    td = env.reset()
    assert td["params", "gate_width"][0] == 8.0  # the first rung


ENVS = ["point_mass", "pendulum", "cartpole_params", "minigrid_doorkey_ladder", "minigrid_seeds"]
CURRICULA = [
    "none", "level", "scheduled", "sequential", "domain_randomization",
    "plr", "robust_plr", "learning_progress", "learnability", "easy_first", "competence", "alp_gmm", "adr",
]  # fmt: skip


# generated levels (task.generator, task.editor): their curricula and envs
LEVEL_ENVS = ["maze"]
LEVEL_CURRICULA = ["level_dr", "level_replay", "accel"]


# two-player games (an `opponent` and scripted bots): the opponent curricula and envs
OPPONENT_ENVS = ["tictactoe"]
OPPONENT_CURRICULA = ["self_play", "fsp", "pfsp"]


def test_every_curriculum_and_env_config_is_tested():
    conf_dir = REPO / "conf"
    envs, curricula = ENVS + LEVEL_ENVS + OPPONENT_ENVS, CURRICULA + LEVEL_CURRICULA + OPPONENT_CURRICULA
    assert sorted(p.stem for p in (conf_dir / "env").glob("*.yaml")) == sorted(envs)
    assert sorted(p.stem for p in (conf_dir / "curriculum").glob("*.yaml")) == sorted(curricula)


MICRO = [
    "frames=128", "algo.frames_per_batch=64", "algo.minibatch_size=32", "algo.num_epochs=1", "env.num_envs=2",
    "eval.episodes=2", "eval.max_steps=40", "progress=false", "log=none", "output.plots=false",
]  # fmt: skip


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("curriculum", CURRICULA)
def test_every_curriculum_trains_on_every_env(curriculum, env, tmp_path):
    """Two PPO iterations of the app (in-process) for every curriculum and env config."""
    from currlearn.app.run import run

    for kind in ["linear", "cosine", "step", "exponential"] if curriculum == "scheduled" else [None]:
        overrides = [f"curriculum={curriculum}", f"env={env}", *MICRO]
        if kind is not None:
            overrides.append(f"curriculum.schedules.kind={kind}")
        run_dir = tmp_path / str(kind)
        run_dir.mkdir()
        summary = run(_compose(overrides), run_dir)
        assert summary["frames"] == 128 and summary["iterations"] == 2, summary
        rows = _rows(run_dir / "metrics.csv")
        assert [int(r["frames"]) for r in rows] == [64, 128]
        assert any(k.startswith("task/") for k in rows[0]), rows[0]  # the envs played the curriculum's tasks
        assert summary["curriculum_metrics"]["curriculum/iteration"] == 2.0


@pytest.mark.parametrize("env", LEVEL_ENVS)
@pytest.mark.parametrize("curriculum", LEVEL_CURRICULA)
def test_every_level_curriculum_trains_on_every_level_env(curriculum, env, tmp_path):
    """Four PPO iterations of the app over generated levels, with a buffer small enough to
    replay (and, for ACCEL, edit) within them; the evaluation plays the held-out levels."""
    from currlearn.app.run import run

    overrides = [
        f"curriculum={curriculum}", f"env={env}", *MICRO, "frames=256", "env.max_steps=16",
        "curriculum.capacity=8", "curriculum.min_fill=0.25",
    ]  # fmt: skip
    summary = run(_compose(overrides), tmp_path)
    assert summary["iterations"] == 4, summary
    metrics = summary["curriculum_metrics"]
    assert metrics["curriculum/buffer_occupancy"] > 0 and metrics["curriculum/inserted"] > 0, metrics
    assert metrics["curriculum/samples"] > 0 and metrics["curriculum/iteration"] == 4.0
    if curriculum == "accel":
        assert metrics["curriculum/edits"] > 0, metrics
    rows = _rows(tmp_path / "metrics.csv")
    assert not any(k.startswith("task/") for k in rows[-1])  # levels are not scalar parameters
    assert "curriculum/buffer_wall_count" in rows[-1]
    snaps = sorted(int(p.stem) for p in (tmp_path / "levels").glob("*.pt"))
    assert snaps and snaps[-1] == 4  # the last iteration's buffer, at least


@pytest.mark.parametrize("env", OPPONENT_ENVS)
@pytest.mark.parametrize("curriculum", ["none", *OPPONENT_CURRICULA])
def test_every_opponent_curriculum_trains_on_every_game(curriculum, env, tmp_path):
    """Four PPO iterations of the app on a two-player game: the pool starts with the bot and
    takes a snapshot of the policy every iteration; `none` plays the bot only."""
    from currlearn.app.run import run

    overrides = [f"curriculum={curriculum}", f"env={env}", *MICRO, "frames=256"]
    if curriculum != "none":
        overrides.append("curriculum.snapshot_every=1")
    summary = run(_compose(overrides), tmp_path)
    assert summary["iterations"] == 4 and 0.0 <= summary["target_success"] <= 1.0, summary
    # the held-out bots of the env config: nobody beats the perfect player
    heldout = summary["heldout"]
    assert sorted(heldout) == ["perfect", "random"] and heldout["perfect"]["success"] == 0.0
    assert all(0.0 <= h["outcome"] <= 1.0 for h in heldout.values())
    assert summary["heldout_outcome"] == pytest.approx(
        (heldout["perfect"]["outcome"] + heldout["random"]["outcome"]) / 2
    )
    metrics = summary["curriculum_metrics"]
    if curriculum == "none":
        assert metrics["curriculum/task/0/episodes"] > 0
        return
    assert metrics["curriculum/pool_size"] == 1 + 1 + 4  # the bot, the first snapshot, one per iteration
    assert "curriculum/opponent/0/win_rate" in metrics and metrics["curriculum/samples"] > 0


def test_a_heldout_pool_is_another_runs_snapshots_played_by_the_policy(tmp_path):
    """A run's pool of snapshots is a held-out pool of a later run: loaded in the order the
    snapshots were added (bots left out), each game's opponent the best legal move of its
    snapshot's logits; a pool of another network is refused with one line."""
    import torch
    from torch.func import functional_call

    from currlearn.app.errors import AppError
    from currlearn.app.run import prepare, run

    first, second, none_run = tmp_path / "first", tmp_path / "later", tmp_path / "none"
    for d in (first, second, none_run):
        d.mkdir()
    overrides = ["curriculum=fsp", "env=tictactoe", *MICRO, "frames=256", "curriculum.snapshot_every=1"]
    run(_compose([*overrides, "curriculum.capacity=4"]), first)
    state = torch.load(first / "checkpoints" / "last.pt", weights_only=False)["trainer"]["curriculum"]["curriculum"]
    state = state["state"]
    # slot 0 the bot; snapshots 0, 1, 2 (at the start and after iterations 1, 2) in slots 1-3, then
    # 3 and 4 replace the oldest (slots 1, 2): the pool in the order added is slots 3, 1, 2
    order = [3, 1, 2]
    assert state["bot"].tolist() == [0, -1, -1, -1] and state["added"].tolist() == [0, 4, 5, 3]

    later = [f"+task.heldout.past={{pool:{first}}}", "curriculum=pfsp", "env=tictactoe", *MICRO, "frames=128"]
    p = prepare(_compose(later))
    try:
        entry = p.heldout["past"]
        assert entry.pool.capacity == 3
        assert torch.equal(entry.pool.snapshots["0", "weight"], state["params.0.weight"][order])
        g = torch.Generator().manual_seed(0)
        board = torch.randint(-1, 2, (32, 9), generator=g).float()
        legal = board == 0
        legal[:, 0] = True  # at least one free cell
        board[:, 0] = 0
        ids = torch.randint(0, 3, (32,), generator=g)
        net = p.trainer.loss_module.actor_network[0].module
        expected = torch.stack([
            functional_call(net, dict(entry.pool.opponent_params(i).flatten_keys(".").items()), (b,))
            .masked_fill(~lg, float("-inf")).argmax()
            for i, b, lg in zip(ids, board, legal)
        ])  # fmt: skip
        assert torch.equal(entry.opponent(board, legal, ids), expected)
    finally:
        p.close()
    summary = run(_compose(later), second)
    assert 0.0 <= summary["heldout"]["past"]["outcome"] <= 1.0
    assert summary["heldout_outcome"] == pytest.approx(sum(h["outcome"] for h in summary["heldout"].values()) / 3)
    with pytest.raises(AppError, match=r"task.heldout.past.pool: its snapshots' parameters .* do not fit"):
        prepare(_compose([*later, "algo.hidden=8"])).close()
    run(_compose(["curriculum=none", "env=tictactoe", *MICRO]), none_run)
    with pytest.raises(AppError, match=r"has no pool of policy snapshots: pass the directory of a run with"):
        prepare(_compose([f"+task.heldout.past={{pool:{none_run}}}", "curriculum=fsp", "env=tictactoe", *MICRO]))


def test_level_run_draws_the_buffer_levels(tmp_path):
    import torch
    from PIL import Image

    from currlearn.app.run import run

    overrides = [
        "curriculum=accel", "env=maze", *MICRO, "output.plots=true", "frames=512", "env.max_steps=16",
        "curriculum.capacity=8", "curriculum.min_fill=0.25",
    ]  # fmt: skip
    run(_compose(overrides), tmp_path)
    snaps = sorted(tmp_path.glob("levels/*.pt"), key=lambda p: int(p.stem))
    assert [int(p.stem) for p in snaps] == [1, 2, 3, 4, 5, 6, 7, 8]  # 8 iterations: every one (8 // 6)
    shot = torch.load(snaps[-1], weights_only=True)
    assert shot["images"].dtype == torch.uint8 and tuple(shot["images"].shape[1:]) == (13, 13, 3)
    assert torch.all(shot["scores"][:-1] >= shot["scores"][1:])  # the best levels first
    with Image.open(tmp_path / "levels.png") as im:
        assert im.size[0] > 300 and im.size[1] > 300


@pytest.mark.parametrize(
    ("curriculum", "env", "missing"), [("plr", "maze", "task.grid"), ("accel", "point_mass", "task.generator")]
)
def test_curricula_and_envs_of_the_other_kind_are_refused_in_one_line(curriculum, env, missing, tmp_path):
    r = _train(f"curriculum={curriculum}", f"env={env}", *MICRO, cwd=tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("currlearn-train: error:"), r.stderr
    assert missing in lines[0] and "generator" in lines[0] and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("app")
    run_dir = work / "run"
    r = _train(*TINY, f"hydra.run.dir={run_dir}", cwd=work)
    assert r.returncode == 0, r.stderr
    return run_dir


def test_doorkey_ladder_advances_in_the_app(tmp_path):
    """A short PPO run of the app on the MiniGrid DoorKey ladder (5x5 -> 6x6 -> 8x8): the level
    curriculum moves past 5x5 (seed 0 first promotes at about 41k frames)."""
    run_dir = tmp_path / "run"
    r = _train(
        "env=minigrid_doorkey_ladder",
        "curriculum=level",
        "frames=51200",
        "eval.episodes=2",
        "eval.every=0",  # evaluations of MiniGrid's long episodes would cost more than the training
        "progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=900,  # about 60 s on an idle 2-core machine
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["curriculum_metrics"]["curriculum/level_max"] >= 1, summary["curriculum_metrics"]


def test_tiny_run_writes_run_dir(tiny_run):
    for name in (
        ".hydra/config.yaml",
        "metrics.csv",
        "checkpoints/last.pt",
        "returns.png",
        "curriculum.png",
        "summary.json",
    ):
        assert (tiny_run / name).is_file(), name
    rows = _rows(tiny_run / "metrics.csv")
    assert [int(r["frames"]) for r in rows] == [1024, 2048]
    assert {"return", "success", "wall_time", "curriculum/level_mean", "task/gate_width"} <= set(rows[0])
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["curriculum"] == "level"
    assert summary["frames"] == 2048
    assert 0.0 <= summary["target_success"] <= 1.0
    assert not list(tiny_run.rglob("*.tmp"))


def test_resume_continues_frames(tiny_run, tmp_path):
    before = _tree_hash(tiny_run)
    r = _train(
        *TINY,
        "frames=4096",
        f"resume={tiny_run}",
        f"hydra.run.dir={tmp_path / 'run2'}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rows = _rows(tmp_path / "run2" / "metrics.csv")
    assert [int(r["frames"]) for r in rows] == [1024, 2048, 3072, 4096]
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["frames"] == 4096
    assert _tree_hash(tiny_run) == before  # the resumed run is left as it was


def test_multirun_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    r = _train(
        "-m",
        "curriculum=none,level",
        "seed=0,1",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert len(list(sweep.glob("*/metrics.csv"))) == 4
    rep = subprocess.run(
        [sys.executable, "-m", "currlearn.app.report", str(sweep)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr
    md = (sweep / "report.md").read_text()
    assert "| curriculum=none | 0,1 |" in md
    assert "| curriculum=level | 0,1 |" in md
    table = _rows(sweep / "report.csv")
    assert {r["group"] for r in table} == {"curriculum=none", "curriculum=level"}
    assert all(r["seeds"] == "2" for r in table)
    assert {
        "return_mean",
        "return_std",
        "return_min",
        "return_max",
        "success_mean",
        "episodes_mean",
        "wall_time_mean",
    } <= set(table[0])
    assert (sweep / "report_curves.png").is_file()


def test_report_bad_dir(tmp_path):
    rep = subprocess.run(
        [sys.executable, "-m", "currlearn.app.report", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode != 0
    assert rep.stderr.strip().count("\n") == 0
    assert rep.stderr.startswith("currlearn-report: error:")


def test_bad_input_with_the_default_logger_leaves_no_run_dir(tmp_path):
    """The CSV logger creates its directory when built: it is built after every check."""
    out = tmp_path / "bad"
    r = _train(*TINY[:-1], "algo.minibatch_size=4096", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 1
    assert "algo.minibatch_size=4096" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert not out.exists()


FIXED_ON_RESUME = [
    (["curriculum=plr"], ["curriculum._target_='currlearn.PrioritizedLevelReplay'", "LevelCurriculum"]),
    (["env.num_envs=8"], ["env.num_envs=8 cannot change on resume", "env.num_envs=16"]),
    (["algo.lr=0.01"], ["algo.lr=0.01", "algo.lr=0.0003"]),
    (["seed=5"], ["seed=5", "seed=0"]),
    (["curriculum.threshold=0.7"], ["curriculum.threshold=0.7", "curriculum.threshold=0.6"]),
]


@pytest.mark.parametrize(("args", "words"), FIXED_ON_RESUME, ids=[" ".join(a) for a, _ in FIXED_ON_RESUME])
def test_resume_refuses_to_change_what_defines_the_run(tiny_run, tmp_path, args, words):
    before = _tree_hash(tiny_run)
    out = tmp_path / "out"
    r = _train(*TINY, "frames=4096", f"resume={tiny_run}", *args, f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "cannot change on resume" in err, err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()
    assert _tree_hash(tiny_run) == before


def test_resume_keeps_the_budget_and_takes_changeable_settings(tiny_run, tmp_path):
    """Without frames= the resumed run keeps its budget (reached already here); checkpoint_every
    and eval come from the command line, and .hydra/config.yaml shows the config the run used."""
    r = _train("progress=false", "log=none", f"resume={tiny_run}", f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert r.returncode == 1 and "frames=2048 is reached already" in r.stderr, r.stderr
    out = tmp_path / "b"
    r = _train(
        "curriculum=none", "frames=4096", "checkpoint_every=1", "eval.episodes=4", "progress=false", "log=none",
        f"resume={tiny_run}", f"hydra.run.dir={out}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 1  # curriculum=none would change the run's curriculum
    r = _train(
        "frames=4096", "checkpoint_every=1", "eval.episodes=4", "progress=false", "log=none",
        f"resume={tiny_run}", f"hydra.run.dir={out}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    from omegaconf import OmegaConf

    shown = OmegaConf.load(out / ".hydra" / "config.yaml")
    assert shown.curriculum._target_ == "currlearn.LevelCurriculum"
    assert (shown.frames, shown.checkpoint_every, shown.eval.episodes) == (4096, 1, 4)
    assert shown.resume == str(tiny_run)


def test_an_existing_run_dir_is_refused_unless_resumed(tiny_run, tmp_path):
    before = _tree_hash(tiny_run)
    r = _train(*TINY, f"hydra.run.dir={tiny_run}", cwd=tmp_path)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "holds a run already" in err and f"resume={tiny_run}" in err, err
    assert _tree_hash(tiny_run) == before


def test_resume_from_a_directory_of_several_runs_is_refused(tiny_run, tmp_path):
    several = tmp_path / "several"
    for name in ("a", "b"):
        shutil.copytree(tiny_run, several / name)
    r = _train(*TINY, "frames=4096", f"resume={several}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 1
    assert "holds 2 checkpoints" in r.stderr and "pass the directory of one run" in r.stderr, r.stderr


def test_corrupted_checkpoint(tiny_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    ckpt = broken / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    before = _tree_hash(broken)
    r = _train(*TINY, "frames=4096", f"resume={broken}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "unreadable" in err and str(broken) in err, err
    assert _tree_hash(broken) == before


def test_full_error_shows_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", "curriculum=foo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**ENV, "HYDRA_FULL_ERROR": "1"},
    )
    assert r.returncode != 0
    assert "Traceback" in r.stderr


def _interrupt_twice(seen: list) -> None:
    import os

    from currlearn.app.hooks import StopOnSignal

    with StopOnSignal(trainer=None) as stop:
        seen.append(stop)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes
        assert stop.requested, "the first Ctrl-C was not recorded"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        pytest.fail("the second Ctrl-C did not interrupt")


def test_first_ctrl_c_waits_for_the_iteration_end_second_interrupts():
    from currlearn.app.errors import Interrupted

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen: list = []
    with pytest.raises(Interrupted) as info:
        _interrupt_twice(seen)
    assert info.value.signum == signal.SIGINT
    assert seen[0].requested and seen[0].signum == signal.SIGINT
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_at_the_iteration_end(tmp_path, signum, status):
    run_dir = tmp_path / "run"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "currlearn.app",
            "frames=1000000",
            "checkpoint_every=0",
            "progress=false",
            "log=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt once training runs (the first iteration's row is written); a loaded machine
    # may need a while to import torch in a fresh process.
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    if not (run_dir / "metrics.csv").exists():
        p.kill()
        pytest.fail(f"the run wrote no metrics.csv within 120 s (exit code {p.poll()}): {p.communicate()[1][-2000:]}")
    p.send_signal(signum)
    try:
        _, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"the run did not stop within 120 s of {signum!r}: {p.communicate()[1][-2000:]}")
    assert p.returncode == status, err
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert "checkpoint saved" in err
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    rows = _rows(run_dir / "metrics.csv")
    # saved at an iteration's end: the checkpoint holds exactly the iterations metrics.csv shows
    assert ckpt["iteration"] == len(rows) == int(rows[-1]["iteration"])
    assert ckpt["rows"][-1]["frames"] == int(rows[-1]["frames"])


# --------------------------------------------------------------------------- installed use
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "currlearn"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "outputs", "multirun", "__pycache__"),
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr[-300:]}")
    return next(out.glob("currlearn-*.whl"))


def test_wheel_contents(wheel):
    """The wheel holds every module of the package and every config of conf/ (as currlearn.conf)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(p.relative_to(REPO)) for p in (REPO / "currlearn").rglob("*.py")}
    wanted |= {
        f"currlearn/conf/{p.relative_to(REPO / 'conf')}"
        for p in (REPO / "conf").rglob("*")
        if p.suffix in (".yaml", ".py")
    }
    wanted |= {str(p.relative_to(REPO)) for p in (REPO / "hydra_plugins").rglob("*.py")}
    assert len(wanted) > 60
    assert not wanted - names, sorted(wanted - names)
    assert "hydra_plugins/__init__.py" not in names  # a namespace package
    assert not [n for n in names if n.startswith("conf/")]  # the tree is installed inside the package


def test_installed_wheel_user_app_and_train(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    env = {**ENV, "PYTHONPATH": str(site)}
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    # The user's own env: none of currlearn's env configs, only the task interface node.
    (app / "conf" / "config.yaml").write_text(
        "defaults:\n  - curriculum: plr\n  - _self_\ntask:\n  grid: {gravity: [1.0, 5.0, 9.8], mass: [0.5, 1.0]}\n"
    )
    (app / "my_app.py").write_text(
        "import hydra, currlearn\nfrom hydra.utils import instantiate\n"
        "@hydra.main(config_path='conf', config_name='config', version_base='1.3')\n"
        "def main(cfg):\n    cur = instantiate(cfg.curriculum, _convert_='all')\n"
        "    print('FROM', currlearn.__file__, type(cur).__name__, cur.space.num_tasks, cur.space.names)\n"
        "main()\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "my_app.py",
            "curriculum.temperature=0.5",
            f"hydra.run.dir={tmp_path / 'o'}",
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "PrioritizedLevelReplay 6 ('gravity', 'mass')" in r.stdout
    assert str(site) in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app", *TINY, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


def test_joblib_launcher_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    r = _train(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "curriculum=none,level", *TINY,
        f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(list(sweep.glob("*/summary.json"))) == 2


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], id="submitit_local"),
        pytest.param(
            [
                "hydra/launcher=ray",
                "+hydra.launcher.ray.init.num_cpus=2",
                "+hydra.launcher.ray.init.include_dashboard=false",
            ],
            id="ray",
        ),
    ],
)
def test_cluster_launcher_sweep_and_report(tmp_path, launcher):
    """The Slurm launcher's local twin and the Ray launcher (a local Ray cluster) run a
    curriculum sweep; currlearn-report aggregates it."""
    plugin = (
        "hydra_plugins.hydra_submitit_launcher" if "submitit" in launcher[0] else "hydra_plugins.hydra_ray_launcher"
    )
    pytest.importorskip(plugin)
    sweep = tmp_path / "sweep"
    r = _train("-m", *launcher, "curriculum=none,level", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(sweep.glob("*/summary.json"))
    assert len(runs) == 2, list(sweep.iterdir())
    assert {json.loads(p.read_text())["curriculum"] for p in runs} == {"none", "level"}
    r = subprocess.run(
        [sys.executable, "-m", "currlearn.app.report", str(sweep)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = (sweep / "report.md").read_text()
    assert "| curriculum=none |" in table and "| curriculum=level |" in table, table


# --------------------------------------------------------------------------- extending the app
EXT_MODULE = '''
import torch
from torchrl.envs import Compose, StepCounter, TransformedEnv

from currlearn import DiscreteCurriculum
from currlearn.envs import PendulumObservation, make_pendulum


def make_env(num_envs, max_steps, seed=None):
    """A new env: pendulums whose mass the curriculum sets."""
    return TransformedEnv(make_pendulum(num_envs, seed=seed), Compose(StepCounter(max_steps), PendulumObservation()))


def always(batch):
    """A user metric: 1 at every step (an episode's value is its length)."""
    return torch.ones(batch.shape, device=batch.device)


class HeaviestFirst(DiscreteCurriculum):
    """A new curriculum: level i drawn with weight (i + 1) ** power."""

    def __init__(self, space, power=2.0, seed=None, device=None):
        super().__init__(space, seed=seed, device=device)
        self.power = power

    def _compute_weights(self):
        w = torch.arange(1, self.space.num_tasks + 1, dtype=torch.float32, device=self.device) ** self.power
        return w / w.sum()
'''
EXT_ENV = """# @package _global_
env:
  _target_: my_ext.make_env
  num_envs: 8
  max_steps: 20
  seed: ${seed}
task:
  metric: return
  threshold: -100.0
  floor: -300.0
  target: {m: [2.0]}
  ladder: {m: [0.5, 1.0, 2.0]}
  grid: {m: [0.5, 1.0, 2.0]}
  low: {m: 0.5}
  high: {m: 2.0}
  stage: {max_episodes: 8}
"""
EXT_CURRICULUM = """_target_: my_ext.HeaviestFirst
space:
  _target_: currlearn.grid_space
  axes: ${task.grid}
power: 8.0
seed: ${oc.select:seed,null}
"""


def test_new_env_and_curriculum_from_a_config_dir(tmp_path):
    """One factory + one env YAML, one curriculum class + one YAML, outside the package: the
    app composes them through hydra.searchpath and trains with them."""
    ext = tmp_path / "ext"
    (ext / "conf" / "env").mkdir(parents=True)
    (ext / "conf" / "curriculum").mkdir(parents=True)
    (ext / "my_ext.py").write_text(EXT_MODULE)
    (ext / "conf" / "env" / "heavy_pendulum.yaml").write_text(EXT_ENV)
    (ext / "conf" / "curriculum" / "heaviest_first.yaml").write_text(EXT_CURRICULUM)
    run_dir = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable, "-m", "currlearn.app", f"hydra.searchpath=[file://{ext / 'conf'}]",
            "env=heavy_pendulum", "curriculum=heaviest_first", *TINY, "algo.frames_per_batch=512",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(ext)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(run_dir / "metrics.csv")
    assert len(rows) == 4
    # weights 1 : 256 : 6561 over m = 0.5, 1, 2: the envs play the heaviest pendulum almost always
    assert float(rows[-1]["task/m"]) > 1.8, rows[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["curriculum"], summary["env"]) == ("heaviest_first", "heavy_pendulum")
    assert summary["curriculum_metrics"]["curriculum/support"] == 3.0


def test_user_metric_selected_from_the_command_line(tmp_path):
    """curriculum.metric={_target_: ...} swaps the level curriculum's metric for a user
    function: with it the first level is passed at once; with success (about 0.1 at first) not."""
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "my_ext.py").write_text(EXT_MODULE)
    run_dir = tmp_path / "run"
    r = _train(
        "curriculum=level", "curriculum.metric={_target_:my_ext.always,_partial_:true}", *TINY,
        f"hydra.run.dir={run_dir}", cwd=tmp_path, env={**ENV, "PYTHONPATH": str(ext)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(run_dir / "metrics.csv")
    assert float(rows[-1]["curriculum/level_max"]) >= 1, rows[-1]


def test_base_install_without_matplotlib_writes_the_summary(tmp_path):
    """Without the plots extra the run still ends with its summary, and says why no plots."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    run_dir = tmp_path / "run"
    r = _train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path, env={**ENV, "PYTHONPATH": str(block)})
    assert r.returncode == 0, r.stderr
    assert (run_dir / "summary.json").is_file()
    assert not (run_dir / "returns.png").exists()
    assert "no plots (install matplotlib" in r.stderr


def test_a_user_env_config_without_task_node_is_told_what_to_add(tmp_path):
    conf = tmp_path / "conf" / "env"
    conf.mkdir(parents=True)
    (conf / "bare.yaml").write_text("_target_: currlearn.envs.PointMassGateEnv\nnum_envs: 4\n")
    r = _train(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "env=bare", *TINY, cwd=tmp_path)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "task.ladder" in err and "task interface node" in err, err


def test_cli_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "sys.argv = ['currlearn-train', '--help']\n"
        "from currlearn.app.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'tensordict', 'torchrl') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout, r.stdout[-500:]
    assert "curriculum: accel, adr, alp_gmm" in r.stdout and "log: csv, none, tensorboard, wandb" in r.stdout
    v = subprocess.run(
        [sys.executable, "-m", "currlearn.app", "--version"], env=ENV, capture_output=True, text=True, timeout=300
    )
    import currlearn

    assert v.stdout.strip() == f"currlearn-train (currlearn) {currlearn.__version__}"


def test_cuda_device_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = _train(*TINY, "device=cuda", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "device='cuda' is not available" in err and "device=cpu" in err, err
    assert not (tmp_path / "out").exists()


def test_a_logger_without_its_package_is_one_line_before_training(tmp_path):
    shadow = tmp_path / "shadow" / "wandb"  # a wandb that cannot be imported, whether or not it is installed
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), ENV.get("PYTHONPATH")]))}
    out = tmp_path / "out"
    r = _train(*TINY[:-1], "log=wandb", f"hydra.run.dir={out}", cwd=tmp_path, env=env)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "WandbLogger" in err and "No module named wandb" in err, err
    assert 'pip install "currlearn[wandb]"' in err
    assert not out.exists()


@pytest.mark.parametrize("curriculum", CURRICULA)
def test_curriculum_preset_states_every_constructor_argument(curriculum):
    """A preset names every argument of its class (no unknown key, none left to a default that
    could drift); their values may differ from the constructor's defaults (tuned presets)."""
    import inspect

    from hydra.utils import get_object

    node = _compose([f"curriculum={curriculum}"])["curriculum"]
    cls = get_object(node["_target_"])
    params = [p for p in list(inspect.signature(cls.__init__).parameters)[1:] if p not in ("args", "kwargs")]
    assert sorted(k for k in node if not k.startswith("_")) == sorted(params)


def test_resume_of_a_gymnasium_run_starts_new_episodes(tmp_path):
    """A Gymnasium env keeps its state outside the tensordict: the resumed run says that its
    envs start new episodes, and goes on."""
    args = ["env=cartpole_params", "env.num_envs=2", "algo.frames_per_batch=256", "algo.minibatch_size=128", *TINY[2:]]
    first = tmp_path / "first"
    r = _train(*args, "frames=512", f"hydra.run.dir={first}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    second = tmp_path / "second"
    r = _train(*args, "frames=1024", f"resume={first}", f"hydra.run.dir={second}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "the envs start new episodes" in r.stderr
    assert [int(row["frames"]) for row in _rows(second / "metrics.csv")] == [256, 512, 768, 1024]


def _wandb_records(path: Path):
    """The records of a W&B offline run file (LevelDB's log format: 32 KiB blocks of chunks,
    each with a 7-byte header: CRC, length, type), parsed as W&B's protobuf ``Record``."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, block = 7, b"", 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # the block's zero-padded tail
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            yield record
            chunks = b""


def _logged(log: str, run_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], str]:
    """What a TorchRL logger wrote: ``{name: [(step, value), ...]}`` and its hparams / config as text."""
    logs = run_dir / "logs"
    scalars: dict[str, list[tuple[int, float]]] = {}
    if log == "csv":
        for f in (logs / "currlearn" / "scalars").rglob("*.csv"):
            name = str(f.relative_to(logs / "currlearn" / "scalars").with_suffix(""))
            scalars[name] = [(int(a), float(b)) for a, b in (line.split(",") for line in f.read_text().split())]
        return scalars, "".join(p.read_text() for p in (logs / "currlearn" / "texts").glob("hparams*.txt"))
    if log == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(logs / "currlearn"))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
        return scalars, "".join(p.read_bytes().decode("latin-1") for p in (logs / "currlearn").rglob("events*"))
    (run,) = (logs / "wandb").glob("offline-run-*/run-*.wandb")
    config = []
    for record in _wandb_records(run):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            for name, value in items.items():
                step = items.get(f"{name.rpartition('/')[0]}/step", items.get("step"))  # TorchRL's step key
                if not name.startswith("_") and not name.endswith("step") and isinstance(value, (int, float)):
                    scalars.setdefault(name, []).append((int(step), float(value)))
        elif kind == "config":
            config += [f"{i.key or '.'.join(i.nested_key)}: {json.loads(i.value_json)}" for i in record.config.update]
    return scalars, "\n".join(config)


@pytest.mark.parametrize("log", ["csv", "tensorboard", "wandb"])
def test_every_logger_receives_training_evaluation_curriculum_and_config(tmp_path, log):
    """The per-iteration training return and success, the periodic evaluation on the target
    task, the curriculum's metrics and the resolved config, read back from each logger's files
    (W&B offline)."""
    pytest.importorskip(log if log != "csv" else "csv")
    run_dir = tmp_path / "run"
    env = {**ENV, "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    r = _train(*TINY[:-1], "frames=3072", "eval.every=2", "eval.every_episodes=8", f"log={log}",
               f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(run_dir / "metrics.csv")
    scalars, config = _logged(log, run_dir)
    for name in ("return", "success"):
        expected = [(int(row["frames"]), float(row[name])) for row in rows]
        assert [(f, pytest.approx(v, rel=1e-6)) for f, v in scalars[f"train/{name}"]] == expected, name
    evals = [(int(row["frames"]), float(row["eval/success"])) for row in rows if row["eval/success"]]
    assert [row["iteration"] for row in rows if row["eval/success"]] == ["2"]  # every 2 iterations
    assert [(f, pytest.approx(v, rel=1e-6)) for f, v in scalars["eval/success"]] == evals
    assert [f for f, _ in scalars["curriculum/level_mean"]] == [int(row["frames"]) for row in rows]
    assert "curriculum._target_" in config and "currlearn.LevelCurriculum" in config, config[:500]
    assert "env.num_envs" in config


def test_the_declared_settings_are_those_of_train_yaml():
    """The schema (what `+key=` may not add) declares exactly the keys and defaults of train.yaml."""
    import dataclasses

    from currlearn.app.schema import TrainSettings

    cfg = _compose([])
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    assert sorted(fields) == sorted(k for k in cfg if k != "hydra")
    for node in ("eval", "output"):
        declared = fields[node].default_factory()
        assert dataclasses.asdict(declared) == dict(cfg[node]), node
    for key in ("seed", "device", "num_threads", "frames", "checkpoint_every", "resume", "progress"):
        assert fields[key].default == cfg[key], key
    task_keys = {f.name for f in dataclasses.fields(fields["task"].default_factory())}
    for env in ENVS:
        assert set(_compose([f"env={env}"])["task"]) <= task_keys, env  # task.eval is optional (held-out seeds)


def test_a_checkpoint_without_todays_settings_resumes(tiny_run, tmp_path):
    """A run saved before a setting existed (here eval.every and eval.every_episodes) resumes
    with today's defaults for it."""
    import torch

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    path = old / "checkpoints" / "last.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("every", "every_episodes"):
        del ckpt["config"]["eval"][key]
    torch.save(ckpt, path)
    out = tmp_path / "out"
    r = _train("frames=4096", "progress=false", f"resume={old}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["frames"] for row in _rows(out / "metrics.csv")] == ["1024", "2048", "3072", "4096"]
