"""`tinygpt demo`: the whole story loop on the built-in corpus, offline, in a few minutes."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

DEMO_PROMPTS = ("Once upon a time", "One day, a little girl named Lily", "Tom and his dog")


def run_demo(out: str = "demo", *, minutes: float = 4.0, stories: int = 20000, model: str = "1m",
             vocab_size: int = 2048, samples: int = 3, seed: int = 0, lr: float = 3e-3, batch_size: int = 16,
             dtype: str = "auto", grade_samples: int = 4, progress: bool = True, echo=print, stream=None) -> dict:
    """Writes `stories` built-in stories, trains a tokenizer and prepares shards, trains `model`
    for `minutes`, evaluates it, and returns (and prints) a few generated stories. `echo` prints
    a line; `stream` prints text without a newline as the stories are written (default: stdout)."""
    from tinygpt.data import stories as story_gen
    from tinygpt.training.checkpoint import load_run
    from tinygpt.generate import generate
    from tinygpt.data.prepare import prepare
    from tinygpt.training import train

    if stream is None:
        def stream(text):
            print(text, end="", flush=True)

    if minutes <= 0 or stories < 10 or samples < 0 or grade_samples < 0:
        raise ValueError("minutes must be > 0, stories >= 10, samples >= 0 and grade_samples >= 0")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    echo(f"[1/6] writing {stories:,} built-in children's stories")
    text_path = out_dir / "stories.txt"
    story_gen.write_txt(text_path, stories, seed=seed)

    echo(f"[2/6] training a {vocab_size}-token tokenizer and writing token shards")
    meta = prepare([str(text_path)], str(out_dir / "shards"), vocab_size=vocab_size, seed=seed, overwrite=True,
                   progress=progress)
    echo(f"      {meta['splits']['train']['tokens']:,} training tokens, {meta['splits']['val']['tokens']:,} "
         "validation tokens")

    run = out_dir / "run"
    if run.exists():
        echo(f"      replacing the previous demo run in {run}")
        shutil.rmtree(run)
    echo(f"[3/6] training the `{model}` preset for {minutes:g} minutes")
    # Small batches: in a few minutes more, smaller steps beat fewer, larger ones.
    summary = train(data=str(out_dir / "shards"), out=str(run), model=model, time_budget=minutes * 60,
                    batch_size=batch_size, lr=lr, warmup=100, eval_every=400, dtype=dtype, seed=seed,
                    progress=progress)

    echo("[4/6] evaluating")
    val = summary["val"]
    echo(f"      validation loss {val['loss']:.3f} (perplexity {val['perplexity']:.2f}), "
         f"{val['bpb']:.3f} bits per byte, after {summary['tokens_seen']:,} tokens "
         f"({summary['train_tokens_per_s']:,.0f} tokens/s)")

    echo(f"[5/6] {samples} stories from the trained model (KV-cache decoding, top-p sampling, streamed):")
    model_, tokenizer = load_run(run, "best")
    texts = []
    for i in range(samples):
        prompt = DEMO_PROMPTS[i % len(DEMO_PROMPTS)]
        echo(f"\n--- story {i + 1} (prompt: {prompt!r}) ---")
        stream(prompt)
        t, made = time.perf_counter(), []
        text = generate(model_, tokenizer, prompt, max_new_tokens=300, temperature=0.7, top_p=0.9, seed=seed + i,
                        on_text=lambda _, chunk: stream(chunk), on_finish=lambda _, g: made.append(len(g.ids)))
        stream(f"\n      [{made[0]} tokens, {made[0] / (time.perf_counter() - t):,.0f} tokens/s]\n")
        texts.append(text)
    graded = grade_demo(run, out_dir / "grade", samples=grade_samples, seed=seed, progress=progress, echo=echo)
    dt = time.perf_counter() - t0
    echo(f"\ndone in {dt / 60:.1f} minutes. The run is in {run} (loss plot: {run / 'loss.png'}).")
    sys.stdout.flush()
    return {"summary": summary, "stories": texts, "grade": graded, "seconds": dt}


def grade_demo(run: Path, out: Path, *, samples: int, seed: int, progress: bool, echo) -> dict | None:
    """Grades the run on the built-in beginnings (`tinygpt grade`'s protocol, fewer samples) and
    prints the headline figures; None with samples 0."""
    from tinygpt.grade.beginnings import BUILT_IN
    from tinygpt.grade.grading import GradeSettings, grade

    if samples == 0:
        return None
    echo(f"\n[6/6] grading {len(BUILT_IN) * samples} completions of {len(BUILT_IN)} story beginnings")
    t = time.perf_counter()
    result = grade([run], beginnings=list(BUILT_IN), beginnings_label=f"built-in ({len(BUILT_IN)})",
                   settings=GradeSettings(samples=samples, seed=seed, progress=progress), out=out)
    sc = result["runs"][0]["scores"]
    echo(f"      names kept in {sc['names_kept']['mean']:.0%} of completions, {sc['unknown_words']['mean']:.1%} "
         f"non-words, {sc['broken_grammar']['mean']:.2f} broken word pairs per 100 words, "
         f"cut sentence finished in {1 - sc['split_sentence']['mean']:.0%} "
         f"({time.perf_counter() - t:.0f} s; report: {out / 'grade.html'})")
    return result
