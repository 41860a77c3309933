"""`tinygpt grade`: do a run's stories read as consistent, grammatical children's stories?"""

from __future__ import annotations

import os

from tinygpt.cli.flags import add_batch_size, add_data, add_dtype, add_quiet, add_seed, add_threads, flag_words

DESCRIPTION = (
    "Grades runs by their stories: each run completes every story beginning (a built-in set of "
    "60, or --prompts FILE) --samples times at temperature 1, and each completion is checked offline "
    "(names kept, pronouns, the cut sentence finished, non-words, unfinished sentences, loops, quotes, "
    "broken word pairs, story order), for the set's diversity (distinct-n, self-BLEU) and child "
    "vocabulary, and for novelty (the longest span copied from the run's training stories). With "
    "--judge an OpenAI-compatible model also scores grammar, creativity, consistency and plot. "
    "--stories grades given stories the same way. Writes OUT/grade.json and OUT/grade.html.")


def add_parser(sub) -> None:
    from tinygpt.grade.grading import GradeSettings

    d = GradeSettings()
    g = sub.add_parser("grade", help="grade runs' (or given) stories for consistency and grammar",
                       description=DESCRIPTION)
    g.add_argument("--run", action="append", default=[], metavar="RUN", help="a run to grade (repeat for several)")
    g.add_argument("--stories", action="append", default=[], metavar="FILE",
                   help="stories to grade: .txt (<|endoftext|> between stories) or .jsonl (repeat for several)")
    g.add_argument("--out", default="grade", help="where grade.json and grade.html go (default ./grade)")
    _add_protocol(g.add_argument_group("protocol"), d)
    _add_judge(g.add_argument_group("LLM judge (optional)"), d)
    h = g.add_argument_group("hardware and output")
    add_batch_size(h, default=d.batch_size, help=f"completions decoded together (default {d.batch_size})")
    add_dtype(h, default=d.dtype, help="decode precision (default auto)")
    add_threads(h, help="CPU threads (default: torch's choice)")
    add_quiet(h, help="no progress bars")
    g.set_defaults(func=grade_command)


def _add_protocol(g, d) -> None:
    g.add_argument("--prompts", metavar="FILE", help="story beginnings for the runs to complete, one a line (.txt) "
                   "or .jsonl with a \"beginning\" field (default: the built-in set)")
    g.add_argument("--beginnings", metavar="FILE", help="with --stories: the beginnings the stories were written "
                   "from; a story starting with one is graded as its continuation")
    g.add_argument("--samples", type=int, default=d.samples, help=f"completions of each beginning (default {d.samples})")
    g.add_argument("--temperature", type=float, default=d.temperature, help=f"default {d.temperature:g}")
    g.add_argument("--top-p", type=float, default=d.top_p, help=f"default {d.top_p:g} (off)")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens,
                   help=f"at most this many tokens a completion (default {d.max_new_tokens})")
    add_seed(g, default=d.seed, help=f"completion i samples with seed + i (default {d.seed})")
    g.add_argument("--no-novelty", action="store_true", help="skip the novelty index (the training data's copies)")
    add_data(g, help="with --stories: token shards to measure their novelty against")


def _add_judge(g, d) -> None:
    g.add_argument("--judge", metavar="BASE_URL", help="an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)")
    g.add_argument("--judge-model", metavar="NAME", help="the judge's model name")
    g.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the judge's API key (default OPENAI_API_KEY)")
    g.add_argument("--judge-concurrency", type=int, default=d.judge_concurrency,
                   help=f"judge requests in flight (default {d.judge_concurrency})")


def _settings(args):
    from tinygpt.grade.grading import GradeSettings

    if args.samples < 1 or args.batch_size < 1 or args.max_new_tokens < 1 or args.judge_concurrency < 1:
        raise ValueError("--samples, --batch-size, --max-new-tokens and --judge-concurrency must be >= 1")
    if bool(args.judge) != bool(args.judge_model):
        raise ValueError("--judge and --judge-model go together")
    return GradeSettings(samples=args.samples, temperature=args.temperature, top_p=args.top_p,
                         max_new_tokens=args.max_new_tokens, seed=args.seed, batch_size=args.batch_size,
                         dtype=args.dtype, novelty=not args.no_novelty, judge_url=args.judge,
                         judge_model=args.judge_model, judge_key=os.environ.get(args.judge_api_key_env) or None,
                         judge_concurrency=args.judge_concurrency, progress=not args.quiet)


def grade_command(args) -> int:
    from tinygpt.grade.beginnings import BUILT_IN, load_beginnings
    from tinygpt.grade.grading import grade
    from tinygpt.grade.summary import print_summary
    from tinygpt.threads import configure

    if not args.run and not args.stories:
        raise ValueError("nothing to grade: give --run RUN or --stories FILE")
    if args.threads is not None:
        with flag_words({"threads": "--threads"}):
            configure(args.threads)
    settings = _settings(args)
    beginnings = load_beginnings(args.prompts) if args.prompts else list(BUILT_IN)
    label = f"{args.prompts} ({len(beginnings)})" if args.prompts else f"built-in ({len(beginnings)})"
    story_beginnings = load_beginnings(args.beginnings) if args.beginnings else None
    with flag_words({"temperature": "--temperature", "top_p": "--top-p", "max_new_tokens": "--max-new-tokens"}):
        result = grade(args.run, args.stories, beginnings=beginnings, beginnings_label=label, settings=settings,
                       story_beginnings=story_beginnings, data=args.data, out=args.out)
    print_summary(result)
    print(f"wrote {os.path.join(args.out, 'grade.json')} and {os.path.join(args.out, 'grade.html')}")
    return 0
