"""`tinygpt grade`: runs' completions of the story beginnings (or given stories) scored by the
offline checks, novelty against the training corpus and, optionally, an LLM judge, written to
grade.json and grade.html."""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tinygpt.grade import scoring
from tinygpt.grade.checks import CHECKS
from tinygpt.grade.completions import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_SAMPLES, DEFAULT_TEMPERATURE, DEFAULT_TOP_P,
                                       complete)

FORMAT, VERSION = "tinygpt-grade", 1


@dataclass
class GradeSettings:
    samples: int = DEFAULT_SAMPLES
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 0
    batch_size: int = 64
    dtype: str = "auto"
    novelty: bool = True
    judge_url: str | None = None
    judge_model: str | None = None
    judge_key: str | None = None
    judge_concurrency: int = 8
    progress: bool = False

    def public(self, beginnings_label: str) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("judge_url", "judge_model", "judge_key", "progress")}
        d["beginnings"] = beginnings_label
        d["judge"] = {"url": self.judge_url, "model": self.judge_model} if self.judge_url else None
        return d


def _run_facts(run: Path) -> dict:
    """What the report shows of a run: its size, training tokens and time, and held-out bpb."""
    from tinygpt.training.rundir import SUMMARY_FILE

    facts = {"params": None, "train_tokens": None, "train_seconds": None, "bpb": None}
    summary = run / SUMMARY_FILE
    if summary.is_file():
        s = json.loads(summary.read_text())
        facts.update(params=s.get("params"), train_tokens=s.get("tokens_seen"), train_seconds=s.get("elapsed_s"),
                     bpb=(s.get("val") or {}).get("bpb"))
    return facts


def _novelty_index(run: Path, settings: GradeSettings):
    from tinygpt.grade.novelty import NoveltyIndex
    from tinygpt.training.rundir import read_run_file

    data = read_run_file(run)["data"]["path"]
    if not Path(data).is_dir():
        raise FileNotFoundError(f"{run}'s training data {data} is gone: novelty needs it (or pass --no-novelty)")
    return NoveltyIndex.for_shards(data, progress=settings.progress)


def grade_run(run, beginnings: list[str], settings: GradeSettings, judge_cache: Path | None = None) -> dict:
    """One run's entry of grade.json: its completions of every beginning, scored."""
    from tinygpt.training.checkpoint import load_run

    run = Path(run)
    model, tokenizer = load_run(run, "best")
    done = complete(model, tokenizer, beginnings, samples=settings.samples, temperature=settings.temperature,
                    top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, seed=settings.seed,
                    batch_size=settings.batch_size, dtype=settings.dtype, progress=settings.progress)
    items = [scoring.item(c.beginning_index, c.sample, c.seed, c.story, c.cut) for c in done]
    facts = _run_facts(run)
    facts["params"] = facts["params"] or model.num_params()
    index = _novelty_index(run, settings) if settings.novelty else None
    return _entry(run.name, str(run.resolve()), "run", facts, items, settings, index, tokenizer, judge_cache)


def grade_stories(path, settings: GradeSettings, beginnings: list[str] | None = None, *, data=None,
                  judge_cache: Path | None = None) -> dict:
    """An entry for given stories: each checked as a whole, or as the continuation of the given
    beginning it starts with; novelty against the shards in `data` when given."""
    from tinygpt.grade.storyfile import read_stories

    items = [scoring.item(b, i, None, story, cut) for i, (b, story, cut) in enumerate(read_stories(path, beginnings))]
    index = tokenizer = None
    if data is not None and settings.novelty:
        from tinygpt.data.shards import open_shards
        from tinygpt.grade.novelty import NoveltyIndex

        tokenizer = open_shards(data).tokenizer
        index = NoveltyIndex.for_shards(data, progress=settings.progress)
    facts = {"params": None, "train_tokens": None, "train_seconds": None, "bpb": None}
    return _entry(Path(path).name, str(Path(path).resolve()), "stories", facts, items, settings, index, tokenizer,
                  judge_cache)


def _entry(name, path, kind, facts, items, settings, index, tokenizer, judge_cache) -> dict:
    scoring.check_items(items)
    if index is not None:
        scoring.add_novelty(items, index, tokenizer)
    if settings.judge_url:
        _judge(items, settings, judge_cache)
    return {"name": name, "path": path, "kind": kind, **facts, "scores": scoring.run_scores(items),
            "diversity": scoring.run_diversity(items), "judge": scoring.judge_summary(items), "completions": items}


def _judge(items: list[dict], settings: GradeSettings, cache: Path | None) -> None:
    from tinygpt.grade.judge import judge_stories

    pairs = [(scoring.beginning_of(it) or "", scoring.continuation(it)) for it in items]
    verdicts = judge_stories(pairs, base_url=settings.judge_url, model=settings.judge_model,
                             api_key=settings.judge_key, cache_path=cache, concurrency=settings.judge_concurrency,
                             progress=settings.progress)
    for it, v in zip(items, verdicts):
        it["judge"] = v


def grade(runs=(), stories=(), *, beginnings: list[str], beginnings_label: str, settings: GradeSettings,
          story_beginnings: list[str] | None = None, data=None, out=None) -> dict:
    """Grades every run and stories file, and writes OUT/grade.json and OUT/grade.html if `out`."""
    cache = None if out is None else Path(out) / "judge-cache.jsonl"
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    entries = [grade_run(r, beginnings, settings, cache) for r in runs]
    entries += [grade_stories(s, settings, story_beginnings, data=data, judge_cache=cache) for s in stories]
    if not entries:
        raise ValueError("nothing to grade: give --run RUN or --stories FILE")
    result = {"format": FORMAT, "version": VERSION,
              "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "settings": settings.public(beginnings_label), "checks": {**CHECKS, **scoring.KEPT, **scoring.NOVELTY},
              "scores_higher_better": list(scoring.HIGHER_BETTER), "runs": entries}
    if out is not None:
        write(result, Path(out))
    return result


def write(result: dict, out: Path) -> None:
    from tinygpt.fileio import write_json
    from tinygpt.grade.report import write_report

    write_json(out / "grade.json", result, indent=1)
    write_report(result, out / "grade.html")
