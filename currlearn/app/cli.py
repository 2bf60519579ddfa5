"""``currlearn-train``: PPO on a TorchRL env with a curriculum, configured by Hydra.

Run ``currlearn-train`` (or ``python -m currlearn.app``) for the default config
(``conf/train.yaml``, installed as ``pkg://currlearn.conf``: a level curriculum on the
point-mass gate task); override from the command line, e.g. ``currlearn-train curriculum=none
seed=3 env.gate_width=0.3``, or sweep with ``-m curriculum=none,level seed=0,1,2``.

The run directory (Hydra's) receives ``.hydra/config.yaml``, ``metrics.csv`` (one row per
iteration), ``checkpoints/last.pt`` (every ``checkpoint_every`` iterations, at the end and on
Ctrl-C; written atomically), ``summary.json`` (with ``target_success``: the trained policy's
success rate on the target tasks) and, with matplotlib, ``returns.png`` / ``curriculum.png``.

Bad input exits with status 1 and one line ``currlearn-train: error: ...``; set
``HYDRA_FULL_ERROR=1`` for Hydra's and Python's full traceback. This module imports neither
torch nor the library at import time: ``--help``, ``--cfg job`` and tab completion stay fast.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from currlearn.app.errors import PROG, AppError, one_line

__all__ = ["main"]


def _fail(msg: str) -> None:
    sys.exit(f"{PROG}: error: {one_line(msg)}")


def _overrides(argv: list[str]) -> dict[str, str]:
    """``key=value`` arguments of the command line (options such as ``-m`` left out)."""
    return dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))


def _remove_if_unused(path: Path | None, job_log: str = "cli.log") -> None:
    """Remove ``path`` when it holds nothing but Hydra's own files (a run that never started)."""
    if path is None or not path.is_dir():
        return
    if {p.name for p in path.iterdir()} <= {".hydra", job_log, "cli.log", "train.log"}:
        _drop_file_handlers(path)
        shutil.rmtree(path, ignore_errors=True)


def _drop_file_handlers(path: Path) -> None:
    """Close the logging file handlers Hydra opened under ``path``: once it is removed, a later
    record in the same process (a notebook, a test) would fail to reopen the file."""
    root = path.resolve()
    for log in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for h in list(getattr(log, "handlers", ())):
            if isinstance(h, logging.FileHandler) and root in Path(h.baseFilename).resolve().parents:
                log.removeHandler(h)
                h.close()


def _allowed_keys_hint(msg: str, overrides: list[str]) -> str:
    """For "Could not override 'a.b'", the keys that ``a`` has in the composed config."""
    m = re.search(r"Could not override '([\w.]+)'", msg)
    if not m:
        return ""
    parent, _, _ = m.group(1).rpartition(".")
    try:
        from hydra import compose, initialize_config_module

        keep = [
            o
            for o in overrides
            if "=" in o and not o.startswith(("-", "hydra")) and m.group(1) not in o.split("=", 1)[0]
        ]
        with initialize_config_module("currlearn.conf", version_base="1.3"):
            cfg = compose("train", overrides=keep)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = [str(k) for k in node if not str(k).startswith("_")] if isinstance(node, DictConfig) else []
    except Exception:
        return ""
    return f"; allowed keys of {parent or 'the config'}: {', '.join(keys)}" if keys else ""


def _discard_new_run_dir(run_dir: Path, hc: Any) -> None:
    """Remove the run dir Hydra made for a run that failed on its input (sweep dirs are kept)."""
    from hydra.types import RunMode

    if hc.mode == RunMode.RUN:
        _remove_if_unused(run_dir, f"{hc.job.name}.log")


@hydra.main(config_path="pkg://currlearn.conf", config_name="train", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    _release_stderr()
    from hydra.core.hydra_config import HydraConfig

    from currlearn.app.run import run

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        summary = run(cfg, run_dir)
    except KeyboardInterrupt as e:
        sys.exit(128 + getattr(e, "signum", signal.SIGINT))
    except AppError as e:
        _discard_new_run_dir(run_dir, hc)
        _fail(str(e))
    except (ValueError, TypeError, KeyError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _discard_new_run_dir(run_dir, hc)
        _fail(f"{type(e).__name__}: {e}")
    ts = summary.get("target_success")
    print(
        f"{PROG}: {summary['curriculum']} on {summary['env']}, seed {summary['seed']}: {summary['frames']} frames "
        f"in {summary['wall_time']:.1f} s; final success {summary['final_success']:.2f}, "
        f"target success {float('nan') if ts is None else ts:.2f}; run dir {run_dir}",
        flush=True,
    )
    return ts


_real_stderr: Any = None
_captured: io.StringIO | None = None


def _release_stderr() -> None:
    global _captured
    if _real_stderr is not None and sys.stderr is not _real_stderr:
        text = _captured.getvalue() if _captured is not None else ""
        sys.stderr = _real_stderr
        if text:
            sys.stderr.write(text)
        _captured = None


def _refuse_empty_dict_overrides(argv: list[str]) -> None:
    """``key={}`` changes nothing (Hydra merges a dict override into the node): one line, exit 1."""
    for arg in argv:
        m = re.fullmatch(r"\+*([\w.]+)=\{\s*\}", arg)
        if m:
            _fail(
                f"{m.group(1)}={{}} changes nothing: Hydra merges a dict override into the existing "
                f"{m.group(1)}; replace it with '~{m.group(1)}' '+{m.group(1)}={{...}}'."
            )


def _refuse_unwritable_dirs(argv: list[str]) -> Path | None:
    """Exit with one line when the run (or sweep) directory cannot be written, before Hydra
    tries and fails with a traceback.

    Returns:
        The directory if this check made it (:func:`main` removes it again when the command
        fails before anything but Hydra's files is in it).
    """
    import tempfile

    values = _overrides(argv)
    key = "hydra.sweep.dir" if ("-m" in argv or "--multirun" in argv) else "hydra.run.dir"
    target = Path(values[key]) if key in values else Path.cwd()
    made = None if target.exists() else target
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        where = f"{key}={values[key]!r}" if key in values else f"the working directory {str(target)!r}"
        _fail(f"{where} is not writable ({e.strerror or type(e).__name__}): choose a directory you can write to.")
    return made


def _refuse_existing_run_dir(argv: list[str]) -> None:
    """Exit with one line when ``hydra.run.dir=`` names a directory that holds a run already
    (Hydra would write its files into it before the app starts), unless ``resume=`` names it.
    """
    if "-m" in argv or "--multirun" in argv:
        return
    values = _overrides(argv)
    run_dir = values.get("hydra.run.dir")
    if not run_dir or not Path(run_dir).is_dir():
        return
    resume = values.get("resume")
    if resume and Path(resume).expanduser().resolve() == Path(run_dir).expanduser().resolve():
        return
    held = [p.name for p in Path(run_dir).iterdir() if p.name in ("metrics.csv", "summary.json", "checkpoints")]
    if held:
        _fail(
            f"hydra.run.dir={run_dir!r} holds a run already ({', '.join(sorted(held))}): choose a new directory, "
            f"or continue that run with resume={run_dir}."
        )


def main() -> None:
    """Console entry point ``currlearn-train``.

    ``--version`` prints currlearn's version. Hydra reports its own errors (unknown group
    option, bad override) as several lines; they are caught here and condensed to one, unless
    ``HYDRA_FULL_ERROR=1``.
    """
    if "--version" in sys.argv[1:]:
        from currlearn import __version__

        print(f"{PROG} (currlearn) {__version__}")
        return
    made = None
    informative = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-sc", "--shell-completion")
    if not any(a in sys.argv[1:] for a in informative):
        _refuse_empty_dict_overrides(sys.argv[1:])
        _refuse_existing_run_dir(sys.argv[1:])
        made = _refuse_unwritable_dirs(sys.argv[1:])
    # TorchRL's INFO lines (read from this variable at its import) would break the progress bar.
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    global _real_stderr, _captured
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        _app()
        return
    _real_stderr = sys.stderr
    _captured = io.StringIO()
    sys.stderr = _captured
    code: Any = 0
    try:
        _app()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:
        code = 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        text = _captured.getvalue() if (_captured is not None and sys.stderr is _captured) else ""
        sys.stderr = _real_stderr
    if code not in (0, None):
        _remove_if_unused(made)
        if text.strip():
            msg = one_line(text)
            sys.exit(f"{PROG}: error: {msg}{_allowed_keys_hint(msg, sys.argv[1:])}")
        sys.exit(code)
    if text:
        sys.stderr.write(text)
