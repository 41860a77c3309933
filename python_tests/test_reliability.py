"""Training when things go wrong: kills at random moments, two processes on one run, a full disk,
a run reached through a symlink or a relative path, damaged or edited checkpoints, and absurd
settings. Each ends with a clear error or with exactly the run an undisturbed training makes."""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_train import BASE, CWD, ENV, assert_same_weights, cli_args, read_metrics, shards  # noqa: F401
from tinygpt import runlock
from tinygpt.cli import main
from tinygpt.model import GPT
from tinygpt.training import checkpoint, rundir, train

pytestmark = pytest.mark.reliability

STEPS = 40
SUITE = {**BASE, "eval_every": 10}  # what the subprocess runs of this file train, with --save-every 1


# ------------------------------------------------------------------------------------------------
# Helpers: runs, their records, and training subprocesses
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def straight(shards, tmp_path_factory) -> Path:
    """The run of SUITE's settings, trained in one go: what every interrupted run must end as."""
    run = tmp_path_factory.mktemp("straight") / "run"
    train(data=shards, out=str(run), steps=STEPS, **SUITE)
    return run


@pytest.fixture(scope="module")
def pristine(shards, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pristine") / "run"
    train(data=shards, out=str(run), steps=4, **BASE)
    return run


@pytest.fixture
def finished(pristine, tmp_path) -> Path:
    """A finished 4-step run (latest/ and best/ at step 4) of this test's own."""
    return Path(shutil.copytree(pristine, tmp_path / "run", symlinks=True))


def snapshot(run: Path) -> dict[str, str]:
    """The SHA-256 of every file under `run` but the lock (taking it records the holder)."""
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != runlock.LOCK_FILE}


def record_keys(run) -> collections.Counter:
    return collections.Counter((r["kind"], r["step"]) for r in read_metrics(run))


def assert_one_record_each(run, like=None) -> None:
    keys = record_keys(run)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    if like is not None:
        assert set(keys) == set(record_keys(like))


def command(capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of the `tinygpt` command, run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_training_left_running():
    """A test that fails halfway leaves no training subprocess behind."""
    yield
    while _STARTED:
        p = _STARTED.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()


def start(args, **popen_kw) -> subprocess.Popen:
    """`python -m tinygpt ARGS` in a subprocess, its output captured."""
    p = subprocess.Popen([sys.executable, "-m", "tinygpt", *map(str, args)], env=ENV, cwd=CWD,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kw)
    _STARTED.append(p)
    return p


def saved_step(run) -> int | None:
    """The step of RUN/latest, or None while there is none (or it is being replaced)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return checkpoint.read_state(Path(run) / "latest", verify=False)[1]["step"]
    return None


def wait_until(condition, procs, timeout=120.0) -> None:
    """Polls `condition` until it holds; fails if it times out or every one of `procs` has exited."""
    t0 = time.monotonic()
    while not condition():
        if procs and all(p.poll() is not None for p in procs):
            raise AssertionError([p.communicate() for p in procs])
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.02)


def first_to_exit(procs: list[subprocess.Popen], timeout=120.0) -> subprocess.Popen:
    wait_until(lambda: any(p.poll() is not None for p in procs), [], timeout)
    return next(p for p in procs if p.poll() is not None)


def stop(proc: subprocess.Popen, sig=signal.SIGKILL) -> tuple[str, str]:
    proc.send_signal(sig)
    return proc.communicate(timeout=120)


# ------------------------------------------------------------------------------------------------
# Kills at random moments
# ------------------------------------------------------------------------------------------------

def test_a_run_killed_at_random_moments_and_resumed_ends_bit_identical(shards, straight, tmp_path):
    run, rng = tmp_path / "run", random.Random(20240611)
    args = cli_args(shards, run, STEPS, **SUITE, save_every=1)
    for kill in range(4):
        before = saved_step(run) or 0
        p = start(args + (["--resume"] if kill else []))
        wait_until(lambda: (saved_step(run) or 0) > before, [p])  # it moved on: a checkpoint of its own
        time.sleep(rng.uniform(0.0, 0.4))  # then dies anywhere: in a step, a save, a metrics line
        stop(p)
        if p.returncode == 0:
            break
    s = train(out=str(run), resume=True)
    assert s["steps"] == STEPS and s["resumed_from"] > 0
    assert_same_weights(straight, run)
    assert_one_record_each(run, like=straight)


# ------------------------------------------------------------------------------------------------
# Two processes, one run
# ------------------------------------------------------------------------------------------------

def race(argvs: list[list]) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """Starts the commands at once; (winner, loser, the loser's stderr) once the loser has failed.
    The winner is still running then: the loser failed fast."""
    procs = [start(a) for a in argvs]
    loser = first_to_exit(procs)
    winner = next(p for p in procs if p is not loser)
    err = loser.communicate()[1]
    assert winner.poll() is None, winner.communicate()
    return winner, loser, err


def test_two_trainings_into_one_run_one_runs_and_the_other_is_refused(shards, tmp_path):
    run = tmp_path / "run"
    argvs = [cli_args(shards, run, 10**6, save_every=1, eval_every=10**6) + ["--seed", seed] for seed in (1, 2)]
    winner, loser, err = race(argvs)
    assert loser.returncode == 1 and f"is in use by pid {winner.pid} (training)" in err and "Traceback" not in err
    wait_until(lambda: saved_step(run), [winner])
    stop(winner, signal.SIGINT)
    assert winner.returncode == 130
    seed = int(winner.args[winner.args.index("--seed") + 1])
    assert json.loads((run / "run.json").read_text())["settings"]["seed"] == seed
    found, state = checkpoint.read_state(run / "latest")
    assert state["settings"]["seed"] == seed and found == run / "latest"

    before = state["step"]
    winner, loser, err = race([["train", "--out", run, "--resume", "--quiet"]] * 2)
    assert loser.returncode == 1 and f"is in use by pid {winner.pid} (training)" in err and "Traceback" not in err
    wait_until(lambda: (saved_step(run) or 0) > before, [winner])
    stop(winner, signal.SIGINT)
    assert winner.returncode == 130
    assert checkpoint.read_state(run / "latest")[1]["step"] > before
    assert not [p.name for p in run.iterdir() if p.name.startswith(".latest")]
    assert_one_record_each(run)


# ------------------------------------------------------------------------------------------------
# A full disk
# ------------------------------------------------------------------------------------------------

@pytest.fixture(params=["tmpfs", "file-size-limit"])
def small_disk(request, tmp_path):
    """(a directory, how to fill it up while a training writes there): a 3 MB tmpfs that a filler
    file fills (where mounting is permitted), or a file-size limit set on the training process."""
    d = tmp_path / "small"
    d.mkdir()
    if request.param == "file-size-limit":
        yield d, limit_file_size
        return
    mount = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d)]
    if not shutil.which("mount") or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here; the file-size limit stands in for it")
    try:
        yield d, fill_tmpfs
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill_tmpfs(d: Path, proc: subprocess.Popen) -> None:
    """Takes every free byte of `d` until `proc` exits (what the training frees, too)."""
    def fill():
        with open(d / "filler", "wb", buffering=0) as f:
            while proc.poll() is None:
                try:
                    f.write(b"\0" * 4096)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    time.sleep(0.005)
    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    proc.wait(timeout=120)
    thread.join()
    (d / "filler").unlink()  # free space again


def limit_file_size(d: Path, proc: subprocess.Popen) -> None:
    """Limits the files `proc` writes to 4 KB from now on: its next checkpoint fails (EFBIG)."""
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (4096, 4096))
    proc.wait(timeout=120)


def test_a_full_disk_names_the_path_keeps_the_last_checkpoint_and_resumes(shards, straight, small_disk):
    d, fill = small_disk
    run = d / "run"
    # SIGXFSZ ignored (Python's default too), so that a write past the limit fails with EFBIG
    p = start(cli_args(shards, run, STEPS, **SUITE, save_every=1),
              preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    wait_until(lambda: saved_step(run), [p])
    fill(d, p)
    err = p.communicate()[1]
    kept = saved_step(run)
    assert p.returncode == 1 and "Traceback" not in err, err
    assert f"writing {run}" in err and f"the last good checkpoint (step {kept}) is kept in {run / 'latest'}" in err
    assert ("free space" if fill is fill_tmpfs else "lift the file size limit (ulimit -f)") + " and --resume" in err
    checkpoint.load_model(run / "latest")  # verified: every file as its manifest says
    s = train(out=str(run), resume=True)
    assert s["resumed_from"] == kept and s["steps"] == STEPS
    assert_same_weights(straight, run)
    assert_one_record_each(run, like=straight)


@pytest.mark.parametrize("where", ["checkpoint", "metrics"])
def test_no_space_left_names_the_path_and_what_was_kept(shards, tmp_path, monkeypatch, capsys, where):
    """The disk fills up on the second write of a checkpoint or of a metrics record."""
    calls = []

    def full(real):
        def write(*a, **kw):
            calls.append(1)
            if len(calls) >= 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*a, **kw)
        return write

    if where == "checkpoint":
        monkeypatch.setattr(GPT, "save", full(GPT.save))
    else:
        monkeypatch.setattr(rundir, "append_metrics", full(rundir.append_metrics))
    run = tmp_path / "run"
    name = "latest" if where == "checkpoint" else "metrics.jsonl"
    message = (rf"no space left writing {run / name}.*: the last good checkpoint \(step 2\) is kept in "
               rf"{run / 'latest'}; free space and --resume")
    with pytest.raises(OSError, match=message):
        train(data=shards, out=str(run), steps=8, **{**BASE, "save_every": 2})
    assert_one_line_error(*command(capsys, "train", "--out", run, "--resume", "--quiet"), message)
    monkeypatch.undo()
    assert checkpoint.read_state(run / "latest")[1]["step"] == 2
    assert train(out=str(run), resume=True)["steps"] == 8
    assert_one_record_each(run)


# ------------------------------------------------------------------------------------------------
# One run, however --out names it
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relation", ["symlink", "relative"])
def test_resume_through_a_symlink_or_a_relative_path_is_the_same_run(finished, tmp_path, monkeypatch, relation):
    if relation == "symlink":
        out = tmp_path / "link"
        out.symlink_to(finished, target_is_directory=True)
    else:
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        out = Path("..", finished.name)
    with runlock.locked(finished, "training"):  # the lock is the run's, whatever the path
        with pytest.raises(runlock.RunInUseError, match=f"{finished} is in use by pid {os.getpid()}"):
            train(out=str(out), resume=True, steps=6)
    s = train(out=str(out), resume=True, steps=6)
    assert s["resumed_from"] == 4 and s["steps"] == 6 and s["run"] == str(finished)
    assert checkpoint.read_state(finished / "latest")[1]["step"] == 6
    assert relation != "symlink" or out.is_symlink()
    assert_one_record_each(finished)


# ------------------------------------------------------------------------------------------------
# What a resume refuses, and what it keeps
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage,message", [
    (lambda r: shutil.rmtree(r / "latest"), r"latest is missing; best/ holds step 4"),
    (lambda r: (r / "latest" / "state.json").unlink(), r"latest is unusable: .*\(no state.json\); best/ holds step 4"),
])
def test_resume_with_latest_missing_or_unusable_is_refused_and_changes_nothing(finished, capsys, damage, message):
    damage(finished)
    before = snapshot(finished)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        train(out=str(finished), resume=True, steps=8)
    assert_one_line_error(*command(capsys, "train", "--out", finished, "--resume", "--steps", 8, "--quiet"),
                          message)
    assert snapshot(finished) == before


def test_a_run_another_process_holds_is_refused(finished, capsys):
    before = snapshot(finished)
    with runlock.locked(finished, "training"):
        assert_one_line_error(*command(capsys, "train", "--out", finished, "--resume", "--quiet"),
                              f"{finished} is in use by pid {os.getpid()} \\(training\\)")
    assert snapshot(finished) == before


def test_a_new_run_starts_in_a_directory_holding_only_a_lock_file(shards, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runlock.LOCK_FILE).write_text("")  # left by a training that failed before it began
    assert train(data=shards, out=str(run), steps=2, **BASE)["steps"] == 2


@pytest.mark.parametrize("which", ["latest", "best"])
def test_an_edited_checkpoint_state_is_refused(finished, which):
    path = finished / which / "state.json"
    path.write_text(path.read_text().replace('"step": 4,', '"step": 2000,'))
    message = f"checkpoint {finished / which} is corrupt: state.json .*edited or damaged"
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load_run(finished, which)
    if which == "latest":
        with pytest.raises(checkpoint.CheckpointError, match=message):
            train(out=str(finished), resume=True, steps=8)


def test_a_resume_with_nothing_to_do_logs_no_duplicate_record(finished):
    s = train(out=str(finished), resume=True)
    assert s["steps"] == 4 and s["val"]["loss"] > 0
    assert_one_record_each(finished)


def test_records_logged_past_the_checkpoint_are_dropped_on_resume(finished):
    """A kill after metrics lines were written but before their checkpoint; and a line an older
    tinygpt wrote twice."""
    recs = read_metrics(finished)
    with open(finished / "metrics.jsonl", "a", encoding="utf-8") as f:
        for r in [recs[-1], {**recs[-2], "step": 6}, {**recs[-1], "step": 6}]:
            f.write(json.dumps(r) + "\n")
        f.write('{"kind": "train", "st')  # cut short by the kill
    assert train(out=str(finished), resume=True, steps=8)["steps"] == 8
    assert_one_record_each(finished)
    assert sorted(k for k in record_keys(finished)) == [("train", 2), ("train", 4), ("train", 6), ("train", 8),
                                                         ("val", 4), ("val", 8)]


# ------------------------------------------------------------------------------------------------
# Absurd settings
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,message", [
    ("--seed", "99999999999999999999999", r"--seed must be an integer in 0\.\.2\*\*63-1, got 99999999999999999999999"),
    ("--seed", "-1", r"--seed must be an integer in 0\.\.2\*\*63-1, got -1"),
    ("--batch-size", "100000000000", r"--batch-size must be an integer in 1\.\.2\*\*31-1"),
    ("--threads", "100000000000", r"--threads must be an integer in 1\.\.4096"),
    ("--warmup", "99999999999999999999999", r"--warmup must be an integer in 0\.\.2\*\*63-1"),
    ("--weight-decay", "inf", r"--weight-decay must be a finite number >= 0, got inf"),
    ("--grad-clip", "nan", r"--grad-clip must be a finite number >= 0 \(0: no clipping\), got nan"),
    ("--min-lr", "inf", r"--min-lr must be a finite number in \[0, --lr\], got inf"),
])
def test_absurd_training_flags_are_refused_naming_the_flag(shards, tmp_path, capsys, flag, value, message):
    args = cli_args(shards, tmp_path / "run", 2) + [flag, value]
    assert_one_line_error(*command(capsys, *args), message)
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_absurd_settings_from_python_or_a_config_file_are_refused(shards, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^seed must be an integer in 0\.\.2\*\*63-1, got 1e\+23$"):
        train(data=shards, out=str(tmp_path / "a"), steps=2, **{**BASE, "seed": 1e23})
    with pytest.raises(ValueError, match=r"^lr must be a positive finite number, got '0.1'$"):
        train(data=shards, out=str(tmp_path / "a"), steps=2, **{**BASE, "lr": "0.1"})
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{shards}"\nseed = 1e23\n')
    assert_one_line_error(*command(capsys, "train", "--config", cfg, "--out", tmp_path / "b"),
                          r"--seed must be an integer in 0\.\.2\*\*63-1, got 1e\+23")
