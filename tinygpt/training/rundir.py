"""The run directory: what RUN holds, and the rules for starting, resuming and writing into it.

  run.json       the run's settings (written once, at the start)
  latest/        the last checkpoint: model, tokenizer, optimizer and RNG states, step (see
                 `tinygpt.training.checkpoint`); `--resume` continues from it
  best/          the weights with the lowest validation loss so far
  metrics.jsonl  one JSON record per logged step ("train") and per evaluation ("val")
  loss.png       train and validation loss against tokens seen
  summary.json   the final figures, once the run ends
  .lock          locked by the one process that trains into the run (`tinygpt.runlock`)

A training holds the run's lock for its whole life, so two never write into one run. A new run
needs a new or empty directory (the lock file aside); a directory holding run.json is continued
only when a resume is asked for, from a checkpoint in latest/ that loads, and only with the
settings `config.RESUMABLE` lets change. `latest/` and `best/` are located by `checkpoint.find`
(also for `tinygpt eval` and `load_run`). A write that fails for lack of space stops the run with
an error naming the file and the checkpoint kept."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Iterator

from tinygpt import runlock
from tinygpt.training import checkpoint, config
from tinygpt.training.checkpoint import BEST, LATEST, CheckpointError
from tinygpt.training.config import TrainConfig
from tinygpt.fileio import atomic_write, read_versioned_json, write_json

RUN_FORMAT = "tinygpt-run"
RUN_VERSION = 1
RUN_FILE, METRICS_FILE, SUMMARY_FILE, PLOT_FILE = "run.json", "metrics.jsonl", "summary.json", "loss.png"


# ------------------------------------------------------------------------------------------------
# One writer: the run's lock
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def claimed(explicit: dict, dist) -> Iterator[dict]:
    """Holds the run directory `explicit["out"]` for the block: created when new, then locked (by
    rank 0, for the whole launch) before anything in it is read. Yields the settings with `out`
    resolved, so that a symlink or a relative path to a run is that run. Raises
    `runlock.RunInUseError` when another process holds the run."""
    config.check_names(explicit)
    if not explicit.get("out"):
        raise ValueError("no run directory: give --out RUN")
    run = Path(explicit["out"]).resolve()
    if not run.exists():
        config.merge_settings(explicit)  # settings that would be refused leave no directory behind
    with contextlib.ExitStack() as stack:
        failure = None
        if dist.main:
            try:
                with writing(run / runlock.LOCK_FILE, run, None):
                    run.mkdir(parents=True, exist_ok=True)
                    stack.enter_context(runlock.locked(run, "training"))
            except (OSError, runlock.RunInUseError) as e:
                failure = e
        if not dist.all_true(failure is None):  # no process goes on when rank 0 could not take the run
            raise failure or runlock.RunInUseError(f"{run}: rank 0 could not take the run")
        yield {**explicit, "out": str(run)}


# ------------------------------------------------------------------------------------------------
# run.json and the settings of a run
# ------------------------------------------------------------------------------------------------

def read_run_file(run) -> dict:
    """RUN/run.json, checked (format, version, a settings table)."""
    run = Path(run)
    info = read_versioned_json(run / RUN_FILE, RUN_FORMAT, RUN_VERSION, "tinygpt run file", CheckpointError)
    if not isinstance(info.get("settings"), dict):
        raise CheckpointError(f"{run / RUN_FILE} has no settings")
    return info


def write_run_file(run, cfg: TrainConfig, model_config, tokenizer_sha256: str, train_tokens: int,
                   val_tokens: int) -> None:
    write_json(Path(run) / RUN_FILE, {
        "format": RUN_FORMAT, "version": RUN_VERSION, "settings": cfg.to_dict(),
        "model_config": model_config.to_dict(), "tokenizer_sha256": tokenizer_sha256,
        "data": {"path": os.path.abspath(cfg.data), "train_tokens": int(train_tokens), "val_tokens": int(val_tokens)},
    }, indent=2)


def settings(explicit: dict, resume: bool) -> tuple[TrainConfig, dict | None]:
    """(the run's checked settings, its run.json or None for a new run) from the explicit
    settings: a directory with a run is continued only with `resume` and compatible settings; a
    new run needs a new or empty directory."""
    config.check_names(explicit)
    out = explicit.get("out")
    if not out:
        raise ValueError("no run directory: give --out RUN")
    run = Path(out)
    if not (run / RUN_FILE).is_file():
        if run.is_dir() and any(p.name != runlock.LOCK_FILE for p in run.iterdir()):
            raise ValueError(
                f"{run} exists and is not a tinygpt run directory (no {RUN_FILE}): choose a new or empty --out"
            )
        return config.merge_settings(explicit), None
    saved = read_run_file(run)
    if not resume:
        raise ValueError(
            f"{run} already holds a training run: pass --resume to continue it, or choose another --out "
            "(nothing was changed)"
        )
    base = config.known(saved["settings"])
    changed = config.changed(base, explicit)
    if changed:
        detail = ", ".join(f"{k}: {base[k]!r} -> {explicit[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {run} with different settings ({detail}); only "
            f"{', '.join(sorted(config.RESUMABLE - {'out'}))} may change. Start a new run with another --out"
        )
    return config.merge_settings(explicit, base), saved


# ------------------------------------------------------------------------------------------------
# Checkpoints: latest/ and best/
# ------------------------------------------------------------------------------------------------

def prepare(run) -> None:
    """Creates RUN and finishes (or clears away) any checkpoint publish a crash interrupted."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    checkpoint.recover(run / LATEST)
    checkpoint.recover(run / BEST)


def resume_checkpoint(run) -> tuple[Path, dict]:
    """(directory, verified state) of the RUN/latest checkpoint a resume continues from. Reads
    only; raises CheckpointError, saying what the run holds, when there is none or it is unusable:
    a resume never starts the run over."""
    run = Path(run)
    latest = run / LATEST
    try:
        return checkpoint.read_state(latest)
    except FileNotFoundError:
        problem = "is missing" if not latest.exists() else "is empty"
    except CheckpointError as e:
        problem = f"is unusable: {e}"
    raise CheckpointError(f"cannot resume {run}: {latest} {problem}; {_other_checkpoint(run)}. Nothing was "
                          "changed; to train from the start, use another --out")


def _other_checkpoint(run: Path) -> str:
    try:
        _, state = checkpoint.read_state(run / BEST)
    except (FileNotFoundError, CheckpointError):
        return "the run holds no other checkpoint that loads"
    return f"{BEST}/ holds step {state.get('step')} (weights only: a run cannot resume from it)"


def check_checkpoint_tokenizer(found: Path, state: dict, fingerprint: str, data: str) -> None:
    """A resume refuses a checkpoint trained on another tokenizer than the data's."""
    if state.get("tokenizer_sha256") != fingerprint:
        raise CheckpointError(
            f"the checkpoint in {found} was trained with another tokenizer "
            f"({str(state.get('tokenizer_sha256'))[:12]}) than the data in {data} "
            f"({fingerprint[:12]}): token ids would mean different text"
        )


def check_checkpoint_model(found: Path, loaded, expected) -> None:
    """A resume refuses a checkpoint whose model config is not the one the settings make."""
    if loaded != expected:
        raise CheckpointError(
            f"the checkpoint in {found} holds a different model ({loaded}) than the run's "
            f"settings make ({expected})"
        )


# ------------------------------------------------------------------------------------------------
# metrics.jsonl and summary.json
# ------------------------------------------------------------------------------------------------

def rewrite_metrics(run, upto_step: int) -> list[dict]:
    """Keeps the records up to the resumed step, one per (kind, step), and returns them: a killed
    run may have logged past its last checkpoint (those steps run again), and an older tinygpt
    logged a resumed step's evaluation twice. The file is replaced in one step."""
    path = Path(run) / METRICS_FILE
    kept, seen = [], set()
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if not isinstance(r, dict) or not isinstance(r.get("step"), int) or r["step"] > upto_step:
                    continue
                if (r.get("kind"), r["step"]) not in seen:
                    seen.add((r.get("kind"), r["step"]))
                    kept.append(r)
    with atomic_write(path) as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    return kept


def append_metrics(run, record: dict) -> None:
    with open(Path(run) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_summary(run, summary: dict) -> None:
    write_json(Path(run) / SUMMARY_FILE, summary, indent=2)


# ------------------------------------------------------------------------------------------------
# A full disk
# ------------------------------------------------------------------------------------------------

# what failed, and what lets the run go on
_NO_SPACE = {errno.ENOSPC: ("no space left", "free space"),
             errno.EFBIG: ("file size limit exceeded", "lift the file size limit (ulimit -f)")}
if hasattr(errno, "EDQUOT"):  # not on every OS
    _NO_SPACE[errno.EDQUOT] = ("disk quota exceeded", "free space")


class NoSpaceError(OSError):
    """A write into the run failed for lack of space (or of quota, or past the file size limit)."""


def last_good(run, step: int) -> str:
    """Which checkpoint a run that stops now keeps."""
    if not step:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint (step {step}) is kept in {Path(run) / LATEST}"


def _how_to_go_on(run, step: int | None, remedy: str) -> str:
    if step is None:
        return f"nothing in the run was changed; {remedy} and try again"
    if not step:
        return f"{last_good(run, step)}; {remedy} and start again with a new or emptied --out"
    return f"{last_good(run, step)}; {remedy} and --resume"


@contextlib.contextmanager
def writing(path, run, step: int | None) -> Iterator[None]:
    """Turns a lack of space while writing `path` into a `NoSpaceError` that names `path` and says
    what the run keeps: `step` is that of its last good checkpoint (0: none yet; None: nothing in
    the run was written yet). Other errors pass as they are."""
    try:
        yield
    except NoSpaceError:
        raise
    except OSError as e:
        if e.errno not in _NO_SPACE:
            raise
        what, remedy = _NO_SPACE[e.errno]
        err = NoSpaceError(f"{what} writing {path}: {_how_to_go_on(run, step, remedy)}")
        err.errno = e.errno
        raise err from e
