"""`tinygpt stories --llm BASE_URL`: the stories come from an LLM behind an OpenAI-compatible API
instead of the built-in generator."""

from __future__ import annotations

import os
import sys


def add_llm_flags(st) -> None:
    g = st.add_argument_group(
        "stories from an LLM (--llm)",
        "Ask an OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, Ollama, tinygpt serve) for "
        "--count stories by the TinyStories recipe; --out must be a .jsonl file. A rerun of the same "
        "command resumes where the last one stopped.")
    g.add_argument("--llm", metavar="BASE_URL", help="the server's OpenAI base URL, e.g. https://api.openai.com/v1 "
                   "or http://127.0.0.1:8000/v1")
    g.add_argument("--model", help="the model name the server knows (required with --llm)")
    g.add_argument("--api", choices=["chat", "completions"], default="chat",
                   help="chat messages or a plain completion prompt (default chat)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="the environment variable holding the API key (default OPENAI_API_KEY; unset: no key)")
    g.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    g.add_argument("--rpm", type=float, help="at most this many requests per minute")
    g.add_argument("--tpm", type=float, help="at most this many tokens (prompt + completion) per minute")
    g.add_argument("--max-tokens", type=int, default=600, help="tokens per story at most (default 600)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    g.add_argument("--max-retries", type=int, default=8,
                   help="retries of a request on 408/409/429/5xx, timeouts and broken replies (default 8)")
    g.add_argument("--templates", metavar="FILE.json",
                   help='the prompt templates to use instead of the built-in ones: {"system", "user", "completion"}')
    g.add_argument("--min-words", type=int, default=40, help="shorter stories are rejected (default 40)")
    g.add_argument("--max-words", type=int, default=1000, help="longer stories are rejected (default 1000)")
    g.add_argument("--no-word-check", action="store_true",
                   help="keep stories that leave out some of the three words (for a weak model)")
    g.add_argument("--near-duplicate", type=float, default=0.8, metavar="JACCARD",
                   help="reject a story this similar to a kept one (word 3-shingles, MinHash; default 0.8)")
    g.add_argument("--reask", type=int, default=0, metavar="K",
                   help="ask again, up to K times, for a story that was rejected (default 0)")
    g.add_argument("--rejected", metavar="FILE.jsonl",
                   help="where rejected stories go, with their reason (default: OUT with .rejected.jsonl)")
    g.add_argument("--instruct", action="store_true",
                   help="also record the TinyStories-Instruct fields (features, words, a sentence of the story)")
    g.add_argument("--summaries", action="store_true",
                   help="with --instruct: a one-line summary of each story from a second request")


def llm_stories_command(args) -> int:
    from tinygpt.llmstories.checks import Bounds
    from tinygpt.llmstories.pipeline import Config, run

    _check(args)
    cfg = Config(llm=args.llm, model=args.model, count=args.count, out=args.out, rejected=args.rejected,
                 api=args.api, seed=args.seed, concurrency=args.concurrency, requests_per_min=args.rpm,
                 tokens_per_min=args.tpm, max_tokens=args.max_tokens, temperature=args.temperature,
                 top_p=args.top_p, timeout_s=args.timeout, max_retries=args.max_retries, templates=args.templates,
                 bounds=Bounds(args.min_words, args.max_words), near_duplicate=args.near_duplicate,
                 require_words=not args.no_word_check,
                 reask=args.reask, instruct=args.instruct, summaries=args.summaries,
                 api_key=os.environ.get(args.api_key_env) or None, progress=not args.quiet)
    s = run(cfg)
    if not args.quiet:
        _print_summary(s, cfg)
    return 0


def _check(args) -> None:
    if not args.model:
        raise ValueError("--llm needs --model NAME (the model the server serves)")
    if args.out == "-" or not args.out.endswith(".jsonl"):
        raise ValueError("with --llm, --out must be a .jsonl file (a rerun resumes it)")
    if args.prompts:
        raise ValueError("--prompts writes the requests without asking anyone: leave out --llm")
    for flag, value, low in (("--concurrency", args.concurrency, 1), ("--max-tokens", args.max_tokens, 1),
                             ("--max-retries", args.max_retries, 0), ("--reask", args.reask, 0),
                             ("--min-words", args.min_words, 0)):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    if args.max_words < args.min_words:
        raise ValueError(f"--max-words ({args.max_words}) must be >= --min-words ({args.min_words})")
    if not 0 < args.near_duplicate <= 1:
        raise ValueError(f"--near-duplicate must be in (0, 1], got {args.near_duplicate}")
    if args.summaries and not args.instruct:
        raise ValueError("--summaries goes with --instruct")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout}")


def _print_summary(s, cfg) -> None:
    rate = s.decided / max(s.elapsed_s, 1e-9)
    print(f"{s.kept:,} stories kept in {cfg.out}, {sum(s.rejected.values()):,} rejected in {cfg.rejected_path()}"
          f" ({s.already_done:,} of {s.requested:,} were done before); {s.elapsed_s:.1f} s, {rate:,.1f} stories/s",
          file=sys.stderr)
    if s.rejected:
        print("rejected: " + ", ".join(f"{k} {v:,}" for k, v in s.rejected.most_common()), file=sys.stderr)
    print(f"tokens: {s.prompt_tokens:,} prompt + {s.completion_tokens:,} completion; {s.retries:,} retries",
          file=sys.stderr)
