"""One training run: build from the config, train with the app's hooks, evaluate, summarise."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from currlearn.app.errors import PROG, AppError, Interrupted, WriteFailed, first_line

__all__ = ["Prepared", "check", "prepare", "run"]


def _choice(group: str, node: Any) -> str:
    """The option chosen for ``group`` (Hydra's runtime choices), else the target's class name."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices[group])
    except Exception:
        target = node.get("_target_") if isinstance(node, Mapping) else None
        return str(target).rsplit(".", 1)[-1] if target else "none"


def _overrides() -> list[str] | None:
    """The command line's overrides (Hydra's), or None outside a Hydra app."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:
        return None


def _finite(x: Any) -> Any:
    """JSON has no NaN or inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return x


@dataclass
class Prepared:
    """What :func:`prepare` builds from a config: everything that can refuse it."""

    conf: dict[str, Any]
    choices: dict[str, str]
    ckpt: dict[str, Any] | None
    curriculum: Any
    eval_curriculum: Any
    heldout: dict[str, Any]
    env: Any
    trainer: Any
    hook: Any

    def close(self) -> None:
        """Shut the collector and the envs down (a check that trains nothing)."""
        collector = getattr(self.trainer, "collector", None)
        for closing in (getattr(collector, "shutdown", None), getattr(self.env, "close", None)):
            if closing is not None:
                with contextlib.suppress(Exception):  # already closed
                    closing()


def prepare(cfg: Any, overrides: list[str] | None = None, choices: dict[str, str] | None = None) -> Prepared:
    """Check a composed config and build the run from it, writing nothing.

    Args:
        cfg: the composed config (``DictConfig`` or mapping).
        overrides (list of str, optional): the command line's overrides (a resume refuses
            those that would change the run); default: Hydra's, when inside a Hydra app.
        choices (dict, optional): the options chosen for ``curriculum`` and ``env``; default:
            Hydra's, else the targets' class names.

    Raises:
        AppError: bad input (one line naming the key, the value and what is allowed).
    """
    import torch

    from currlearn.app import build, settings
    from currlearn.app import checkpoint as ck
    from currlearn.app.checkpoint import load_checkpoint

    warnings.filterwarnings("ignore", message=".*hook stage will be replaced.*", category=FutureWarning)
    if choices is None:
        choices = {g: _choice(g, cfg.get(g) if hasattr(cfg, "get") else None) for g in ("curriculum", "env")}
    conf = settings.resolve(cfg)
    ckpt = None
    source = settings.resume_dir(conf)
    if source is not None:
        ckpt = load_checkpoint(source)
        conf = settings.merge_resumed(conf, ckpt.get("config") or {}, _overrides() if overrides is None else overrides)
        choices = ckpt.get("choices", choices)
        done = ckpt["rows"][-1]["frames"] if ckpt.get("rows") else 0
        if done >= conf["frames"]:
            raise AppError(
                f"frames={conf['frames']} is reached already by the resumed run ({done} frames): pass a larger frames."
            )
    settings.validate(conf)
    torch.set_num_threads(conf["num_threads"])
    ck.seed_everything(conf["seed"])
    curriculum = build.build_curriculum(conf)
    eval_curriculum = build.build_eval_curriculum(conf)  # task.eval / task.target checked now, not after training
    heldout = build.build_heldout(conf)
    build.seed_opponent_pool(conf, curriculum)
    env = build.build_env(conf, curriculum)
    build.check_two_player(env, curriculum)
    build.check_bot_ids(conf, env, curriculum, eval_curriculum, heldout)
    trainer, hook = build.build_trainer(conf, env, curriculum)
    build.play_opponents(env, curriculum, trainer)
    build.play_heldout_pools(heldout, env, trainer)
    return Prepared(conf, choices, ckpt, curriculum, eval_curriculum, heldout, env, trainer, hook)


def check(cfg: Any) -> None:
    """Check a job's composed config as :func:`run` would, training nothing and writing
    nothing (the multirun sweeper checks every job with it before the first starts).

    Raises:
        AppError: as :func:`prepare`.
    """
    hydra_node = cfg.get("hydra") if hasattr(cfg, "get") else None
    overrides = choices = None
    if hydra_node is not None:
        overrides = list(hydra_node.overrides.task)
        picked = hydra_node.runtime.choices
        choices = {g: str(picked.get(g)) for g in ("curriculum", "env")}
    prepare(cfg, overrides, choices).close()


def _dead_workers(env: Any) -> list[tuple[int, int | None, int | None]]:
    """``(index, pid, exit code)`` of each worker process of ``env`` (a ``ParallelEnv``, maybe
    inside a ``TransformedEnv``) that is no longer alive.
    """
    from torchrl.envs import ParallelEnv, TransformedEnv

    while isinstance(env, TransformedEnv):
        env = env.base_env
    workers = env.__dict__.get("_workers") or [] if isinstance(env, ParallelEnv) else []
    # TorchRL terminates and closes the other workers once it finds a dead one
    return [
        (i, w.pid, w.exitcode) for i, w in enumerate(workers) if not getattr(w, "_closed", False) and not w.is_alive()
    ]


LEVEL_SNAPSHOTS = 6  # snapshots of a level buffer over a run (levels.png has a row each)


def _level_snapshots(conf: Mapping[str, Any], curriculum: Any, metrics: Any, run_dir: Path) -> list[Any]:
    """The :class:`~currlearn.app.hooks.LevelSnapshots` of a level-buffer curriculum whose
    generator can draw its levels (``render``), else none."""
    from currlearn.app.hooks import LevelSnapshots
    from currlearn.curricula.level_replay import LevelReplay

    render = getattr(getattr(curriculum, "level_generator", None), "render", None)
    if not isinstance(curriculum, LevelReplay) or not callable(render):
        return []
    iterations = max(1, conf["frames"] // conf["algo"]["frames_per_batch"])
    every = max(1, iterations // LEVEL_SNAPSHOTS)
    return [LevelSnapshots(run_dir / "levels", curriculum, render, metrics, every)]


def run(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Train with a composed config, writing into ``run_dir``; returns the summary.

    Raises:
        AppError: bad input, found before anything is written into ``run_dir``.
        Interrupted: SIGINT / SIGTERM (a ``KeyboardInterrupt``); the first one after the
            iteration's checkpoint was saved.
    """
    from currlearn.app import build, hooks
    from currlearn.app import checkpoint as ck
    from currlearn.app.checkpoint import CHECKPOINT, CHECKPOINT_VERSION
    from currlearn.app.evaluate import PeriodicEval, evaluate, evaluate_heldout

    run_dir = Path(run_dir)
    # Everything that can refuse the config is built before the first file is written.
    p = prepare(cfg)
    conf, choices, ckpt, curriculum = p.conf, p.choices, p.ckpt, p.curriculum
    trainer, hook = p.trainer, p.hook
    transform = hook.transform
    stats = hooks.EpisodeStats()
    metrics = hooks.MetricsCSV(
        run_dir / conf["output"]["metrics"], stats, curriculum, transform, lambda: trainer.collected_frames
    )
    if ckpt is not None:
        try:
            trainer.load_state_dict(ckpt["trainer"])  # the curriculum hook puts the envs' tasks back
        except Exception as e:
            raise AppError(
                f"resume={conf['resume']!r}: the checkpoint does not fit this config ({first_line(e)})."
            ) from None
        if ck.load_collector_state(trainer.collector, ckpt.get("collector")):
            if ckpt.get("episode_stats") is not None:
                stats.tracker.load_state_dict(ckpt["episode_stats"])
        else:  # new episodes: forget the sums of those that will not go on
            hook.driver.tracker.reset()
            print(
                f"{PROG}: resumed; the envs start new episodes (their state is not in the checkpoint)", file=sys.stderr
            )
        ck.set_rng_state(ckpt.get("rng", ckpt.get("torch_rng")))
        metrics.load_state_dict(ckpt)
        if hasattr(trainer.collector, "update_policy_weights_"):
            trainer.collector.update_policy_weights_()
    trainer.logger = build.build_logger(conf, run_dir)  # the first writer into run_dir
    if trainer.logger is not None:
        trainer.logger.log_hparams(build.flat_hparams(conf))
    policy = getattr(trainer.collector, "policy", None)
    if policy is None:
        policy = trainer.loss_module.actor_network
    metrics.extras.append(
        PeriodicEval(conf, policy, p.eval_curriculum, trainer.logger, lambda: trainer.collected_frames)
    )
    if ckpt is not None and (run_dir / ".hydra").is_dir():
        # Hydra wrote the config composed for this command; the run goes on with the resumed one.
        from omegaconf import OmegaConf

        (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(conf))

    def payload() -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "trainer": trainer.state_dict(),
            "collector": ck.collector_state(trainer.collector),
            "episode_stats": stats.tracker.state_dict(),
            "rng": ck.rng_state(),
            **metrics.state_dict(),
            "config": conf,
            "choices": choices,
        }

    ckpt_path = run_dir / conf["output"]["checkpoint_dir"] / CHECKPOINT
    checkpointer = hooks.Checkpointer(
        ckpt_path, payload, metrics, conf["checkpoint_every"], lambda: trainer.collected_frames >= conf["frames"]
    )
    bar = hooks.ProgressBar(conf["frames"], trainer.collected_frames, metrics, enabled=conf["progress"])
    stop = hooks.StopOnSignal(
        trainer, checkpointer.save, f"{PROG}: stopping at the end of this iteration (a second signal stops at once)"
    )
    snapshots = _level_snapshots(conf, curriculum, metrics, run_dir)
    for hook_ in (stats, metrics, *snapshots, checkpointer, bar, stop):  # after the PPO and curriculum ops
        hook_.register(trainer)

    def kept() -> str:
        if checkpointer.saved_at:
            saved = checkpointer.saved_at
            return f"the checkpoint of iteration {saved} is kept ({ckpt_path}; continue with resume={run_dir})"
        return "no checkpoint was written yet"

    try:
        with stop:
            trainer.train()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted at once; {kept()}", file=sys.stderr)
        raise
    except Exception as e:
        dead = _dead_workers(p.env)
        if dead:
            i, pid, code = dead[0]
            during = metrics.iteration + 1
            msg = f"env worker {i} (pid {pid}) died (exit code {code}) during iteration {during}; {kept()}."
            raise AppError(msg) from e
        if isinstance(e, WriteFailed):  # the app's writes (metrics.csv, checkpoint) come after the row's count
            raise AppError(
                f"writing the results of iteration {metrics.iteration} failed "
                f"({e.strerror or type(e).__name__}: {e.filename or run_dir}); {kept()}."
            ) from e
        raise
    finally:
        bar.close()
    if stop.stopped:
        print(f"{PROG}: interrupted; checkpoint saved to {ckpt_path} (continue with resume={run_dir})", file=sys.stderr)
        raise Interrupted(stop.signum)  # type: ignore[arg-type]

    for snapshot in snapshots:  # the buffer as training left it
        if metrics.iteration % snapshot.every:
            snapshot.save()
    last = metrics.rows[-1] if metrics.rows else {}
    summary: dict[str, Any] = {
        **choices,
        "seed": conf["seed"],
        "frames": int(trainer.collected_frames),
        "iterations": metrics.iteration,
        "wall_time": round(metrics.wall_time, 3),
        "final_return": last.get("return", float("nan")),
        "final_success": last.get("success", float("nan")),
        **evaluate(conf, policy, p.eval_curriculum),
        **evaluate_heldout(conf, policy, p.heldout),
        "curriculum_metrics": curriculum.metrics(),
    }
    if conf.get("resume"):
        summary["resumed_from"] = conf["resume"]
    # The summary first: plots are an optional extra and must not lose the results.
    (run_dir / conf["output"]["summary"]).write_text(json.dumps(_finite(summary), indent=2) + "\n")
    if conf["output"]["plots"]:
        if importlib.util.find_spec("matplotlib") is None:
            print(
                f"{PROG}: no plots (install matplotlib, the plots extra); metrics.csv has the curves.", file=sys.stderr
            )
        else:
            from currlearn.app.report import plot_run

            plot_run(metrics.rows, run_dir, title=f"{choices['curriculum']} on {choices['env']}, seed {conf['seed']}")
    return summary
