"""`tinygpt grade` by the command line on a tiny trained run: seeded completions equal `tinygpt
generate`'s, grade.json holds every completion with its checks, spans and novelty, given stories
are graded against their beginnings, the judge path goes through a real server with its cache,
and bad input gets one clear line."""

from __future__ import annotations

import json
import subprocess

import judge_stub_server as stub
from serve_helpers import CWD, ENV, cli_args

BEGINNINGS = ["Once upon a time, there was a little girl named Lily. She", "Tom and his dog went to the park. The dog"]


def grade_cli(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args("grade", *args), capture_output=True, text=True, env=ENV, cwd=CWD, timeout=timeout)


def test_a_run_is_graded_and_its_completions_are_generate_s(serve_run, tmp_path):
    prompts = tmp_path / "beginnings.txt"
    prompts.write_text("\n".join(BEGINNINGS) + "\n")
    r = grade_cli("--run", serve_run, "--prompts", prompts, "--samples", 2, "--seed", 5, "--max-new-tokens", 30,
                  "--dtype", "fp32", "--out", tmp_path / "g", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "names_kept" in r.stdout and "grade.html" in r.stdout
    g = json.loads((tmp_path / "g" / "grade.json").read_text())
    assert g["format"] == "tinygpt-grade" and g["settings"]["samples"] == 2 and g["settings"]["seed"] == 5
    (run,) = g["runs"]
    assert run["kind"] == "run" and run["params"] > 0 and run["train_tokens"] > 0
    items = run["completions"]
    assert [(c["beginning_index"], c["sample"], c["seed"]) for c in items] == [(0, 0, 5), (0, 1, 6), (1, 0, 7),
                                                                             (1, 1, 8)]
    for c in items:
        assert c["story"].startswith(BEGINNINGS[c["beginning_index"]]) and c["cut"] == len(BEGINNINGS[c["beginning_index"]])
        assert set(g["checks"]) >= set(c["checks"]) - {"words"}
        assert c["novelty"]["span"] >= 1 and 0 <= c["novelty"]["overlap"] <= 1
        assert all(0 <= s["start"] < s["end"] <= len(c["story"]) for s in c["spans"])
    for c in (items[0], items[-1]):  # sequence i draws with seed + i: `tinygpt generate --seed` for it
        gen = subprocess.run(cli_args("generate", "--run", serve_run, "--prompt", BEGINNINGS[c["beginning_index"]],
                                      "--seed", c["seed"], "--max-new-tokens", 30, "--temperature", 1, "--top-p", 1,
                                      "--dtype", "fp32", "--json"), capture_output=True, text=True, env=ENV, cwd=CWD)
        assert gen.returncode == 0, gen.stderr
        assert json.loads(gen.stdout)["samples"][0]["text"] == c["story"]
    html = (tmp_path / "g" / "grade.html").read_text()
    assert run["name"] in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_given_stories_are_graded_against_their_beginnings(tmp_path):
    stories = tmp_path / "s.jsonl"
    good = BEGINNINGS[0] + " liked to play. She ran to the park and played with her ball."
    bad = BEGINNINGS[0] + " The Kiki went the. Kiki Kiki was happy happy"
    stories.write_text(json.dumps({"story": good}) + "\n" + json.dumps(bad) + "\n")
    b = tmp_path / "b.txt"
    b.write_text(BEGINNINGS[0] + "\n")
    r = grade_cli("--stories", stories, "--beginnings", b, "--out", tmp_path / "g", "--quiet")
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads((tmp_path / "g" / "grade.json").read_text())["runs"]
    ok, wrong = entry["completions"]
    assert entry["kind"] == "stories" and ok["cut"] == wrong["cut"] == len(BEGINNINGS[0])
    assert ok["checks"]["new_names"] == 0 and wrong["checks"]["new_names"] == 1
    assert wrong["checks"]["split_sentence"] == 1 and ok["checks"]["split_sentence"] == 0
    assert {s["check"] for s in wrong["spans"]} >= {"new_names", "split_sentence", "unfinished", "broken_grammar"}
    assert entry["scores"]["names_kept"]["mean"] == 0.5


def test_the_judge_is_asked_once_and_then_read_from_its_cache(tmp_path):
    stories = tmp_path / "s.txt"
    stories.write_text("Lily had a red ball. She played with it all day.<|endoftext|>Tom saw a big dog. It ran.")
    with stub.running(stub.Stub()) as url:
        args = ("--stories", stories, "--judge", url + "/v1", "--judge-model", stub.MODEL, "--out", tmp_path / "g",
                "--quiet")
        first = grade_cli(*args)
        asked = json.loads(subprocess.run(["curl", "-s", url + "/stats"], capture_output=True, text=True).stdout)
        second = grade_cli(*args)
        again = json.loads(subprocess.run(["curl", "-s", url + "/stats"], capture_output=True, text=True).stdout)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    assert asked["assessments"] == 2 and again["requests"] == asked["requests"]  # the rerun asked nothing
    (entry,) = json.loads((tmp_path / "g" / "grade.json").read_text())["runs"]
    for c in entry["completions"]:
        assert c["judge"]["cached"] is True and 1 <= c["judge"]["grammar"] <= 10
    assert "judge_grammar" in entry["scores"] and "judge_grammar" in second.stdout


def test_bad_input_gets_one_clear_line(serve_run, tmp_path):
    cases = [((), "nothing to grade"),
             (("--run", tmp_path / "nope"), "nope"),
             (("--stories", tmp_path / "x.csv"), "must be a .txt"),
             (("--stories", tmp_path / "missing.txt"), "missing.txt"),
             (("--run", serve_run, "--samples", 0), "--samples"),
             (("--run", serve_run, "--judge", "http://127.0.0.1:9/v1"), "--judge and --judge-model go together"),
             (("--run", serve_run, "--temperature", -1, "--max-new-tokens", 2), "--temperature")]
    for args, words in cases:
        r = grade_cli(*args, "--out", tmp_path / "g", "--quiet", timeout=120)
        assert r.returncode != 0 and words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
