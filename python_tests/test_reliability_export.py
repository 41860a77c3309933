"""`tinygpt export --out` in every relation to the run it reads: the run (and what lies beside it)
is never touched, whatever --force says; --force replaces only a previous export; and an export
waits for no training: a run another process holds is refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygpt import runlock
from tinygpt.cli import main
from tinygpt.data import stories
from tinygpt.data.prepare import prepare
from tinygpt.export.core import MARKER
from tinygpt.training import train

pytestmark = pytest.mark.reliability

TINY = {"dim": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2, "hidden_dim": 32, "max_seq_len": 32}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """BASE/run (a finished training run with best/ and latest/) and BASE/beside.txt, a file the
    run's parent holds that no export may touch."""
    d = tmp_path_factory.mktemp("reliability_export")
    stories.write_txt(d / "stories.txt", 200, seed=3)
    prepare([str(d / "stories.txt")], str(d / "shards"), vocab_size=300, val_fraction=0.1, progress=False)
    base = d / "base"
    base.mkdir()
    train(data=str(d / "shards"), out=str(base / "run"), model="260k", model_overrides=TINY, steps=4,
          batch_size=4, seq_len=16, dtype="fp32", device="cpu", warmup=1, eval_every=2, eval_tokens=256,
          log_every=1, progress=False)
    (base / "beside.txt").write_text("notes about the run\n")
    assert (base / "run" / "best").is_dir() and (base / "run" / "latest").is_dir()
    return base


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with the SHA-256 of each file and the target of each link. The
    run's lock file is left out: taking the lock (training or export) writes the holder's pid."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if name == runlock.LOCK_FILE:
                continue
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def export_cli(capsys, run, out, *extra) -> tuple[int, str]:
    """(exit code, stderr) of `tinygpt export`, run in this process (a subprocess per case would
    cost a second of imports each)."""
    capsys.readouterr()
    code = main(["export", "--run", str(run), "--format", "llama2c", "--out", str(out), *extra])
    return code, capsys.readouterr().err


@pytest.fixture
def unchanged(base):
    """Asserts after the test that nothing under BASE changed, byte for byte."""
    before = snapshot(base)
    yield base
    assert snapshot(base) == before


FORCE = pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])

# (--run relative to BASE, --out relative to BASE, the relation the message names)
INTO_THE_RUN = [
    ("run", "run", "is the run"),
    ("run", "run/best", "is inside the run"),
    ("run", "run/latest", "is inside the run"),
    ("run", "run/sub", "is inside the run"),
    ("run", ".", "contains the run"),
    # A checkpoint directory as the source: the run holding it is the run being exported.
    ("run/best", "run/best", "is inside the run"),
    ("run/best", "run", "is the run"),
    ("run/best", "run/latest", "is inside the run"),
    ("run/best", ".", "contains the run"),
]


@FORCE
@pytest.mark.parametrize("src,out,relation", INTO_THE_RUN, ids=[f"{s}->{o}" for s, o, _ in INTO_THE_RUN])
def test_export_into_its_own_run_is_refused(unchanged, capsys, src, out, relation, force):
    code, err = export_cli(capsys, unchanged / src, unchanged / out, *force)
    assert code == 1 and relation in err and "Traceback" not in err, err
    assert not (unchanged / "run" / "sub").exists()


@FORCE
@pytest.mark.parametrize("target", ["run", "."], ids=["link_to_run", "link_to_parent"])
def test_export_through_a_symlink_to_the_run_or_its_parent_is_refused(unchanged, tmp_path, capsys, target, force):
    link = tmp_path / "link"
    link.symlink_to(unchanged / target, target_is_directory=True)
    code, err = export_cli(capsys, unchanged / "run", link, *force)
    assert code == 1 and "the run" in err and f"resolves to {(unchanged / target).resolve()}" in err, err
    assert link.is_symlink()


@FORCE
def test_export_to_a_relative_path_of_the_run_is_refused(unchanged, capsys, monkeypatch, force):
    monkeypatch.chdir(unchanged / "run")
    code, err = export_cli(capsys, ".", "best", *force)
    assert code == 1 and "is inside the run" in err, err
    code, err = export_cli(capsys, "best", "..", *force)
    assert code == 1 and "contains the run" in err, err


def test_export_to_a_relative_path_elsewhere_works(unchanged, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = export_cli(capsys, os.path.relpath(unchanged / "run"), "exports/l2c")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "exports" / "l2c")) == ["model.bin", MARKER, "tokenizer.bin"]


def test_force_replaces_a_previous_export_and_only_with_force(unchanged, tmp_path, capsys):
    out = tmp_path / "export"
    code, err = export_cli(capsys, unchanged / "run", out)
    assert code == 0, err
    first = snapshot(out)
    code, err = export_cli(capsys, unchanged / "run", out)
    assert code == 1 and "holds a previous export" in err and "--force" in err, err
    assert "overwrite" not in err and snapshot(out) == first
    capsys.readouterr()
    code = main(["export", "--run", str(unchanged / "run"), "--format", "hf", "--out", str(out), "--force"])
    assert code == 0
    assert (out / "config.json").is_file() and (out / MARKER).is_file() and not (out / "model.bin").exists()
    assert sorted(os.listdir(tmp_path)) == ["export"]  # nothing left beside it


@FORCE
def test_export_never_replaces_an_unrelated_directory(unchanged, tmp_path, capsys, force):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    code, err = export_cli(capsys, unchanged / "run", mine, *force)
    assert code == 1 and "not a tinygpt export" in err, err
    assert sorted(os.listdir(mine)) == ["thesis.txt"] and (mine / "thesis.txt").read_text() == "years of work"


HOLD = ("import sys, time\n"
        "from tinygpt import runlock\n"
        "with runlock.locked(sys.argv[1], 'train'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n")


def test_export_of_a_run_a_training_holds_is_refused(unchanged, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(unchanged / "run")], stdout=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for src in ("run", "run/best"):
            code, err = export_cli(capsys, unchanged / src, tmp_path / "out")
            assert code == 1 and f"in use by pid {holder.pid} (train)" in err, err
        assert not (tmp_path / "out").exists()
    finally:
        holder.kill()
        holder.wait()
    code, err = export_cli(capsys, unchanged / "run", tmp_path / "out")  # free again
    assert code == 0, err
