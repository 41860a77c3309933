"""The run directory: what RUN holds, and the rules for starting, resuming and writing into it.

  run.json       the run's settings (written once, at the start)
  latest/        the last checkpoint: model, tokenizer, optimizer and RNG states, step (see
                 `tinygpt.training.checkpoint`); `--resume` continues from it
  best/          the weights with the lowest validation loss so far
  metrics.jsonl  one JSON record per logged step ("train") and per evaluation ("val")
  loss.png       train and validation loss against tokens seen
  summary.json   the final figures, once the run ends

A new run needs a new or empty directory; a directory holding run.json is continued only when a
resume is asked for, and only with the settings `config.RESUMABLE` lets change. `latest/` and
`best/` are located by `checkpoint.find` (also for `tinygpt eval` and `load_run`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tinygpt.training import checkpoint, config
from tinygpt.training.checkpoint import BEST, LATEST, CheckpointError
from tinygpt.training.config import TrainConfig
from tinygpt.fileio import atomic_write, read_versioned_json, write_json

RUN_FORMAT = "tinygpt-run"
RUN_VERSION = 1
RUN_FILE, METRICS_FILE, SUMMARY_FILE, PLOT_FILE = "run.json", "metrics.jsonl", "summary.json", "loss.png"


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
        if run.is_dir() and any(run.iterdir()):
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


def latest_checkpoint(run) -> Path | None:
    """The complete RUN/latest checkpoint a resume continues from, or None."""
    return checkpoint.resolve(Path(run) / LATEST)


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
    """Keeps the records up to the resumed step (a killed run may have logged past its last
    checkpoint; those steps run again) and returns them."""
    path = Path(run) / METRICS_FILE
    kept = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if isinstance(r, dict) and r.get("step", 1 << 62) <= upto_step:
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
